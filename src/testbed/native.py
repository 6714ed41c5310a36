"""The native backend: the catalogue's servers as processes from locally installed binaries, started
concurrently, detached in their own sessions, recorded in the state file the moment they exist."""

from __future__ import annotations

import contextlib
import fcntl
import grp
import hashlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbed.errors import ExitCode, TestbedError
from testbed.state import ProcessIdentity, RunState, runtime_root

SERVER_USER = "testbed"
TEMPLATE_TTL = 7 * 24 * 3600  # gc removes a PostgreSQL template unused this long
DRAGONFLY_STAND_IN = "Dragonfly: no dragonfly binary here, redis-server (same protocol) stands in"
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


def _which(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    return next((f"{d}/{name}" for d in _SBIN if Path(f"{d}/{name}").is_file()), None)


def postgres_bindir() -> Path | None:
    explicit = os.environ.get("TESTBED_PG_BINDIR")
    if explicit:  # an explicit choice is the only candidate: a wrong one must not fall back silently
        path = Path(explicit)
        return path if (path / "postgres").is_file() and (path / "initdb").is_file() else None
    candidates = [Path("/usr/lib/postgresql/15/bin")]
    pg_config = _which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    return next((c for c in candidates if (c / "postgres").is_file() and (c / "initdb").is_file()), None)


def binaries(servers: Mapping[str, Any]) -> tuple[dict[str, str], list[str]]:
    """The binary serving each server, and notices (the Dragonfly stand-in). A missing one is an error
    that says how to install it."""
    found: dict[str, str] = {}
    notices: list[str] = []
    missing: list[str] = []
    if "postgres" in servers:
        bindir = postgres_bindir()
        if bindir:
            found["postgres"] = str(bindir)
        else:
            missing.append("PostgreSQL 15 (apt-get install postgresql-15, or set TESTBED_PG_BINDIR)")
    if "dragonfly" in servers:
        dragonfly = _which("dragonfly")
        redis = _which("redis-server")
        if dragonfly:
            found["dragonfly"] = dragonfly
        elif redis:
            found["dragonfly"] = redis
            notices.append(DRAGONFLY_STAND_IN)
        else:
            missing.append("dragonfly or redis-server (apt-get install redis-server)")
    if "nats" in servers:
        nats = _which("nats-server")
        if nats:
            found["nats"] = nats
        else:
            missing.append("nats-server (apt-get install nats-server)")
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


def _server_env() -> dict[str, str]:
    """Servers need no credentials: keep AWS's and testbed's own variables out of their environment."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TESTBED_", "ANSIBLE_"))}


def _as_account(account: Account) -> dict[str, Any]:
    if account.is_self:
        return {}
    return {"user": account.uid, "group": account.gid, "extra_groups": []}


def _postgres(settings: Mapping[str, Any], bindir: Path, run_dir: Path, account: Account) -> Launch:
    data = run_dir / "postgres"
    sockets = run_dir / "sockets"
    options = [f"-c{k}={v}" for k, v in settings.get("server_settings", {}).items()]
    argv = [
        str(bindir / "postgres"),
        "-D",
        str(data),
        "-p",
        str(settings["port"]),
        "-k",
        str(sockets),
        "-c",
        "listen_addresses=127.0.0.1",
        *options,
    ]

    initdb_options = ["-U", str(settings["user"]), "--auth-local=trust", "--auth-host=scram-sha-256"]
    initdb_options += ["--encoding=UTF8", "--no-locale", "--no-sync", "--no-instructions"]
    template = postgres_template(bindir, initdb_options, settings)

    def prepare() -> None:
        sockets.mkdir(mode=0o700)
        os.chown(sockets, account.uid, account.gid)
        if _copy_template(template, data):
            return
        pwfile = run_dir / "postgres.pw"
        pwfile.write_text(str(settings["password"]) + "\n", encoding="utf-8")
        os.chown(pwfile, account.uid, account.gid)
        pwfile.chmod(0o600)
        try:
            _run_as(account, [str(bindir / "initdb"), "-D", str(data), *initdb_options, f"--pwfile={pwfile}"], "initdb")
        finally:
            pwfile.unlink(missing_ok=True)
        if settings["database"] != "postgres":
            # Single-user mode creates the database before the server listens, so readiness means usable.
            name = str(settings["database"]).replace('"', '""')
            _run_as(
                account,
                [str(bindir / "postgres"), "--single", "-D", str(data), "-F", "-c", "fsync=off", "postgres"],
                "create database",
                stdin=f'CREATE DATABASE "{name}";\n',
            )
        _save_template(data, template)

    return Launch("postgres", argv, data, signal.SIGINT, prepare)  # SIGINT: fast shutdown


def template_root() -> Path:
    """Initialised PostgreSQL clusters, kept between runs: initdb is most of a native start's CPU."""
    return runtime_root() / "templates"


def postgres_template(bindir: Path, initdb_args: list[str], settings: Mapping[str, Any]) -> Path:
    """Where a cluster initialised exactly so (binary, arguments, user, password, database) is kept. The key
    holds a digest of the password, never the password; the cluster itself holds only its SCRAM hash."""
    binary = (bindir / "postgres").stat()
    key = json.dumps(
        [
            str(bindir.resolve()),
            binary.st_size,
            binary.st_mtime_ns,
            initdb_args,
            hashlib.sha256(str(settings["password"]).encode()).hexdigest(),
            str(settings["database"]),
        ]
    )
    return template_root() / f"postgres-{hashlib.sha256(key.encode()).hexdigest()[:20]}"


def _copy_template(template: Path, data: Path) -> bool:
    """Fill the (empty, owned) data folder from the template; False when there is none yet."""
    if not template.is_dir():
        return False
    # cp -a keeps owner and modes (the server's account, 0700); a copy, so runs never share files.
    result = subprocess.run(["cp", "-a", f"{template}/.", str(data)], capture_output=True, check=False)
    if result.returncode != 0:
        return False
    with contextlib.suppress(OSError):
        os.utime(template)  # in use: gc keeps templates used within TEMPLATE_TTL
    return True


def _save_template(data: Path, template: Path) -> None:
    """Keep the freshly initialised, shut-down cluster for later runs. Best effort: a run never fails
    because its template could not be kept; concurrent runs race to one atomic rename."""
    partial = template.with_name(f".{template.name}.{os.getpid()}.{threading.get_ident()}")
    try:
        template.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        if template.exists():
            return
        subprocess.run(["cp", "-a", str(data), str(partial)], capture_output=True, check=True)
        partial.rename(template)
    except (OSError, subprocess.CalledProcessError):
        pass
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _redis_protocol(settings: Mapping[str, Any], binary: str, run_dir: Path) -> Launch:
    data = run_dir / "dragonfly"
    port = str(settings["port"])
    # Both speak the same flags for where to listen and keep data; only persistence and sizing differ.
    argv = [binary, "--port", port, "--bind", "127.0.0.1", "--dir", str(data)]
    if Path(binary).name == "dragonfly":
        argv += [
            "--dbfilename",
            "",
            f"--proactor_threads={settings['proactor_threads']}",
            f"--maxmemory={settings['maxmemory']}",
        ]
    else:
        argv += ["--save", "", "--appendonly", "no", "--maxmemory", str(settings["maxmemory"])]
    return Launch("dragonfly", argv, data, signal.SIGTERM)


def _nats(settings: Mapping[str, Any], binary: str, run_dir: Path) -> Launch:
    data = run_dir / "nats"
    argv = [
        binary,
        "-a",
        "127.0.0.1",
        "-p",
        str(settings["port"]),
        "-m",
        str(settings["monitor_port"]),
        "-js",
        "-sd",
        str(data),
    ]
    return Launch("nats", argv, data, signal.SIGTERM)


def _run_as(account: Account, argv: list[str], what: str, stdin: str | None = None) -> None:
    result = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False, **_as_account(account))
    if result.returncode != 0:
        last = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise TestbedError(f"PostgreSQL {what} failed: {last[0]}", ExitCode.PROVISIONING)


