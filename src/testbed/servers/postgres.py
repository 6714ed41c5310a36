"""PostgreSQL 15: initdb'd clusters kept as templates natively, the official image's contract on Docker."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from testbed.core import processes
from testbed.core.host import Account, Launch, full_disk, run_as, which
from testbed.core.paths import template_root
from testbed.servers.base import Binary, ContainerParts, ServerKind
from testbed.servers.base_reset import TestReset
from testbed.servers.postgres_admin import admin_session, clone, exists, fresh_name, identifier, lock_template
from testbed.servers.postgres_pool import DatabasePool, give_back

NAME = "postgres"
SOCKETS = "sockets"  # in the run's runtime folder: the server's Unix sockets
PWFILE = "postgres.pw"  # initdb reads the password from it, in the run's runtime folder, then it goes


def postgres_bindir() -> Path | None:
    explicit = os.environ.get("TESTBED_PG_BINDIR")
    if explicit:  # an explicit choice is the only candidate: a wrong one must not fall back silently
        path = Path(explicit)
        return path if (path / "postgres").is_file() and (path / "initdb").is_file() else None
    candidates = [Path("/usr/lib/postgresql/15/bin")]
    pg_config = which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    return next((c for c in candidates if (c / "postgres").is_file() and (c / "initdb").is_file()), None)


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
    result = subprocess.run(["cp", "-a", f"{template}/.", str(data)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        full_disk(result.stderr, data)
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


class Postgres(ServerKind):
    name = NAME
    order = 0
    runs_migrations = True
    run_dir_entries = (SOCKETS, PWFILE)
    program = "postgres"
    stop_signal = signal.SIGINT  # fast shutdown

    def left_running(self, data_dir: Path) -> list[int]:
        """The postmaster its pid file names (`postmaster.pid`: the pid, then its data folder), only if that
        process is a postgres working in that very folder (its cwd): a reused pid, or a pid file naming
        another cluster's postmaster, is not this one."""
        try:
            lines = (data_dir / "postmaster.pid").read_text(encoding="utf-8", errors="replace").splitlines()
            pid, data = int(lines[0]), Path(lines[1])
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            cwd = Path(f"/proc/{pid}/cwd").readlink()
        except (OSError, ValueError, IndexError):
            return []
        return [pid] if data == data_dir and cwd == data and argv[0].endswith(self.program.encode()) else []

    def ports(self, settings: Mapping[str, Any]) -> dict[str, int]:
        return {"port": 5432}

    def left_in_shared_memory(self, owner: int, folder: Path) -> list[Path]:
        # Its dynamic shared memory segments (about 1 MiB each): only a successor in the same data folder would
        # remove a SIGKILLed postmaster's. While any postgres of the account runs, they may be its.
        if processes.runs_as(self.program, owner):
            return []
        return [entry for entry in folder.glob("PostgreSQL.*") if entry.lstat().st_uid == owner and entry.is_file()]

    def locate(self, settings: Mapping[str, Any]) -> Binary | str:
        bindir = postgres_bindir()
        if bindir:
            return Binary(str(bindir))
        return "PostgreSQL 15 (apt-get install postgresql-15, or set TESTBED_PG_BINDIR)"

    def launch(self, settings: Mapping[str, Any], binary: str, run_dir: Path, account: Account) -> Launch:
        bindir = Path(binary)
        data = run_dir / NAME
        sockets = run_dir / SOCKETS
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
            pwfile = run_dir / PWFILE
            pwfile.write_text(str(settings["password"]) + "\n", encoding="utf-8")
            os.chown(pwfile, account.uid, account.gid)
            pwfile.chmod(0o600)
            try:
                initdb = [str(bindir / "initdb"), "-D", str(data), *initdb_options, f"--pwfile={pwfile}"]
                run_as(account, initdb, "PostgreSQL initdb", where=data)
            finally:
                pwfile.unlink(missing_ok=True)
            if settings["database"] != "postgres":
                # Single-user mode creates the database before the server listens, so readiness means usable.
                name = str(settings["database"]).replace('"', '""')
                run_as(
                    account,
                    [str(bindir / "postgres"), "--single", "-D", str(data), "-F", "-c", "fsync=off", "postgres"],
                    "PostgreSQL create database",
                    stdin=f'CREATE DATABASE "{name}";\n',
                    where=data,
                )
            _save_template(data, template)

        return Launch(NAME, argv, data, self.stop_signal, prepare)

    def container(self, settings: Mapping[str, Any]) -> ContainerParts:
        return ContainerParts(
            command=["postgres"]
            + [arg for key, value in settings["server_settings"].items() for arg in ("-c", f"{key}={value}")],
            env={
                "POSTGRES_USER": settings["user"],
                "POSTGRES_PASSWORD": settings["password"],
                "POSTGRES_DB": settings["database"],
            },
            tmpfs=["/var/lib/postgresql/data"],
        )

    def facts(self, settings: Mapping[str, Any], host: str) -> dict[str, Any]:
        port = int(settings["port"])
        user, password, database = settings["user"], settings["password"], settings["database"]
        return {
            "host": host,
            "port": port,
            "user": user,
            "password": password,
            "database": database,
            "url": f"postgresql://{user}:{password}@{host}:{port}/{database}",
        }

    def environment(self, fact: Mapping[str, Any]) -> dict[str, str]:
        return {
            "POSTGRES_HOST": fact["host"],
            "POSTGRES_PORT": str(fact["port"]),
            "POSTGRES_USER": fact["user"],
            "POSTGRES_PASSWORD": fact["password"],
            "POSTGRES_DB": fact["database"],
        }

    def probe(self, settings: Mapping[str, Any], fact: Mapping[str, Any], run_id: str = "") -> str:
        """`SELECT 1` as the configured user on the configured database; returns the server version."""
        import psycopg  # noqa: PLC0415 - loaded only where a probe runs

        with psycopg.connect(
            host=fact["host"],
            port=fact["port"],
            user=fact["user"],
            password=fact["password"],
            dbname=fact["database"],
            connect_timeout=2,
        ) as conn:
            conn.execute("SELECT 1")
            return str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]

    # A database per pytest worker, cloned from the migrated one: POSTGRES_DB (and every template built on
    # `postgres.database` or `postgres.url`) names it, so the service needs no change.
    def worker_share(self, settings: Mapping[str, Any]) -> str:
        return "logical"

    def snapshot(self, settings: Mapping[str, Any], fact: Mapping[str, Any]) -> None:
        """Keep the migrated database as a template database beside it (`<database>_testbed_fresh`)."""
        with admin_session(fact) as admin:
            clone(admin, fact["database"], fresh_name(fact["database"]), force=True)

    def kept(self, settings: Mapping[str, Any], fact: Mapping[str, Any]) -> dict[str, Any] | None:
        fresh = fresh_name(fact["database"])
        with admin_session(fact) as admin:
            if not exists(admin, fresh):
                return None
            # Locked by a per-test pool whose tests phase was killed: migrations connect to it, snapshot drops it.
            lock_template(admin, fresh, locked=False)
        return {**fact, "database": fresh}

    def empty(self, settings: Mapping[str, Any], fact: Mapping[str, Any]) -> None:
        """Drop the database (ending its sessions) and create it empty, from template0 (which nothing changes)."""
        with admin_session(fact, "empty") as admin:
            clone(admin, "template0", fact["database"], force=True)

    def reset(self, settings: Mapping[str, Any], fact: Mapping[str, Any]) -> None:
        """Drop the database (ending its sessions) and clone it again from the template `snapshot` kept."""
        with admin_session(fact) as admin:
            if not exists(admin, fresh_name(fact["database"])):
                return  # never snapshotted (not a dev-loop run): nothing to go back to
            clone(admin, fresh_name(fact["database"]), fact["database"], force=True)

    def isolate(self, settings: Mapping[str, Any], fact: Mapping[str, Any], worker: str) -> dict[str, Any]:
        """`<database>_<worker>`, cloned fresh from the template (or from the database itself while it is
        still fresh: a whole-pipeline run, before its tests)."""
        database = str(fact["database"])
        name = identifier(f"{database}_{worker}")
        with admin_session(fact) as admin:
            fresh = fresh_name(database)
            clone(admin, fresh if exists(admin, fresh) else database, name, force=True)
        user, password, host, port = fact["user"], fact["password"], fact["host"], fact["port"]
        return {**fact, "database": name, "url": f"postgresql://{user}:{password}@{host}:{port}/{name}"}

    def test_reset(
        self, settings: Mapping[str, Any], fact: Mapping[str, Any], workers: int, *, eager: bool = True
    ) -> TestReset:
        """A pool of clones of the migrated template, swapped in for a worker's database before each test."""
        return DatabasePool(settings, fact, workers, eager=eager)

    def give_back(self, settings: Mapping[str, Any], fact: Mapping[str, Any]) -> None:
        give_back(fact)

    def conninfo(self, fact: Mapping[str, Any]) -> str:
        return (
            f"host={fact['host']} port={fact['port']} user={fact['user']} "
            f"password={fact['password']} dbname={fact['database']}"
        )


KIND = Postgres()
