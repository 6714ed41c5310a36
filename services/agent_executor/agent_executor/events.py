"""CloudEvents 1.0 (structured JSON mode): request validation and result events."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

SPECVERSION = "1.0"
REQUESTED_TYPE = "agent.execute.requested"
COMPLETED_TYPE = "agent.execute.completed"
FAILED_TYPE = "agent.execute.failed"
DEADLETTER_TYPE = "agent.execute.deadlettered"
SOURCE = "/agent-executor"
CONTENT_TYPE = "application/cloudevents+json"

T = TypeVar("T")

_REQUIRED_ATTRIBUTES = ("specversion", "id", "source", "type")
# Fixed namespace so a result's id is a pure function of the request id: a re-published
# result carries the same Nats-Msg-Id and JetStream drops it as a duplicate.
_RESULT_NAMESPACE = uuid.UUID("3b0f5a52-5c1e-4d8e-9a53-2f0a8e6c1d47")


class InvalidEvent(ValueError):
    """The message is not a valid execution request; the reason says why."""


@dataclass(frozen=True)
class ExecutionRequest:
    """A validated `agent.execute.requested` event."""

    id: str
    source: str
    type: str
    prompt: str
    model: str | None = None
    system: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    data: dict[str, Any] = field(default_factory=dict)


def parse_request(payload: bytes) -> ExecutionRequest:
    """Parse and validate a structured-mode CloudEvent; raise InvalidEvent with a reason."""
    try:
        event = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidEvent(f"payload is not JSON: {exc}") from None
    if not isinstance(event, dict):
        raise InvalidEvent("payload is not a JSON object")

    for name in _REQUIRED_ATTRIBUTES:
        value = event.get(name)
        if not isinstance(value, str) or not value:
            raise InvalidEvent(f"attribute {name!r} is required and must be a non-empty string")
    if event["specversion"] != SPECVERSION:
        raise InvalidEvent(f"unsupported specversion {event['specversion']!r}")
    if event["type"] != REQUESTED_TYPE:
        raise InvalidEvent(f"unexpected type {event['type']!r}, expected {REQUESTED_TYPE!r}")
    content_type = event.get("datacontenttype", "application/json")
    if content_type != "application/json":
        raise InvalidEvent(f"unsupported datacontenttype {content_type!r}")

    data = event.get("data")
    if not isinstance(data, dict):
        raise InvalidEvent("data is required and must be a JSON object")
    prompt = data.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidEvent("data.prompt is required and must be a non-empty string")

    return ExecutionRequest(
        id=event["id"],
        source=event["source"],
        type=event["type"],
        prompt=prompt,
        model=_optional(data, "model", str),
        system=_optional(data, "system", str),
        max_tokens=_optional_positive_int(data, "max_tokens"),
        temperature=_optional_temperature(data),
        data=data,
    )


def _optional(data: dict[str, Any], key: str, kind: type[T]) -> T | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or (isinstance(value, str) and not value):
        raise InvalidEvent(f"data.{key} must be a non-empty {kind.__name__}")
    return value


def _optional_positive_int(data: dict[str, Any], key: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    # bool is an int subclass; reject it explicitly.
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidEvent(f"data.{key} must be a positive integer")
    return value


def _optional_temperature(data: dict[str, Any]) -> float | None:
    value = data.get("temperature")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 2:
        raise InvalidEvent("data.temperature must be a number between 0 and 2")
    return float(value)


def result_event_id(request_id: str) -> str:
    return str(uuid.uuid5(_RESULT_NAMESPACE, request_id))


def build_event(
    *, event_type: str, event_id: str, subject: str | None, data: dict[str, Any]
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "specversion": SPECVERSION,
        "id": event_id,
        "source": SOURCE,
        "type": event_type,
        "time": datetime.now(UTC).isoformat(),
        "datacontenttype": "application/json",
        "data": data,
    }
    if subject is not None:
        event["subject"] = subject
    return event


def encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":"), default=str).encode()
