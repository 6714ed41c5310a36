"""`testbed gc`: one line of what it collected; exit 14 when something could not be removed."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pytest

from testbed.cli.maintenance import cmd_gc
from testbed.core.errors import ExitCode
from testbed.run.store import RunState


@pytest.fixture(autouse=True)
def private_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A runtime root of this test's own, and no Docker engine: gc sees only what the test made."""
    monkeypatch.setenv("TESTBED_RUNTIME_DIR", str(tmp_path / "root"))
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no-engine.sock'}")
    (tmp_path / "root").mkdir(mode=0o700)
    return tmp_path / "root"


def test_nothing_to_collect_is_one_line_and_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    code = cmd_gc(argparse.Namespace(ttl=3600.0, run_id_prefix=""), Path())
    assert code == 0
    assert capsys.readouterr().out == "gc: 0 run(s) collected, 0 resource(s) removed\n"


def test_a_stale_folder_without_state_is_collected(private_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stale = private_root / "gc-stale-run"
    (stale / "postgres").mkdir(parents=True)
    an_hour_ago = time.time() - 3600
    os.utime(stale, (an_hour_ago, an_hour_ago))
    assert cmd_gc(argparse.Namespace(ttl=0.0, run_id_prefix="gc-"), Path()) == 0
    assert capsys.readouterr().out == "gc: 1 run(s) collected, 0 resource(s) removed\n"
    assert not stale.exists()


def test_what_gc_cannot_remove_is_named_and_exit_14(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    state = RunState.create("gc-left", tmp_path / "runs" / "gc-left", None, {})  # no owner: gc may take it
    inside = state.runtime_dir / "data"
    inside.mkdir()
    state.record({"kind": "directory", "service": "x", "path": str(inside)})
    state.record({"kind": "directory", "service": "y", "path": str(outside)})
    assert cmd_gc(argparse.Namespace(ttl=0.0, run_id_prefix="gc-left"), Path()) == ExitCode.TEARDOWN
    out = capsys.readouterr().out
    assert out.startswith("gc: 1 run(s) collected, 1 resource(s) removed; left directory ") and str(outside) in out
    assert outside.is_dir() and not inside.exists()
