"""This machine as the native servers see it: the account they run as (never root: PostgreSQL refuses),
where their binaries are, a preparation step run as that account, and what a server to launch is."""

from __future__ import annotations

import errno
import os
import pwd
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbed.core import files
from testbed.core.errors import ExitCode, TestbedError
from testbed.core.files import DiskFull

SERVER_USER = "testbed"


_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")


@dataclass(frozen=True)
class Account:
    """Who the servers run as: never root (Postgres refuses), and able to reach the runtime dir."""

    uid: int
    gid: int
    name: str

    @property
    def is_self(self) -> bool:
        return self.uid == os.geteuid()


def invoking_account() -> Account:
    return Account(os.geteuid(), os.getegid(), pwd.getpwuid(os.geteuid()).pw_name)


def server_account() -> Account:
    if os.geteuid() != 0:
        return Account(os.geteuid(), os.getegid(), pwd.getpwuid(os.geteuid()).pw_name)
    try:
        entry = pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                SERVER_USER,
            ],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam(SERVER_USER)
    return Account(entry.pw_uid, entry.pw_gid, SERVER_USER)


def which(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    return next((f"{d}/{name}" for d in _SBIN if Path(f"{d}/{name}").is_file()), None)


@dataclass
class Launch:
    """One server to start: argv, where it keeps data, how it stops."""

    service: str
    argv: list[str]
    data_dir: Path
    stop_signal: int
    prepare: Callable[[], None] | None = None
    # A declared server runs as whoever runs testbed: its command (often a console script in testbed's own
    # environment) need not be reachable by the servers' account.
    as_invoker: bool = False


def as_account(account: Account) -> dict[str, Any]:
    if account.is_self:
        return {}
    return {"user": account.uid, "group": account.gid, "extra_groups": []}


def run_as(account: Account, argv: list[str], what: str, stdin: str | None = None, where: Path | None = None) -> None:
    """Run a preparation step (initdb, ...) as the servers' account, writing into `where`; a failure names
    `what` and its last line, or the full disk under `where`."""
    result = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False, **as_account(account))
    if result.returncode != 0:
        output = result.stderr.strip() or result.stdout.strip()
        full_disk(output, where)
        last = output.splitlines()[-1:] or ["no output"]
        raise TestbedError(f"{what} failed: {last[0]}", ExitCode.PROVISIONING)


def full_disk(output: str, where: Path | None) -> None:
    """Raise DiskFull when a failed step that wrote into `where` failed for want of space: its output says so
    (in English), or that filesystem has (next to) nothing left."""
    if where is not None and (os.strerror(errno.ENOSPC) in output or files.full_filesystem(where)):
        raise DiskFull(where)
