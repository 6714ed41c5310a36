"""A run's servers are not shared or pulled away: one `testbed test` at a time, no `testbed down` under it, and a
run id in use refused (another process holds the lock here, as another command would)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.core.errors import ExitCode, TestbedError
from testbed.core.paths import TESTS_LOCK
from testbed.core.processes import ProcessIdentity
from testbed.run import guard
from testbed.run.store import RunState


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RunState:
    monkeypatch.setenv("TESTBED_RUNTIME_DIR", str(tmp_path / "root"))
    return RunState.create("guarded", tmp_path / "runs" / "guarded", None, {"service": "basic"})


@contextlib.contextmanager
def _held(state: RunState, how: int) -> Iterator[int]:
    """Another process holding the tests lock (LOCK_EX: `testbed test`, LOCK_SH: `testbed down`); its pid."""
    code = (f"import fcntl, os, sys\nfd = os.open({str(state.runtime_dir / TESTS_LOCK)!r}, os.O_RDWR | os.O_CREAT)\n"
            f"fcntl.flock(fd, {how})\nprint('held', flush=True)\nsys.stdin.read()")
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        yield holder.pid
    finally:
        holder.communicate(timeout=30)


def test_a_second_testbed_test_is_refused_naming_the_first(state: RunState) -> None:
    with _held(state, fcntl.LOCK_EX) as pid, pytest.raises(TestbedError) as caught, guard.testing(state):
        pass
    assert caught.value.exit_code == ExitCode.CONFIG
    assert str(caught.value).startswith(f"`testbed test` (pid {pid}, since ") and "is already running" in str(
        caught.value)


def test_testbed_test_is_refused_while_down_tears_down(state: RunState) -> None:
    with _held(state, fcntl.LOCK_SH), pytest.raises(TestbedError) as caught, guard.testing(state):
        pass
    assert caught.value.exit_code == ExitCode.PROVISIONING
    assert str(caught.value) == ("environment guarded is being torn down by `testbed down`; "
                                 "start a new one with `testbed up`")


def test_down_is_refused_while_testbed_test_runs_and_two_downs_overlap(state: RunState) -> None:
    with _held(state, fcntl.LOCK_EX) as pid, pytest.raises(TestbedError) as caught, guard.tearing_down(state):
        pass
    assert f"refusing to tear down guarded: `testbed test` (pid {pid}) is running against it" in str(caught.value)
    with _held(state, fcntl.LOCK_SH), guard.tearing_down(state):
        pass  # a shared lock: no refusal
    with guard.testing(state):
        pass  # nobody holds it any more


@pytest.mark.parametrize(("owner", "lease", "expected"), [
    (True, None, "is in use by a running run of basic (pid "),
    (False, 3600.0, "is in use by the environment `testbed up` left for basic (lease until "),
])
def test_a_run_id_in_use_is_refused(state: RunState, owner: bool, lease: float | None, expected: str) -> None:
    with state.update() as data:
        data["owner"] = ProcessIdentity.of(os.getpid()).as_dict() if owner else None  # type: ignore[union-attr]
        data["lease_until"] = time.time() + lease if lease else None
    with pytest.raises(TestbedError) as caught:
        guard.refuse_run_id_in_use("guarded")
    assert f"run id 'guarded' {expected}" in str(caught.value)
    assert str(caught.value).endswith("leave --run-id out for a fresh one, or `testbed down --run-id guarded` first")


def test_a_run_id_that_is_free_torn_down_or_ownerless_is_not_refused(state: RunState) -> None:
    guard.refuse_run_id_in_use("unknown-run")
    guard.refuse_run_id_in_use("guarded")  # no owner, no lease
    with state.update() as data:
        data["owner"] = ProcessIdentity.of(os.getpid()).as_dict()  # type: ignore[union-attr]
        data["torn_down"] = time.time()
    guard.refuse_run_id_in_use("guarded")
