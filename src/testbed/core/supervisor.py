"""Nothing a run starts outlives it: the tests phase and the dependency install run under a small
supervisor, `python -m testbed.core.supervisor DEADLINE -- ARGV...`.

Why a subreaper and not only a process group: a test that calls `setsid`, `nohup … &` or double-forks
leaves pytest's group and session, and a cgroup needs privileges and a delegated hierarchy that CI
runners and containers rarely give. With PR_SET_CHILD_SUBREAPER every orphan below the supervisor is
reparented to it instead of to init, so "what is left" is simply "every descendant of the supervisor",
found by walking /proc; whatever escapes even that (the supervisor itself SIGKILLed) still carries the
MARKER variable in its environment, by which teardown and gc find it (testbed.teardown.reaper).

The supervisor starts ARGV in a new session; when it ends, on SIGTERM/SIGINT/SIGHUP, when DEADLINE
seconds have passed (0: none), or when its owner is gone, it kills every remaining descendant and exits with
ARGV's code, 128+signal, or ExitCode.DEADLINE.

Its owner is the testbed command driving the run (else the ansible-playbook): a SIGKILLed `testbed test`
would otherwise leave its tests running, reparented to init, while the playbook (which ignores the hangup of
its terminal) waits for them. The supervisor watches the owner itself (a pidfd) rather than relying on
PR_SET_PDEATHSIG, which fires when the *parent* dies: the supervisor's parent is an Ansible worker, which
outlives the testbed command (and its own controller), so the signal would never come. Once the supervisor
has ended the tests, the playbook finishes its task and ends by itself (`testbed run`'s tears down)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from testbed.core import processes
from testbed.core.errors import ExitCode

if TYPE_CHECKING:
    from testbed.run.store import RunState

MARKER = "TESTBED_SUPERVISED_RUN"  # set for everything a run's tests and install start: <run id>
OWNER_VARIABLE = "TESTBED_OWNER"  # PID:START_TIME of the testbed command driving a playbook (runner_envvars)
_PR_SET_CHILD_SUBREAPER = 36


def descendants(root: int) -> list[int]:
    """Every process below `root`, by parent links in /proc."""
    children: dict[int, list[int]] = {}
    for pid in processes.pids():
        children.setdefault(processes.parent(pid), []).append(pid)
    found: list[int] = []
    pending = list(children.get(root, []))
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending += children.get(pid, [])
    return found


def _reap() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def kill_descendants(root: int, patience: float = 10.0) -> None:
    """SIGKILL everything below `root` until nothing is left (new forks included), reaping what is
    reparented to us."""
    processes.kill_until_gone(lambda: descendants(root), patience, reap=_reap)


def _become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        # Without it orphans go to init; the environment marker still lets teardown find them.
        sys.stderr.write(f"testbed.core.supervisor: PR_SET_CHILD_SUBREAPER failed (errno {ctypes.get_errno()})\n")


class _Stop(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def _stop(code: int) -> None:
    raise _Stop(code)


def owner_of_this_process() -> str | None:
    """Whom a supervisor started from here serves, as `PID:START_TIME`: the testbed command driving the run
    (OWNER_VARIABLE, which the wrapper sets for its playbook), else the controller of the ansible-playbook run
    above this process (core.processes.playbook_above)."""
    owner = os.environ.get(OWNER_VARIABLE)
    if owner:
        return owner
    controller = processes.playbook_above(os.getpid())
    start = processes.start_time(controller) if controller else None
    return f"{controller}:{start}" if start is not None else None


def _watch_owner(owner: str) -> None:
    """Stop (as on SIGHUP) once the owner has exited: a SIGKILLed `testbed test` must not leave its tests
    running, reparented to init. A pidfd wakes this thread when it exits (a poll where there is none); the
    start time tells a reused pid from the owner."""
    pid_text, _, start_text = owner.partition(":")
    pid, start = int(pid_text), int(start_text)
    try:
        pidfd: int | None = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None

    def gone() -> bool:
        return processes.start_time(pid) != start

    def wait() -> None:
        while not gone():
            if pidfd is not None:
                select.select([pidfd], [], [])
            else:
                time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGHUP)

    threading.Thread(target=wait, daemon=True).start()


def main(argv: list[str]) -> int:
    owner = None
    if len(argv) >= 3 and argv[1] == "--owner":
        owner, argv = argv[2], [argv[0], *argv[3:]]
    if len(argv) < 3 or argv[1] != "--":
        sys.stderr.write("usage: python -m testbed.core.supervisor DEADLINE_SECONDS [--owner PID:START] -- ARGV...\n")
        return int(ExitCode.USAGE_ERROR)
    deadline_seconds = float(argv[0])
    # Signals and the deadline interrupt a blocking wait (no polling): the handlers raise.
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda received, _frame: _stop(128 + received))
    signal.signal(signal.SIGALRM, lambda _received, _frame: _stop(int(ExitCode.DEADLINE)))
    _become_subreaper()
    try:
        if owner:
            _watch_owner(owner)
        child = subprocess.Popen(argv[2:], start_new_session=True)
        if deadline_seconds > 0:
            signal.setitimer(signal.ITIMER_REAL, deadline_seconds)
        code = os.waitstatus_to_exitcode(os.waitpid(child.pid, 0)[1])
        code = 128 - code if code < 0 else code
        child.returncode = code
    except _Stop as stop:
        code = stop.code
    except OSError as exc:  # not found, not executable: one line, as a shell says it
        sys.stderr.write(f"{argv[2]}: {exc.strerror or exc}\n")
        code = 127
    signal.setitimer(signal.ITIMER_REAL, 0)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGALRM):
        signal.signal(signum, signal.SIG_IGN)  # nothing interrupts the cleanup
    kill_descendants(os.getpid())
    return code


def run(
    argv: list[str],
    *,
    state: RunState | None,
    run_id: str,
    what: str,
    deadline: float,
    env: Mapping[str, str],
    cwd: Path,
    stdout: IO[Any] | int | None,
    stderr: IO[Any] | int | None,
    on_start: Callable[[subprocess.Popen[bytes]], None] | None = None,
) -> tuple[int, bytes, bytes]:
    """Run argv under a supervisor in its own session, marked with the run id, recorded in the run's state
    the moment it exists (with the Ansible worker waiting on it, which setsid()s away from the cancel of
    its controller): teardown, the wrapper's signal path and gc stop both. Returns code, stdout, stderr
    (bytes only where PIPE was asked for). The supervisor ends everything when its owner (the testbed
    command, else the ansible-playbook, driving the run) is gone; `on_start` gets the supervisor's process."""
    owner = owner_of_this_process()
    watch = ["--owner", owner] if owner else []
    process = subprocess.Popen(
        [sys.executable, "-m", "testbed.core.supervisor", str(deadline), *watch, "--", *argv],
        cwd=cwd,
        env={**env, MARKER: run_id},
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
    )
    recorded = _record(state, process.pid, what)
    if on_start is not None:
        on_start(process)
    try:
        out, err = process.communicate()
        return process.returncode, out or b"", err or b""
    finally:
        if process.poll() is None:  # this caller was interrupted first: stop the supervisor, so its tree
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        _unrecord(state, recorded)


def _record(state: RunState | None, pid: int, what: str) -> list[dict[str, Any]]:
    identity = processes.ProcessIdentity.of(pid)
    if state is None or identity is None:
        return []
    records = [{"kind": "supervisor", "what": what, **identity.as_dict(), "stop_signal": int(signal.SIGTERM)}]
    worker = processes.ProcessIdentity.of(os.getpid())
    if worker is not None and processes.is_ansible_playbook(os.getpid()):
        records.append({"kind": "controller", "what": "ansible worker", **worker.as_dict(), "stop_signal": 15})
    with contextlib.suppress(OSError, ValueError), state.update() as data:
        data["resources"] += [r for r in records if r not in data["resources"]]
    return records


def _unrecord(state: RunState | None, records: list[dict[str, Any]]) -> None:
    # The state file may be gone (a test deleted it): teardown then finds stragglers by the marker.
    if state is None or not records:
        return
    with contextlib.suppress(OSError, ValueError), state.update() as data:
        data["resources"] = [r for r in data["resources"] if r != records[0]]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
