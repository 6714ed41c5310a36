"""The per-test hand-over's protocol, served over its real Unix socket with resets that record what they are asked
(the servers' own resets are tested against real servers in tests/e2e/test_isolation.py)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from testbed.core.errors import ExitCode, TestbedError
from testbed.parallel import handover
from testbed.servers import kind_of
from testbed.servers.base_reset import TestReset

SERVERS = {"postgres": {}, "dragonfly": {}, "nats": {}}
SHARES = {
    "gw0": {"postgres": {"database": "svc"}, "dragonfly": {"url": "redis://a"}, "nats": {"url": "nats://a"}},
    "gw1": {"postgres": {"database": "svc_gw1"}, "dragonfly": {"url": "redis://b"}, "nats": {"url": "nats://b"}},
}


class Recording(TestReset):
    def __init__(self, name: str, calls: list[tuple[str, str]], fail: BaseException | None = None) -> None:
        self.name, self.calls, self.fail = name, calls, fail
        self.closed = False
        self.lock = threading.Lock()

    def reset(self, fact: Mapping[str, Any]) -> None:
        with self.lock:
            self.calls.append((self.name, str(dict(fact).get("database") or dict(fact).get("url"))))
        if self.fail is not None:
            raise self.fail

    def keep(self, fact: Mapping[str, Any], label: str) -> str | None:
        return f"{fact['database']}_testbed_failed_{label}" if self.name == "postgres" else None

    def fresh_copy(self) -> dict[str, Any] | None:
        if self.name != "postgres":
            return None
        return {"url": "postgresql://x/copy", "database": "copy", "host": "h", "port": 1, "user": "u",
                "password": "p", "extra": "not handed out"}

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[handover.Handover, list[tuple[str, str]],
                                                                             dict[str, Recording]]]:
    calls: list[tuple[str, str]] = []
    made: dict[str, Recording] = {}

    def test_reset(self: Any, settings: Any, fact: Any, workers: int, *, eager: bool) -> TestReset:
        made[self.name] = Recording(self.name, calls)
        return made[self.name]

    for name in SERVERS:
        monkeypatch.setattr(type(kind_of(name, {})), "test_reset", test_reset)
    served = handover.Handover(tmp_path, "test", keep_failed=True)
    served.start(SERVERS, {name: {} for name in SERVERS}, SHARES)
    yield served, calls, made
    if served.error is None:  # a test that made one closes it itself, expecting it raised
        served.close()


def _ask(path: Path, *lines: str) -> list[dict[str, Any]]:
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(str(path))
        stream = client.makefile("rwb")
        answers = []
        for line in lines:
            stream.write(line.encode() + b"\n")
            stream.flush()
            answers.append(json.loads(stream.readline()))
        return answers


def test_a_worker_s_first_test_needs_no_reset_and_every_later_one_resets_its_whole_share(served) -> None:
    server, calls, _ = served
    assert _ask(server.path, "reset gw1") == [{"ok": True}]
    assert calls == []  # as prepare left it
    assert _ask(server.path, "reset gw1", "reset gw0") == [{"ok": True}, {"ok": True}]
    assert set(calls) == {("postgres", "svc_gw1"), ("dragonfly", "redis://b"), ("nats", "nats://b")}  # gw0: its first


def test_a_failing_test_s_database_is_kept_at_its_worker_s_next_reset(served) -> None:
    server, calls, _ = served
    _ask(server.path, "reset gw0", "failed gw0 test_x", "reset gw0")
    assert server.kept == ["svc_testbed_failed_test_x"]
    assert ("postgres", "svc") not in calls and ("dragonfly", "redis://a") in calls  # kept, not reset


def test_a_fixture_gets_its_server_by_the_fixture_s_name(served) -> None:
    server, calls, _ = served
    assert _ask(server.path, "clean gw1 testbed_redis", "clean gw0 testbed_nats") == [
        {"ok": "redis://b"}, {"ok": "nats://a"}]
    assert calls == [("dragonfly", "redis://b"), ("nats", "nats://a")]
    answer = _ask(server.path, "database gw0")[0]["ok"]
    assert answer == {"url": "postgresql://x/copy", "database": "copy", "host": "h", "port": 1, "user": "u",
                      "password": "p"}


def test_a_request_the_run_cannot_serve_fails_that_test_only(served) -> None:
    server, _, _ = served
    missing = _ask(server.path, "clean gw0 testbed_memcached")[0]
    assert missing == {"error": "testbed_memcached: the service has no such server in 'servers'"}
    assert _ask(server.path, "reset gw0") == [{"ok": True}] and server.error is None


def test_the_first_failure_answers_every_later_request_and_is_raised_at_close(served) -> None:
    server, _, made = served
    _ask(server.path, "reset gw0")  # the first: nothing to do
    made["nats"].fail = OSError("connection refused")
    first = _ask(server.path, "reset gw0")[0]["error"]
    assert first == "per-test reset of nats failed: OSError: connection refused"
    made["nats"].fail = None
    assert _ask(server.path, "reset gw1", "reset gw1", "database gw0") == [{"error": first}] * 3
    with pytest.raises(TestbedError) as raised:
        server.close()
    assert (str(raised.value), raised.value.exit_code) == (first, ExitCode.PROVISIONING)
    assert all(reset.closed for reset in made.values())


def test_an_unknown_request_is_an_internal_error(served) -> None:
    server, _, _ = served
    assert _ask(server.path, "reset")[0] == {"error": "per-test reset: unknown request 'reset'"}
    with pytest.raises(TestbedError, match="unknown request"):
        server.close()
