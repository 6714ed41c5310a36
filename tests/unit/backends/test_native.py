"""The native backend's start: every server at once, and a second start (the playbook's servers phase after the
wrapper's head start) re-launching only the servers whose process is gone, with real processes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from testbed.backends import native
from testbed.run.store import RunState
from testbed.servers import declared
from testbed.teardown.teardown import teardown


def test_a_second_start_relaunches_a_gone_server_and_leaves_the_others_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TESTBED_RUNTIME_DIR", str(tmp_path / "root"))
    state = RunState.create("native-again", tmp_path / "runs" / "native-again", None, {})
    errors: list[str] = []
    brief = declared.parse("brief", {"port": 15999, "native": {"command": ["sleep", "0.2"]}}, errors)
    assert errors == [] and brief is not None
    # PostgreSQL's sockets folder, as a running postmaster keeps its lock file there: not the brief server's.
    lock = state.runtime_dir / "sockets" / ".s.PGSQL.15433.lock"
    lock.parent.mkdir()
    lock.write_text("4242\n")
    logs = tmp_path / "runs" / "native-again" / "logs"
    logs.mkdir()
    try:
        assert set(native.start(state, {"brief": brief}, logs)["started"]) == {"brief"}
        deadline = time.monotonic() + 30
        while any(record.identity().alive() for record in state.load().processes() if record.service == "brief"):
            assert time.monotonic() < deadline, "sleep 0.2 did not end"
            time.sleep(0.05)
        assert native.start(state, {"brief": brief}, logs)["started"].keys() == {"brief"}  # gone: started again
        assert lock.read_text() == "4242\n", "a re-launch removed another server's files"
    finally:
        assert teardown(state, grace=1).left == []
