"""Readiness: each server's kind probes it over its real protocol, from the host, on both backends."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from testbed.servers import kind_of


@dataclass
class Readiness:
    """What happened while waiting for one service."""

    service: str
    ready: bool = False
    attempts: int = 0
    seconds: float = 0.0
    version: str = ""
    last_error: str = ""
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "ready": self.ready,
            "attempts": self.attempts,
            "seconds": round(self.seconds, 3),
            "version": self.version,
            "last_error": self.last_error,
            "errors": self.errors[-20:],
        }


def wait_ready(
    facts: Mapping[str, Mapping[str, Any]],
    timeout: float,
    gone: Callable[[str], str | None] | None = None,
    interval: float = 0.05,
    servers: Mapping[str, Mapping[str, Any]] | None = None,
    run_id: str = "",
) -> dict[str, Readiness]:
    """Poll every service concurrently until it answers or the deadline passes. `gone(service)` tells
    when a server has exited, so a crashed one fails at once instead of at the deadline. `servers` holds
    the settings (a declared server's readiness is in them); `run_id` marks what a probe starts."""
    results = {service: Readiness(service) for service in facts}
    settings = {service: (servers or {}).get(service, {}) for service in facts}
    kinds = {service: kind_of(service, settings[service]) for service in facts}
    start = time.monotonic()
    deadline = start + timeout

    def poll(service: str) -> None:
        result = results[service]
        while True:
            result.attempts += 1
            try:
                result.version = kinds[service].probe(settings[service], facts[service], run_id)
            except Exception as exc:
                message = " ".join(str(exc).split()) or type(exc).__name__
                result.last_error = message
                if not result.errors or result.errors[-1] != message:
                    result.errors.append(message)
            else:
                result.ready = True
                result.seconds = time.monotonic() - start
                return
            exited = gone(service) if gone else None
            if exited:
                result.last_error = exited
                break
            if time.monotonic() >= deadline:
                break
            time.sleep(interval)
        result.seconds = time.monotonic() - start

    threads = [threading.Thread(target=poll, args=(service,)) for service in facts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
