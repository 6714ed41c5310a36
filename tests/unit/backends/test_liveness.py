"""Whether a run's servers are still there: a native server's process by its identity, a container through the
engine (none answering here), and the tail of the log that says why one is gone."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from testbed.backends import liveness
from testbed.core.processes import ProcessIdentity
from testbed.run.record import RunRecord


def _record(tmp_path: Path, resources: list[dict[str, object]]) -> RunRecord:
    return RunRecord.from_dict({
        "run_id": "r1", "run_folder": str(tmp_path), "runtime_dir": str(tmp_path / "r1"), "resources": resources,
        "servers": {"nats": {"title": "NATS"}, "postgres": {"title": "PostgreSQL"}}})


def test_a_server_whose_process_ended_is_gone_and_a_running_one_is_not(tmp_path: Path) -> None:
    running, ended = subprocess.Popen(["sleep", "60"]), subprocess.Popen(["true"])
    ended.wait()
    try:
        identity = ProcessIdentity.of(running.pid)
        assert identity is not None
        # The ended one's pid may be reused by now: its start time tells the new process apart.
        record = _record(tmp_path, [
            {"kind": "process", "service": "nats", **identity.as_dict()},
            {"kind": "process", "service": "postgres", "pid": ended.pid, "start_time": 1, "boot_id": identity.boot_id},
        ])
        gone = liveness.gone_check(record)
        assert gone("nats") is None and gone("postgres") == liveness.EXITED
        assert liveness.servers_gone(record) == ["PostgreSQL exited"]
    finally:
        running.kill()
        running.wait()


def test_a_container_the_engine_cannot_be_asked_about_is_said_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no-engine.sock'}")
    record = _record(tmp_path, [{"kind": "container", "service": "nats", "name": "testbed-r1-nats"}])
    why = liveness.gone_check(record)("nats")
    assert why == f"the Docker engine stopped answering (no Docker engine answers on {tmp_path / 'no-engine.sock'} " \
                  "(No such file or directory))"
    assert liveness.servers_gone(record) == [f"NATS exited ({why})"]


def test_the_log_tail_is_the_native_log_s_last_lines(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "postgres.log").write_text("".join(f"line {i}\n" for i in range(40)))
    record = _record(tmp_path, [])
    assert liveness.log_tail(record, "postgres", lines=3) == ["line 37", "line 38", "line 39"]
    assert liveness.log_tail(record, "nats") == []  # no log: nothing to show
