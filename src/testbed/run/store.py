"""Run ids and the state file: every resource is recorded as it is created, so that a run can be torn down
from its state file alone (after a crash, a cancel, or by hand); the runs of this host, and the environment
`testbed up` left for a service."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from testbed.core import files
from testbed.core.errors import ExitCode, TestbedError
from testbed.core.paths import LOCK_NAME, STATE_NAME, check_trusted, owned_by_us, runtime_root, trusted_runtime_root
from testbed.core.processes import ProcessIdentity
from testbed.run.record import RunRecord

_RUN_ID = re.compile(r"^[a-z0-9][a-z0-9-]{2,62}$")


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
    if not _RUN_ID.fullmatch(run_id):
        raise TestbedError(
            f"run id {run_id!r} must be 3-63 lowercase letters, digits or '-'; leave it out to get a fresh one"
        )
    return run_id


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


def leased_run(directory: Path) -> RunState | None:
    """The environment `testbed up` left for this service (this very folder), if any."""
    now = time.time()
    for state in all_runs():
        try:
            record = state.load()
        except (OSError, ValueError):
            continue
        if record.config is not None and record.config.directory == directory and record.leased(now):
            return state
    return None


def require_up(directory: Path) -> RunState:
    state = leased_run(directory)
    if state is None:
        raise TestbedError(
            f"no environment is up for {directory.name}; start one with `testbed up`", ExitCode.PROVISIONING
        )
    return state
