"""Where testbed keeps what a run needs on this machine: the runtime root (trusted only when it is ours and
writable only by us), the layout of a run's runtime folder, and the kept PostgreSQL templates."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from testbed.core.errors import ExitCode, TestbedError

# What testbed keeps in a run's runtime folder (<runtime root>/<run id>/), beside each server's data folder,
# which is named after the server: one place, so that no server may be named like one of them.
STATE_NAME = "state.json"  # the run's state file (the run folder holds a mirror)
LOCK_NAME = ".lock"  # beside it: held while the state file is read, changed and written
PRIVATE_DIR = "private"  # the run's 0700 folder: its secrets
SECRETS_NAME = "secrets.json"  # in PRIVATE_DIR
TESTS_LOCK = "tests.lock"  # held by `testbed test` (exclusive) and `testbed down` (shared)
START_LOCK = ".start.lock"  # one start of a run's servers at a time (native or Docker)
GATE_NAME = "reset.sock"  # the dev loop's reset gate
HANDOVER_NAME = "handover.sock"  # the per-test reset's socket (tests.isolation: test, the fixtures)
SHARES_FILE = "worker-shares.json"  # each pytest worker's share of the servers (0600)
COVERAGE_DATA = "coverage.data"  # the tests' coverage data while pytest runs
DISK_FULL_NOTE = "disk-full"  # the log pump's one line about a full disk
RUNTIME_ENTRIES: dict[str, str] = {
    STATE_NAME: "its state file",
    LOCK_NAME: "its state file's lock",
    PRIVATE_DIR: "its secrets folder",
    TESTS_LOCK: "the lock `testbed test` holds",
    START_LOCK: "the servers' start lock",
    GATE_NAME: "the dev loop's reset gate",
    HANDOVER_NAME: "the per-test reset's socket",
    SHARES_FILE: "the pytest workers' shares",
    COVERAGE_DATA: "the tests' coverage data",
    DISK_FULL_NOTE: "the log pump's note of a full disk",
}

# ansible-runner's private data dir (<runtime root>/runner-<run id>/):
KEPT_FILE = "kept"  # marks one kept for debugging (--keep-runner-dir)
OWNER_FILE = "owner.json"  # who drives it


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


TEMPLATE_TTL = 7 * 24 * 3600  # gc removes a PostgreSQL template unused this long


def template_root() -> Path:
    """Initialised PostgreSQL clusters, kept between runs: initdb is most of a native start's CPU."""
    return runtime_root() / "templates"
