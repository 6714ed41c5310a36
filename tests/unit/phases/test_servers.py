"""The servers phase: what the playbook created is recorded in the run's state the moment it exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.core.errors import TestbedError
from testbed.phases import servers
from testbed.run.store import RunState


def test_each_resource_is_recorded_in_the_run_s_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESTBED_RUNTIME_DIR", str(tmp_path / "root"))
    state = RunState.create("phase-rec", tmp_path / "runs" / "phase-rec", None, {})
    servers.record("phase-rec", [{"kind": "network", "name": "testbed-phase-rec"},
                                 {"kind": "container", "service": "postgres", "name": "testbed-phase-rec-postgres"}])
    record = state.load()
    assert [(r.kind, r.name) for r in record.resources] == [
        ("network", "testbed-phase-rec"), ("container", "testbed-phase-rec-postgres")]
    assert record.containers() == {"postgres": "testbed-phase-rec-postgres"}


def test_an_unknown_run_is_an_error_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESTBED_RUNTIME_DIR", str(tmp_path / "root"))
    with pytest.raises(TestbedError, match="no-such-run"):
        servers.record("no-such-run", [{"kind": "network", "name": "n"}])
