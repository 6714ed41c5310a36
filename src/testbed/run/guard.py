"""Who may use a run's servers at a time: a run id names one run, and one `testbed test` at a time uses an
environment, never while `testbed down` tears it down.

`testbed test` holds an exclusive flock on `<runtime dir>/tests.lock` while it runs: a second one at once would
reset the servers under the first, and share its ansible-runner folder. `testbed down` takes it shared, without
waiting, and refuses while a test holds it. Who holds it, and how, is in /proc/locks: a test WRITE, a
teardown READ. The kernel drops a flock with its holder, so a killed `testbed test` never leaves it locked."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from testbed.core.errors import ExitCode, TestbedError
from testbed.core.paths import TESTS_LOCK, runtime_root
from testbed.core.processes import started_at
from testbed.run.store import RunState


def refuse_run_id_in_use(run_id: str) -> None:
    """A run id already naming a live run or an `up` environment is refused: sharing its servers ends
    with one run tearing them down under the other."""
    state = RunState(runtime_root() / run_id)
    try:
        record = state.load()
    except (OSError, ValueError):
        return  # no such run (or an unreadable leftover, which gc deals with)
    if record.torn_down:
        return
    service = record.service or "?"
    lease_until = record.lease_until or 0
    fix = f"leave --run-id out for a fresh one, or `testbed down --run-id {run_id}` first"
    if lease_until > time.time():
        until = time.strftime("%H:%M", time.localtime(lease_until))
        raise TestbedError(
            f"run id {run_id!r} is in use by the environment `testbed up` left for {service} (lease until {until}); "
            + fix
        )
    if record.owner is not None and record.owner.alive():
        raise TestbedError(
            f"run id {run_id!r} is in use by a running run of {service} (pid {record.owner.pid}); " + fix
        )


@contextlib.contextmanager
def testing(state: RunState) -> Iterator[None]:
    """Held by `testbed test` while its tests run against `state`'s environment: refuses (exit 10) while another
    `testbed test` runs against it, and (exit 12) while `testbed down` tears it down."""
    with _lock_file(state) as lock:
        for _attempt in range(3):  # a holder that let go between our try and our look: try again
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holders = _flock_holders(os.fstat(lock.fileno()).st_ino)
            testing_pids = [pid for pid, mode in holders if mode == "WRITE"]
            if testing_pids:
                raise TestbedError(
                    f"`testbed test` ({_since(testing_pids[0])}) is already running against environment "
                    f"{state.runtime_dir.name}: one at a time, as each resets the same servers; wait for it to end "
                    "(or stop it with Ctrl-C), then run `testbed test` again"
                )
            if holders:
                raise TestbedError(
                    f"environment {state.runtime_dir.name} is being torn down by `testbed down`; "
                    "start a new one with `testbed up`",
                    ExitCode.PROVISIONING,
                )
        else:
            raise TestbedError(f"environment {state.runtime_dir.name} is busy: {TESTS_LOCK} stays locked; try again")
        yield


@contextlib.contextmanager
def tearing_down(state: RunState) -> Iterator[None]:
    """Held by `testbed down`; refuses (exit 10) while a `testbed test` runs against `state`."""
    with _lock_file(state) as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)  # shared: two teardowns of one run may overlap
        except BlockingIOError:
            holders = [pid for pid, mode in _flock_holders(os.fstat(lock.fileno()).st_ino) if mode == "WRITE"]
            who = f" (pid {', '.join(map(str, holders))})" if holders else ""
            raise TestbedError(
                f"refusing to tear down {state.runtime_dir.name}: `testbed test`{who} is running against it, and "
                "removing its servers now would break those tests halfway; let it finish (or stop it with Ctrl-C), "
                "then run `testbed down` again"
            ) from None
        yield


def _since(pid: int) -> str:
    started = started_at(pid)
    return f"pid {pid}" + (f", since {time.strftime('%H:%M:%S', time.localtime(started))}" if started else "")


@contextlib.contextmanager
def _lock_file(state: RunState) -> Iterator[IO[str]]:
    path = state.runtime_dir / TESTS_LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "r+", encoding="utf-8") as lock:
        yield lock


def _flock_holders(inode: int) -> list[tuple[int, str]]:
    """Who holds a flock on file `inode`, and how (READ or WRITE), from /proc/locks
    (`1: FLOCK ADVISORY READ <pid> <dev>:<inode> ...`)."""
    try:
        lines = Path("/proc/locks").read_text(encoding="ascii").splitlines()
    except OSError:
        return []
    holders = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5].rsplit(":", 1)[-1] == str(inode):
            pid = int(fields[4]) if fields[4].isdigit() else 0
            if pid and pid != os.getpid():
                holders.append((pid, fields[3]))
    return sorted(set(holders))