def start(state: RunState, servers: Mapping[str, Mapping[str, Any]], log_dir: Path) -> dict[str, Any]:
    """Start every server at once; return {service: {pid, binary}} and notices. Readiness is the
    probes' job, not this one's."""
    # One start at a time per run: the wrapper's head start and the playbook's servers phase may overlap.
    with (state.runtime_dir / ".start.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _start_locked(state, servers, log_dir)


def _start_locked(state: RunState, servers: Mapping[str, Mapping[str, Any]], log_dir: Path) -> dict[str, Any]:
    running = {
        r["service"]
        for r in state.read()["resources"]
        if r["kind"] == "process" and ProcessIdentity.from_dict(r).alive()
    }
    servers = {name: settings for name, settings in servers.items() if name not in running}
    if not servers:
        return {"started": {}, "notices": [], "changed": False}  # a second `up` changes nothing
    found, notices = binaries(servers)
    account = server_account()
    run_dir = state.runtime_dir
    log_dir.mkdir(parents=True, exist_ok=True)
    launches: list[Launch] = []
    for service, settings in servers.items():
        if service == "postgres":
            launches.append(_postgres(settings, Path(found[service]), run_dir, account))
        elif service == "dragonfly":
            launches.append(_redis_protocol(settings, found[service], run_dir))
        elif service == "nats":
            launches.append(_nats(settings, found[service], run_dir))

    errors: list[TestbedError] = []
    started: dict[str, Any] = {}
    lock = threading.Lock()

    def launch(item: Launch) -> None:
        try:
            state.record({"kind": "directory", "service": item.service, "path": str(item.data_dir)})
            if item.data_dir.exists():  # an earlier attempt that failed half-way: start clean
                shutil.rmtree(item.data_dir)
                shutil.rmtree(run_dir / "sockets", ignore_errors=True)
            item.data_dir.mkdir(mode=0o700)
            os.chown(item.data_dir, account.uid, account.gid)
            if item.prepare:
                item.prepare()
            with (log_dir / f"{item.service}.log").open("ab") as log:
                process = subprocess.Popen(
                    item.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=run_dir,
                    start_new_session=True,
                    close_fds=True,
                    env=_server_env(),
                    **_as_account(account),
                )
            identity = ProcessIdentity.of(process.pid)
            if identity is None:
                errors.append(
                    TestbedError(
                        f"{item.service} exited at once; see {log_dir / item.service}.log", ExitCode.PROVISIONING
                    )
                )
                return
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
        except TestbedError as exc:
            errors.append(exc)
        except OSError as exc:
            errors.append(TestbedError(f"{item.service}: cannot start: {exc}", ExitCode.PROVISIONING))

    threads = [threading.Thread(target=launch, args=(item,)) for item in launches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return {"started": started, "notices": notices, "user": account.name, "group": grp.getgrgid(account.gid).gr_name}
