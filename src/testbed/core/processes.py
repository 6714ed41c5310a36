"""Processes by identity (a pid with its kernel start time and boot, so a reused pid never matches), and
the one way testbed stops them: its stop signal, a grace period (shorter once hurried), then SIGKILL."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ProcessIdentity:
    """A pid plus its kernel start time and the boot it belongs to: a reused pid never matches."""

    pid: int
    start_time: int
    boot_id: str

    @classmethod
    def of(cls, pid: int) -> ProcessIdentity | None:
        start = _start_time(pid)
        return None if start is None else cls(pid, start, boot_id())

    def alive(self) -> bool:
        return self.boot_id == boot_id() and _start_time(self.pid) == self.start_time

    def as_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "start_time": self.start_time, "boot_id": self.boot_id}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProcessIdentity:
        return cls(int(data["pid"]), int(data["start_time"]), str(data["boot_id"]))


def proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name: [0] state, [1] parent pid, [19] start time."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return None
    # The command name may hold spaces or parentheses: fields start after the last ')'.
    return stat[stat.rindex(")") + 2 :].split()


def _start_time(pid: int) -> int | None:
    fields = proc_stat(pid)
    if fields is None or fields[0] == "Z":  # a zombie has exited; only its parent's wait is missing
        return None
    return int(fields[19])


def started_at(pid: int) -> float | None:
    """When process `pid` started, as a time.time() value (its start time is in clock ticks since boot)."""
    start = _start_time(pid)
    try:
        boot = next(
            int(line.split()[1])
            for line in Path("/proc/stat").read_text(encoding="ascii").splitlines()
            if line.startswith("btime ")
        )
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    return None if start is None else boot + start / os.sysconf("SC_CLK_TCK")


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
    except OSError:
        return "unknown"


def signal_group(identity: ProcessIdentity, signum: int) -> bool:
    """Signal the process group a launched server leads (it was started in its own session), only if the
    leader is still the process we started."""
    if not identity.alive():
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(identity.pid) == identity.pid:
            os.killpg(identity.pid, signum)
        else:  # not a group leader (an Ansible worker recorded by pid): the process alone
            os.kill(identity.pid, signum)
        return True
    return False


def stop_processes(
    identities: list[tuple[ProcessIdentity, int]],
    grace: float,
    hurry: Callable[[], bool] | None = None,
    stopped: Callable[[ProcessIdentity], None] | None = None,
) -> list[ProcessIdentity]:
    """Send each its stop signal, wait up to `grace` (less once `hurry()` says so), then SIGKILL;
    `stopped(identity)` as each one exits; returns those still alive."""
    for identity, signum in identities:
        signal_group(identity, signum)
    pending = [identity for identity, _ in identities]

    def wait(deadline: float, hurried: Callable[[], bool]) -> None:
        nonlocal pending
        while pending and time.monotonic() < deadline and not hurried():
            alive = [identity for identity in pending if identity.alive()]
            if stopped:
                for identity in (i for i in pending if i not in alive):
                    stopped(identity)
            pending = alive
            if pending:
                time.sleep(0.005)

    wait(time.monotonic() + grace, hurry or (lambda: False))
    for identity in pending:
        signal_group(identity, signal.SIGKILL)
    wait(time.monotonic() + 2.0, lambda: False)
    return pending
