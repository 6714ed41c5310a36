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
        start = start_time(pid)
        return None if start is None else cls(pid, start, boot_id())

    def alive(self) -> bool:
        return self.boot_id == boot_id() and start_time(self.pid) == self.start_time

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


def start_time(pid: int) -> int | None:
    """The kernel start time of a live process (None when it is gone, or a zombie: it has exited, and only its
    parent's wait is missing)."""
    fields = proc_stat(pid)
    if fields is None or fields[0] == "Z":
        return None
    return int(fields[19])


def alive(pid: int) -> bool:
    return start_time(pid) is not None


def parent(pid: int) -> int:
    """Its parent's pid (0 when it is gone)."""
    fields = proc_stat(pid)
    return int(fields[1]) if fields else 0


def ancestors(pid: int) -> list[int]:
    """`pid` and every process above it, nearest first (init excluded)."""
    found: list[int] = []
    while pid > 1 and pid not in found:
        found.append(pid)
        pid = parent(pid)
    return found


def pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def runs_as(program: str, uid: int) -> bool:
    """A process whose name (comm) is `program` runs with real uid `uid`; a zombie (exited, not yet reaped) does
    not count (alive)."""
    for pid in pids():
        try:
            status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        ours = fields.get("Uid", "").split()[:1] == [str(uid)]
        if fields.get("Name", "").strip() == program and ours and alive(pid):
            return True
    return False


def is_ansible_playbook(pid: int) -> bool:
    """Whether `pid` is an ansible-playbook process (a controller, or one of its forked workers)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(part.endswith(b"ansible-playbook") for part in argv[:2])


def playbook_above(pid: int) -> int | None:
    """The controller of the ansible-playbook run above `pid` (itself included): the nearest ansible-playbook
    process, or the one it was forked from while its parent is one too (a worker is a fork of the controller,
    with its command line, and ends with its task). A playbook further up that started this one is another
    run's, not this one's."""
    chain = ancestors(pid)
    nearest = next((index for index, ancestor in enumerate(chain) if is_ansible_playbook(ancestor)), None)
    if nearest is None:
        return None
    while nearest + 1 < len(chain) and is_ansible_playbook(chain[nearest + 1]):
        nearest += 1
    return chain[nearest]


def started_at(pid: int) -> float | None:
    """When process `pid` started, as a time.time() value (its start time is in clock ticks since boot)."""
    start = start_time(pid)
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


def kill_until_gone(
    find: Callable[[], list[int]], patience: float = 10.0, reap: Callable[[], None] | None = None
) -> list[int]:
    """SIGKILL what `find()` lists, again until it lists nothing (what it finds may fork meanwhile) or
    `patience` runs out; `reap()` after each round (a subreaper's orphans). Returns what is still found."""
    give_up = time.monotonic() + patience
    found = find()
    while found and time.monotonic() < give_up:
        for pid in found:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if reap is not None:
            reap()
        time.sleep(0.01)
        found = find()
    return found
