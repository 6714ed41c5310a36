"""The native backend: the run's servers as processes from locally installed binaries, started
concurrently, detached in their own sessions, recorded in the state file the moment they exist, their logs
kept by a capped pump. What to run for each server comes from its kind (testbed.servers)."""

from __future__ import annotations

import fcntl
import grp
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

from testbed.core import files
from testbed.core.concurrency import each_at_once
from testbed.core.environ import passed_on
from testbed.core.errors import ExitCode, TestbedError
from testbed.core.files import DiskFull, is_disk_full
from testbed.core.host import Launch, as_account, invoking_account, server_account
from testbed.core.paths import DISK_FULL_NOTE, START_LOCK
from testbed.core.processes import ProcessIdentity
from testbed.core.supervisor import MARKER
from testbed.run.store import RunState
from testbed.servers import kind_of


def binaries(servers: Mapping[str, Any]) -> tuple[dict[str, str], list[str]]:
    """The binary serving each server, and notices (the Dragonfly stand-in). A missing one is an error
    that says how to install it."""
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

    launches = [
        kind_of(service, settings).launch(settings, found[service], run_dir, account)
        for service, settings in servers.items()
    ]
    hints = {service: kind_of(service, settings).exited_hint(settings) for service, settings in servers.items()}
    entries = {service: kind_of(service, settings).run_dir_entries for service, settings in servers.items()}
    # Each server writes into a pipe; the pump keeps its log, capped (testbed.core.logcap).
    pipes = _log_pump(state, [item.service for item in launches], log_dir)

    started: dict[str, Any] = {}
    lock = threading.Lock()

    def launch(item: Launch) -> None:
        owner = invoking_account() if item.as_invoker else account
        try:
            state.record({"kind": "directory", "service": item.service, "path": str(item.data_dir)})
            if item.data_dir.exists():  # an earlier attempt that failed half-way: start clean
                shutil.rmtree(item.data_dir)
                # Its own entries only: the others' servers may be running (a second start re-launches only the
                # servers whose process is gone), and PostgreSQL's sockets folder holds its lock file.
                for path in (run_dir / entry for entry in entries[item.service]):
                    if path.is_dir() and not path.is_symlink():
                        shutil.rmtree(path)
                    else:
                        path.unlink(missing_ok=True)
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
                env={**passed_on(os.environ), MARKER: run_dir.name} if item.as_invoker else passed_on(os.environ),
                **as_account(owner),
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
    """Start the pump that keeps these servers' logs (capped, see testbed.core.logcap), recorded in the state, and
    return each server's end of its pipe. The log files are opened here, following no link from the run folder
    down: a refused link or a full disk fails the start at once, in one line."""
    read_ends: list[int] = []
    write_ends: dict[str, int] = {}
    logs: list[BinaryIO] = []
    try:
        argv = [sys.executable, "-m", "testbed.core.logcap", str(state.runtime_dir / DISK_FULL_NOTE)]
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
            env=passed_on(os.environ),
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
