"""The teardown phase: a run torn down from its state file passes; what is left fails it with exit 14 and says
what (the surrounding play reads the details)."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.core.errors import ExitCode, TestbedError
from testbed.phases.teardown import teardown_phase
from testbed.run.store import RunState


@pytest.fixture(autouse=True)
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TESTBED_RUNTIME_DIR", str(tmp_path / "root"))
    return tmp_path / "root"


def test_a_run_whose_resources_all_go_passes(tmp_path: Path) -> None:
    state = RunState.create("phase-ok", tmp_path / "runs" / "phase-ok", None, {})
    data = state.runtime_dir / "postgres"
    data.mkdir()
    state.record({"kind": "directory", "service": "postgres", "path": str(data)})
    result = teardown_phase("phase-ok", grace=1)
    assert result.ok and f"directory {data}" in result.removed
    assert not state.runtime_dir.exists()


def test_what_is_left_fails_the_phase_with_exit_14_and_its_details(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    state = RunState.create("phase-left", tmp_path / "runs" / "phase-left", None, {})
    state.record({"kind": "directory", "service": "x", "path": str(outside)})
    with pytest.raises(TestbedError) as caught:
        teardown_phase("phase-left", grace=1)
    assert caught.value.exit_code == ExitCode.TEARDOWN
    assert str(caught.value).startswith("teardown: ") and str(outside) in str(caught.value)
    assert caught.value.details["run_id"] == "phase-left"
    assert any(str(outside) in item for item in caught.value.details["left"])
    assert outside.is_dir()
