"""The native backend: the run's servers as processes from locally installed binaries, started
concurrently, detached in their own sessions, recorded in the state file the moment they exist. What to
run for each server comes from its kind (testbed.servers)."""

from __future__ import annotations

import errno
import fcntl
import grp
import os
import pwd
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from testbed import files, logcap
from testbed.at_once import each_at_once
from testbed.errors import ExitCode, TestbedError
from testbed.files import DiskFull, is_disk_full
from testbed.state import ProcessIdentity, RunState, runtime_root
from testbed.supervisor import MARKER

SERVER_USER = "testbed"
TEMPLATE_TTL = 7 * 24 * 3600  # gc removes a PostgreSQL template unused this long
_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")
START_LOCK = ".start.lock"  # in the run's runtime folder: one start at a time


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


def binaries(servers: Mapping[str, Any]) -> tuple[dict[str, str], list[str]]:
    """The binary serving each server, and notices (the Dragonfly stand-in). A missing one is an error
    that says how to install it."""
    from testbed.servers import kind_of  # noqa: PLC0415 - the kinds import this module

    found: dict[str, str] = {}
    notices: list[str] = []
    missing: list[str] = []
    for name, settings in servers.items():
        located = kind_of(name, settings).locate(settings)
        if isinstance(located, str):
            missing.append(located)
            continue
        found[name] = located.path
        if located.notice:
            notices.append(located.notice)
    if missing:
        raise TestbedError(
            "native backend: missing server binaries: "
            + "; ".join(missing)
            + " — `./bootstrap setup-native` installs them, or use --backend docker",
            ExitCode.PROVISIONING,
        )
    return found, notices


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


def _server_env() -> dict[str, str]:
    """Servers need no credentials: keep AWS's and testbed's own variables out of their environment."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TESTBED_", "ANSIBLE_"))}


def _as_account(account: Account) -> dict[str, Any]:
    if account.is_self:
        return {}
    return {"user": account.uid, "group": account.gid, "extra_groups": []}


def template_root() -> Path:
    """Initialised PostgreSQL clusters, kept between runs: initdb is most of a native start's CPU."""
    return runtime_root() / "templates"


def run_as(account: Account, argv: list[str], what: str, stdin: str | None = None, where: Path | None = None) -> None:
    """Run a preparation step (initdb, ...) as the servers' account, writing into `where`; a failure names
    `what` and its last line, or the full disk under `where`."""
    result = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False, **_as_account(account))
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


def start(state: RunState, servers: Mapping[str, Mapping[str, Any]], log_dir: Path) -> dict[str, Any]:
    """Start every server at once; return {service: {pid, binary}} and notices. Readiness is the
    probes' job, not this one's."""
    # One start at a time per run: the wrapper's head start and the playbook's servers phase may overlap.
    with (state.runtime_dir / START_LOCK).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _start_locked(state, servers, log_dir)


def _start_locked(state: RunState, servers: Mapping[str, Mapping[str, Any]], log_dir: Path) -> dict[str, Any]:
    running = {r.service for r in state.load().processes() if r.identity().alive()}
    servers = {name: settings for name, settings in servers.items() if name not in running}
    if not servers:
        return {"started": {}, "notices": [], "changed": False}  # a second `up` changes nothing
    found, notices = binaries(servers)
    account = server_account()
    run_dir = state.runtime_dir
    from testbed.servers import kind_of  # noqa: PLC0415 - the kinds import this module

    launches = [
        kind_of(service, settings).launch(settings, found[service], run_dir, account)
        for service, settings in servers.items()
    ]
    hints = {service: kind_of(service, settings).exited_hint(settings) for service, settings in servers.items()}
    # Each server writes into a pipe; the pump keeps its log, capped (testbed.logcap).
    pipes = _log_pump(state, [item.service for item in launches], log_dir)

    started: dict[str, Any] = {}
    lock = threading.Lock()

    def launch(item: Launch) -> None:
        owner = invoking_account() if item.as_invoker else account
        try:
            state.record({"kind": "directory", "service": item.service, "path": str(item.data_dir)})
            if item.data_dir.exists():  # an earlier attempt that failed half-way: start clean
                shutil.rmtree(item.data_dir)
                shutil.rmtree(run_dir / "sockets", ignore_errors=True)
            item.data_dir.mkdir(mode=0o700)
            os.chown(item.data_dir, owner.uid, owner.gid)
            if item.prepare:
                item.prepare()
            process = subprocess.Popen(
                item.argv,
                stdin=subprocess.DEVNULL,
                stdout=pipes[item.service],
                stderr=subprocess.STDOUT,
                cwd=run_dir,
                start_new_session=True,
                close_fds=True,
                # A declared server's command line need not name the runtime folder, by which teardown
                # finds servers when the state file is gone: the marker lets it find this one.
                env={**_server_env(), MARKER: run_dir.name} if item.as_invoker else _server_env(),
                **_as_account(owner),
            )
            identity = ProcessIdentity.of(process.pid)
            if identity is None:
                hint = f" ({hints[item.service]})" if hints.get(item.service) else ""
                raise TestbedError(
                    f"{item.service} exited at once{hint}; see {log_dir / item.service}.log", ExitCode.PROVISIONING
                )
            state.record(
                {
                    "kind": "process",
                    "service": item.service,
                    **identity.as_dict(),
                    "stop_signal": int(item.stop_signal),
                    "argv": item.argv[:1],
                }
            )
            with lock:
                started[item.service] = {"pid": process.pid, "binary": item.argv[0]}
        except OSError as exc:
            if is_disk_full(exc):
                raise DiskFull(Path(exc.filename or item.data_dir), exc.errno or 28) from exc
            raise TestbedError(f"{item.service}: cannot start: {exc}", ExitCode.PROVISIONING) from exc
        finally:
            os.close(pipes.pop(item.service))  # the server holds its end now; the pump sees EOF when it exits

    try:
        each_at_once(launch, launches)
    finally:
        for write_end in pipes.values():
            os.close(write_end)
    return {"started": started, "notices": notices, "user": account.name, "group": grp.getgrgid(account.gid).gr_name}


def _log_pump(state: RunState, services: list[str], log_dir: Path) -> dict[str, int]:
    """Start the pump that keeps these servers' logs (capped, see testbed.logcap), recorded in the state, and
    return each server's end of its pipe. The log files are opened here, following no link from the run folder
    down: a refused link or a full disk fails the start at once, in one line."""
    read_ends: list[int] = []
    write_ends: dict[str, int] = {}
    logs: list[BinaryIO] = []
    try:
        argv = [sys.executable, "-m", "testbed.logcap", str(state.runtime_dir / logcap.DISK_FULL_NOTE)]
        for service in services:
            path = log_dir / f"{service}.log"
            logs.append(files.open_log(path, root=log_dir.parent))
            read_end, write_ends[service] = os.pipe()
            read_ends.append(read_end)
            argv += [str(read_end), str(logs[-1].fileno()), str(path)]
        pump = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=state.runtime_dir,
            start_new_session=True,
            pass_fds=[*read_ends, *(log.fileno() for log in logs)],
            env=_server_env(),
        )
        identity = ProcessIdentity.of(pump.pid)
        if identity is not None:  # it ignores SIGTERM: teardown waits for it to read the servers' last words
            state.record({"kind": "log_pump", **identity.as_dict(), "stop_signal": int(signal.SIGTERM)})
    except BaseException:
        for fd in write_ends.values():
            os.close(fd)
        raise
    finally:
        for fd in read_ends:
            os.close(fd)
        for log in logs:
            log.close()
    return write_ends
