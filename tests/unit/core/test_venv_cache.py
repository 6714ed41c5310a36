"""`testbed gc` prunes the service virtualenv cache (dependencies.py): a virtualenv unused for VENV_TTL goes,
as does a half-built one a killed install left; one a run that is up tests with, one being installed, and one
used lately stay. No process starts: the virtualenvs are folders with the marks testbed writes."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

import pytest

from testbed.config.service import ServiceConfig, TestsSpec
from testbed.core import venv_cache
from testbed.core.processes import ProcessIdentity
from testbed.phases import dependencies
from testbed.run.store import RunState
from testbed.teardown import gc

DAY = 24 * 3600


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TESTBED_CACHE_DIR", str(tmp_path / "cache"))
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("TESTBED_RUNTIME_DIR", str(runtime))
    root = venv_cache.cache_root()
    root.mkdir(parents=True)
    return root


def _venv(cache: Path, name: str, *, last_used: float | None, created: float | None = None) -> Path:
    """A cached virtualenv as ensure() leaves it: its python, its lock file, and (when the install finished)
    its ready mark, whose time is its last use."""
    venv = cache / name
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()
    (cache / f"{name}.lock").touch()
    if last_used is not None:
        mark = venv / venv_cache.READY_MARK
        mark.touch()
        os.utime(mark, (last_used, last_used))
    if created is not None:
        os.utime(venv, (created, created))
    return venv


def test_gc_removes_only_the_virtualenvs_nobody_uses(cache: Path, tmp_path: Path) -> None:
    now = time.time()
    old = _venv(cache, "svc-old", last_used=now - 8 * DAY)
    recent = _venv(cache, "svc-recent", last_used=now - 6 * DAY)
    up = _venv(cache, "svc-up", last_used=now - 30 * DAY)  # a leased environment's, tested with for a month
    half_built = _venv(cache, "svc-killed", last_used=None, created=now - 3600)
    installing = _venv(cache, "svc-installing", last_used=None, created=now - 3600)
    state = RunState.create("gc-venv-up", tmp_path / "runs" / "gc-venv-up", ProcessIdentity.of(os.getpid()), {})
    with state.update() as data:
        data["python"] = str(up / "bin" / "python")
    with (cache / "svc-installing.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # an install in progress holds it
        results = gc.gc()
    assert results == []  # the run that is up is not collected
    assert sorted(p.name for p in cache.iterdir()) == [
        "svc-installing", "svc-installing.lock", "svc-recent", "svc-recent.lock", "svc-up", "svc-up.lock",
    ]  # fmt: skip
    assert not old.exists() and not half_built.exists() and recent.is_dir() and installing.is_dir()


def test_a_reused_virtualenv_counts_as_used(cache: Path, tmp_path: Path) -> None:
    service = ServiceConfig(
        name="svc", directory=tmp_path, servers={}, migrations=None, tests=TestsSpec(), install="pip", secrets=[],
        env={},
    )  # fmt: skip
    now = time.time()
    venv = _venv(cache, f"svc-{dependencies.fingerprint(service, 'pip')}", last_used=now - 8 * DAY)
    python, reused = dependencies.ensure(service)  # nothing to install: the mark says it is complete
    assert (python, reused) == (venv / "bin" / "python", True)
    assert (venv / venv_cache.READY_MARK).stat().st_mtime > now - 60
    assert venv_cache.prune(in_use=[]) == []
    assert venv.is_dir()
