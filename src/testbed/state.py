"""Run ids, run folders and the state file: every resource is recorded as it is created, so that a run
can be torn down from its state file alone (after a crash, a cancel, or by hand)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import signal
import socket
import stat
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from testbed import files
from testbed.errors import ExitCode, TestbedError

STATE_NAME = "state.json"
LOCK_NAME = ".lock"  # beside it: held while the state file is read, changed and written
KEPT_FILE = "kept"  # marks a private data dir kept for debugging (--keep-runner-dir)
OWNER_FILE = "owner.json"  # in ansible-runner's private data dir: who drives it
if TYPE_CHECKING:
    from testbed.run_record import RunRecord

_RUN_ID = re.compile(r"^[a-z0-9][a-z0-9-]{2,62}$")


def runtime_root() -> Path:
    """Where server data, sockets and private files live: reachable by the server user, outside any home."""
    explicit = os.environ.get("TESTBED_RUNTIME_DIR")
    return Path(explicit) if explicit else Path(tempfile.gettempdir()) / f"testbed-{os.getuid()}"


def check_trusted(path: Path, what: str) -> None:
    """A folder whose contents testbed acts on (deletes, kills by) must be ours and writable only by us:
    another local user could otherwise plant state that makes root remove or kill anything."""
    info = path.lstat()
    fix = "remove it (as its owner or root) or set TESTBED_RUNTIME_DIR to a folder of your own"
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise TestbedError(f"{what} {path} is not a plain folder (a link or a file); {fix}", ExitCode.CONFIG)
    if info.st_uid != os.geteuid():
        raise TestbedError(
            f"{what} {path} belongs to uid {info.st_uid}, not to you (uid {os.geteuid()}); {fix}", ExitCode.CONFIG
        )
    if info.st_mode & 0o022:
        raise TestbedError(
            f"{what} {path} is writable by group or others (mode {stat.S_IMODE(info.st_mode):o}); "
            f"`chmod go-w {path}`, or {fix}",
            ExitCode.CONFIG,
        )


def trusted_runtime_root() -> Path:
    """The runtime root, created 0755 (the native servers' unprivileged account must reach its data
    folders below) and checked to be ours and writable only by us."""
    root = runtime_root()
    root.mkdir(mode=0o755, parents=True, exist_ok=True)
    check_trusted(root, "testbed's runtime folder")
    return root


def owned_by_us(path: Path) -> bool:
    try:
        return path.lstat().st_uid == os.geteuid()
    except OSError:
        return False


def new_run_id(environ: Mapping[str, str] | None = None) -> str:
    """A run id unique on this host: GitHub's run, attempt and job when there, and always a random part
    (matrix jobs on one host share the run id and attempt)."""
    env = os.environ if environ is None else environ
    suffix = secrets.token_hex(3)
    base = env.get("TESTBED_RUN_ID", "")
    if not base and env.get("GITHUB_ACTIONS") == "true":
        base = f"gh-{env.get('GITHUB_RUN_ID', '0')}-{env.get('GITHUB_RUN_ATTEMPT', '1')}-{env.get('GITHUB_JOB', 'job')}"
    if not base:
        base = "local-" + time.strftime("%Y%m%d-%H%M%S")
    clean = re.sub(r"[^a-z0-9-]+", "-", base.lower()).strip("-")[:48]
    return f"{clean}-{suffix}"


def check_run_id(run_id: str) -> str:
    if not _RUN_ID.match(run_id):
        raise TestbedError(
            f"run id {run_id!r} must be 3-63 lowercase letters, digits or '-'; leave it out to get a fresh one"
        )
    return run_id


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


class RunState:
    """The state file of one run: canonical copy in the runtime dir (where gc looks), mirrored into the
    run folder (where people and artifacts look). Updates are locked and atomic."""

    def __init__(self, runtime_dir: Path) -> None:
        self.runtime_dir = runtime_dir
        self.path = runtime_dir / STATE_NAME

    @classmethod
    def create(cls, run_id: str, run_folder: Path, owner: ProcessIdentity | None, extra: Mapping[str, Any]) -> RunState:
        root = trusted_runtime_root()
        runtime_dir = root / check_run_id(run_id)
        runtime_dir.mkdir(mode=0o755, exist_ok=True)
        check_trusted(runtime_dir, f"run {run_id}'s runtime folder")
        run_folder.mkdir(parents=True, exist_ok=True)
        os.close(files.open_folder(run_folder))  # a link where the run folder goes is refused, never followed
        state = cls(runtime_dir)
        if not state.path.exists():
            state._write(
                {
                    "run_id": run_id,
                    "host": socket.gethostname(),
                    "created": time.time(),
                    "owner": owner.as_dict() if owner else None,
                    "lease_until": None,
                    "run_folder": str(run_folder.resolve()),
                    "runtime_dir": str(runtime_dir),
                    "resources": [],
                    "servers": {},
                    **extra,
                }
            )
        return state

    @classmethod
    def find(cls, run_id: str) -> RunState:
        state = cls(runtime_root() / check_run_id(run_id))
        if not state.path.is_file():
            raise TestbedError(
                f"no run {run_id!r} on this host (looked in {state.runtime_dir}); "
                "`testbed status` lists the runs that exist",
                ExitCode.CONFIG,
            )
        check_trusted(state.runtime_dir.parent, "testbed's runtime folder")
        if not (owned_by_us(state.runtime_dir) and owned_by_us(state.path)):
            raise TestbedError(
                f"run {run_id}'s state {state.path} is not owned by you (uid {os.geteuid()}): not trusted; "
                "remove it as its owner",
                ExitCode.CONFIG,
            )
        return state

    def read(self) -> dict[str, Any]:
        """The state file's raw contents (writers change them under `update()`; readers `load()`)."""
        data: dict[str, Any] = json.loads(self.path.read_text(encoding="utf-8"))
        return data

    def load(self) -> RunRecord:
        """The run's state, typed. OSError when the file is gone; ValueError when it is not a run's state."""
        from testbed.run_record import RunRecord  # noqa: PLC0415 - the record's config imports the registry

        return RunRecord.from_dict(self.read())

    @contextlib.contextmanager
    def update(self) -> Iterator[dict[str, Any]]:
        """Read-modify-write under an exclusive lock."""
        lock = os.open(self.runtime_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = self.read()
            yield data
            self._write(data)
        finally:
            os.close(lock)

    def record(self, resource: Mapping[str, Any]) -> None:
        """Record a resource the moment it exists, before anything else can fail."""
        with self.update() as data:
            if dict(resource) not in data["resources"]:  # a second `up` records nothing twice
                data["resources"].append(dict(resource))

    def _write(self, data: Mapping[str, Any]) -> None:
        """The canonical copy, whole or not at all (DiskFull when the runtime folder's disk is full); then the
        run folder's mirror, skipped when the run folder is not there, is a link, or its disk is full (teardown
        names those; the mirror keeps its last whole version)."""
        text = json.dumps(data, indent=2, sort_keys=True)
        files.write(self.path, text, root=self.runtime_dir)
        if data.get("run_folder"):
            run_folder = Path(data["run_folder"])
            with contextlib.suppress(FileNotFoundError, files.LinkRefused, files.DiskFull):
                files.write(run_folder / STATE_NAME, text, root=run_folder)


def all_runs(warn: Callable[[str], None] | None = None) -> list[RunState]:
    """The runs of this host: state files another user owns (planted, or left by another account in a
    shared TESTBED_RUNTIME_DIR) are skipped with a warning, never acted on."""
    root = runtime_root()
    if not root.is_dir():
        return []
    check_trusted(root, "testbed's runtime folder")
    runs = []
    for folder in sorted(root.iterdir()):
        path = folder / STATE_NAME
        if not path.is_file():
            continue
        if owned_by_us(folder) and owned_by_us(path):
            runs.append(RunState(folder))
        elif warn:
            warn(f"ignoring {path}: not owned by you (uid {os.geteuid()}), so not trusted")
    return runs


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
