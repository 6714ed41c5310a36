"""Readiness: every server polled at once until it answers, a server that exited failing at once, the deadline
ending the rest, each distinct error kept (a made-up kind stands for a server's protocol)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import pytest

from testbed.servers import probes


class _Flaky:
    """Refuses its first `failures` probes, then answers with its version: all of a kind readiness uses."""

    def __init__(self, failures: int, message: str = "connection refused") -> None:
        self.failures, self.message, self.calls = failures, message, 0
        self.lock = threading.Lock()

    def probe(self, settings: Mapping[str, Any], fact: Mapping[str, Any], run_id: str = "") -> str:
        with self.lock:
            self.calls += 1
            if self.calls <= self.failures:
                raise ConnectionError(self.message)
        return f"flaky {fact['port']}"


def _kinds(monkeypatch: pytest.MonkeyPatch, **kinds: _Flaky) -> None:
    monkeypatch.setattr(probes, "kind_of", lambda service, _settings: kinds[service])


def test_a_server_that_answers_after_refusing_is_ready_with_its_version(monkeypatch: pytest.MonkeyPatch) -> None:
    _kinds(monkeypatch, a=_Flaky(2), b=_Flaky(0))
    results = probes.wait_ready({"a": {"port": 1}, "b": {"port": 2}}, timeout=60, interval=0)
    assert (results["a"].ready, results["a"].attempts, results["a"].version) == (True, 3, "flaky 1")
    assert results["a"].errors == ["connection refused"]  # the same error twice is kept once
    assert (results["b"].ready, results["b"].attempts) == (True, 1)


def test_a_server_that_exited_fails_at_once_with_why(monkeypatch: pytest.MonkeyPatch) -> None:
    _kinds(monkeypatch, a=_Flaky(10**9))
    results = probes.wait_ready({"a": {"port": 1}}, timeout=600, gone=lambda _s: "PostgreSQL exited")
    assert (results["a"].ready, results["a"].attempts, results["a"].last_error) == (False, 1, "PostgreSQL exited")


def test_the_deadline_ends_the_polling_with_the_last_error_on_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    _kinds(monkeypatch, a=_Flaky(10**9, "refused\n  on   127.0.0.1:1"))
    result = probes.wait_ready({"a": {"port": 1}}, timeout=0)["a"]
    assert (result.ready, result.attempts, result.last_error) == (False, 1, "refused on 127.0.0.1:1")


def test_the_record_keeps_the_last_twenty_errors() -> None:
    result = probes.Readiness("a", errors=[f"e{i}" for i in range(25)], seconds=1.23456)
    shown = result.as_dict()
    assert shown["errors"] == [f"e{i}" for i in range(5, 25)] and shown["seconds"] == 1.235
