"""Teardown removes what the run recorded, and never a folder outside the run's own."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.run.store import RunState
from testbed.teardown.teardown import teardown


def test_teardown_removes_no_folder_outside_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESTBED_RUNTIME_DIR", str(tmp_path / "root"))
    victim = tmp_path / "victim"
    victim.mkdir()
    state = RunState.create("surv-outside", tmp_path / "runs" / "surv-outside", None, {})
    inside = state.runtime_dir / "data"
    inside.mkdir()
    state.record({"kind": "directory", "service": "x", "path": str(victim)})
    state.record({"kind": "directory", "service": "y", "path": str(inside)})
    result = teardown(state, grace=1)
    assert victim.is_dir()
    assert f"directory {victim} (outside the run's folders: not removed)" in result.left
    assert not inside.exists() and f"directory {inside}" in result.removed
