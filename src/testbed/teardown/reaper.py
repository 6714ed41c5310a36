"""What of a run is still there although its state file does not say so: processes marked with the run
(the tests' and the install's stragglers, by testbed.core.supervisor.MARKER in their environment), servers
whose data folders lie in the run's runtime folder (when a test deleted the state file), and the SysV
shared memory (SysV, and POSIX segments in /dev/shm) a SIGKILLed postmaster leaves behind."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
from collections.abc import Iterable, Iterator
from pathlib import Path

from testbed import servers as registry
from testbed.core import processes
from testbed.core.supervisor import MARKER

_IPC_RMID = 0


def _processes(field: str) -> Iterator[tuple[int, list[bytes]]]:
    """Every process but this one and its ancestors, with its NUL-separated /proc/<pid>/<field>
    (`environ` or `cmdline`); processes that vanish or hide it are passed over."""
    spared = set(processes.ancestors(os.getpid()))
    for pid in processes.pids():
        if pid in spared:
            continue
        try:
            parts = Path(f"/proc/{pid}/{field}").read_bytes().split(b"\0")
        except OSError:
            continue
        yield pid, parts


def marked(run_id: str) -> list[int]:
    """Processes carrying the run's marker in their environment (started by its tests or install)."""
    wanted = f"{MARKER}={run_id}".encode()
    return [pid for pid, environ in _processes("environ") if wanted in environ]


def supervising(run_id: str) -> bool:
    """A supervisor of the run's tests or install is running (it carries the run's marker)."""
    for pid in marked(run_id):
        with contextlib.suppress(OSError):
            if b"testbed.core.supervisor" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return True
    return False


def servers_in(runtime_dir: Path) -> list[tuple[int, int]]:
    """Server processes of a run whose state file is gone, each with the signal that stops its kind cleanly:
    those whose command line names a folder inside the run's runtime folder (the servers' data folders, the
    log pump's note), and those a kind finds by what it writes in its data folder (a postmaster's pid file)."""
    inside = f"{runtime_dir}/".encode()
    stop = {kind.program.encode(): kind.stop_signal for kind in registry.REGISTRY.values() if kind.program}
    spared = set(processes.ancestors(os.getpid()))
    found: dict[int, int] = {}
    for pid, argv in _processes("cmdline"):
        if argv and any(part.startswith(inside) for part in argv):
            found[pid] = int(stop.get(argv[0].rsplit(b"/", 1)[-1], signal.SIGTERM))
    data_dirs = (
        [entry for entry in runtime_dir.iterdir() if entry.is_dir() and not entry.is_symlink()]
        if runtime_dir.is_dir()
        else []
    )
    for kind in registry.REGISTRY.values():
        for data_dir in data_dirs:
            for pid in kind.left_running(data_dir):
                if pid not in spared:
                    found.setdefault(pid, int(kind.stop_signal))
    return sorted(found.items())


def names(pids: Iterable[int]) -> list[str]:
    """`postgres (pid 12)`, `testbed.core.logcap (pid 13)`: each live process by its program's (or module's) name."""
    named = []
    for pid in pids:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        program = Path(argv[0]).name or "?"
        if program.startswith("python") and "-m" in argv[:-1]:
            program = argv[argv.index("-m") + 1]
        named.append(f"{program} (pid {pid})")
    return named


def playbooks_of(run_id: str) -> list[tuple[int, int]]:
    """The run's ansible-playbook processes (controller and workers: they setsid(), so ansible-runner's
    cancel, which kills the controller's group, misses them), by the run id in their extravars: inline
    (`-e '{"testbed_run_id": …}'`), or the wrapper's extravars file in the run's private data dir."""
    wanted = (
        f'"testbed_run_id":"{run_id}"'.encode(),
        f'"testbed_run_id": "{run_id}"'.encode(),
        f"/runner-{run_id}/extravars.yml".encode(),
    )
    return [
        (pid, int(signal.SIGTERM))
        for pid, argv in _processes("cmdline")
        if processes.is_ansible_playbook(pid) and any(marker in part for part in argv for marker in wanted)
    ]


def kill(targets: Iterable[tuple[int, int]], grace: float) -> list[int]:
    """Stop each (pid, signal) as processes.stop_processes does (SIGKILL after `grace`); the pids still alive."""
    identities = [(identity, signum) for pid, signum in targets if (identity := processes.ProcessIdentity.of(pid))]
    return [identity.pid for identity in processes.stop_processes(identities, grace)]


def kill_marked(run_id: str) -> tuple[list[str], list[str]]:
    """SIGKILL every process marked with the run, again until none is left (they may fork meanwhile)."""
    seen: list[int] = []

    def find() -> list[int]:
        found = marked(run_id)
        seen.extend(pid for pid in found if pid not in seen)
        return found

    left = processes.kill_until_gone(find)
    return (
        [f"process {pid} (started by the tests or the install)" for pid in seen if pid not in left],
        [f"process {pid} (started by the tests or the install)" for pid in left],
    )


def shared_memory(creators: set[int], orphan_owner: int | None) -> tuple[list[str], list[str]]:
    """Remove SysV shared-memory segments created by one of `creators` (the run's postmasters), and, when
    `orphan_owner` is given (the dedicated server account), that account's segments nobody is attached
    to whose creator is gone. Returns removed and left (named)."""
    removed: list[str] = []
    left: list[str] = []
    try:
        lines = Path("/proc/sysvipc/shm").read_text(encoding="ascii").splitlines()[1:]
    except OSError:
        return removed, left
    libc = ctypes.CDLL(None, use_errno=True)
    for line in lines:
        fields = line.split()
        shmid, cpid, nattch, cuid = int(fields[1]), int(fields[4]), int(fields[6]), int(fields[9])
        ours = cpid in creators
        orphan = orphan_owner is not None and cuid == orphan_owner and nattch == 0 and not processes.alive(cpid)
        if not (ours or orphan):
            continue
        label = f"shared memory segment {shmid} (created by pid {cpid})"
        if libc.shmctl(shmid, _IPC_RMID, None) == 0:
            removed.append(label)
        else:
            left.append(f"{label}: {os.strerror(ctypes.get_errno())}; `ipcrm -m {shmid}` removes it")
    return removed, left


SHARED_MEMORY_FOLDER = Path("/dev/shm")  # noqa: S108 - where POSIX shared memory lives (PostgreSQL's segments)


def shared_memory_files(owner: int | None, folder: Path = SHARED_MEMORY_FOLDER) -> tuple[list[str], list[str]]:
    """Remove what killed servers of the dedicated account `owner` left in `folder`, each kind judging its own
    (servers.base.ServerKind.left_in_shared_memory). Returns removed and left (named)."""
    removed: list[str] = []
    left: list[str] = []
    if owner is None:
        return removed, left
    for kind in registry.REGISTRY.values():
        try:
            found = kind.left_in_shared_memory(owner, folder)
        except OSError:
            continue
        for entry in found:
            try:
                entry.unlink()
                removed.append(f"shared memory {entry}")
            except FileNotFoundError:
                continue
            except OSError as exc:
                left.append(f"shared memory {entry}: {exc.strerror}; `rm {entry}` removes it")
    return removed, left
