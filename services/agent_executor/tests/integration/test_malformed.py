"""Invalid events are dead-lettered with a reason, acknowledged, and leave no row."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.fake_llm import FakeLLM
from tests.integration.harness import Harness

CASES: dict[str, tuple[dict[str, Any], str]] = {
    "missing source": ({"source": None}, "'source' is required"),
    "empty id": ({"id": ""}, "'id' is required"),
    "wrong specversion": ({"specversion": "0.3"}, "unsupported specversion"),
    "wrong type": ({"type": "agent.execute.cancelled"}, "unexpected type"),
    "binary data": ({"datacontenttype": "application/octet-stream"}, "datacontenttype"),
    "data not an object": ({"data": "hello"}, "data is required"),
    "prompt missing": ({"data": {"model": "gpt-4o-mini"}}, "data.prompt is required"),
    "prompt not a string": ({"data": {"prompt": 42}}, "data.prompt is required"),
    "model not a string": ({"data": {"prompt": "hi", "model": 4}}, "data.model"),
    "bad max_tokens": ({"data": {"prompt": "hi", "max_tokens": True}}, "data.max_tokens"),
    "bad temperature": ({"data": {"prompt": "hi", "temperature": 3}}, "data.temperature"),
}


@pytest.mark.parametrize(("overrides", "reason"), CASES.values(), ids=CASES.keys())
async def test_malformed_event_is_dead_lettered_without_a_row(
    harness: Harness, fake_llm: FakeLLM, overrides: dict[str, Any], reason: str
) -> None:
    event_id = harness.new_event_id()
    event = harness.request_event(event_id)
    for key, value in overrides.items():
        if value is None:
            del event[key]
        else:
            event[key] = value
    payload = json.dumps(event).encode()

    async with harness.worker():
        seq = await harness.publish(payload)
        await harness.wait_until_settled()

    [(headers, letter)] = await harness.messages(harness.settings.deadletter_subject)
    assert letter["type"] == "agent.execute.deadlettered"
    assert reason in letter["data"]["reason"]
    assert headers["Dead-Letter-Reason"] == letter["data"]["reason"]
    assert letter["data"]["stream_sequence"] == seq
    assert json.loads(letter["data"]["original"]["text"]) == event
    assert await harness.rows(event_id) == []
    assert fake_llm.calls(event_id) == 0
    assert await harness.messages(harness.settings.completed_subject) == []


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "payload is not JSON"),
        (b"\xff\xfe\x00binary", "payload is not JSON"),
        (b'["a", "list"]', "not a JSON object"),
    ],
    ids=["truncated JSON", "binary", "JSON array"],
)
async def test_unparseable_payload_is_dead_lettered(
    harness: Harness, payload: bytes, reason: str
) -> None:
    async with harness.worker():
        await harness.publish(payload)
        info = await harness.wait_until_settled()

    assert info.num_redelivered == 0
    [(_, letter)] = await harness.messages(harness.settings.deadletter_subject)
    assert reason in letter["data"]["reason"]
    original = letter["data"]["original"]
    assert ("text" in original) != ("base64" in original)
