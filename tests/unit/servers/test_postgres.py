"""PostgreSQL's kind without a server: its container, facts, variables and conninfo from the settings, and which
postmaster a pid file may name (starting, cloning and resetting are tested against real servers in tests/e2e)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support import execed
from testbed.servers.postgres import Postgres

SETTINGS = {"port": 15433, "user": "svc", "password": "p@ss word", "database": "books",
            "server_settings": {"fsync": "off", "max_connections": "200"}}


def test_the_container_runs_the_settings_as_flags_on_a_tmpfs() -> None:
    parts = Postgres().container(SETTINGS)
    assert parts.command == ["postgres", "-c", "fsync=off", "-c", "max_connections=200"]
    assert parts.env == {"POSTGRES_USER": "svc", "POSTGRES_PASSWORD": "p@ss word", "POSTGRES_DB": "books"}
    assert parts.tmpfs == ["/var/lib/postgresql/data"]


def test_facts_variables_and_conninfo_name_the_same_database() -> None:
    kind = Postgres()
    fact = kind.facts(SETTINGS, "127.0.0.1")
    assert fact["url"] == "postgresql://svc:p@ss word@127.0.0.1:15433/books"
    assert kind.environment(fact) == {"POSTGRES_HOST": "127.0.0.1", "POSTGRES_PORT": "15433", "POSTGRES_USER": "svc",
                                      "POSTGRES_PASSWORD": "p@ss word", "POSTGRES_DB": "books"}
    assert kind.conninfo({**fact, "database": "books_gw1"}).endswith("port=15433 user=svc password=p@ss word "
                                                                      "dbname=books_gw1")
    assert kind.worker_share(SETTINGS) == "logical"


def _pid_file(data: Path, pid: int, named: Path) -> None:
    data.mkdir(exist_ok=True)
    (data / "postmaster.pid").write_text(f"{pid}\n{named}\n1765108800\n15433\n")


def test_a_pid_file_names_a_postmaster_only_if_it_is_one_working_in_that_folder(tmp_path: Path) -> None:
    data = tmp_path / "postgres"
    data.mkdir()
    # A process that is not postgres, running in the folder: a reused pid.
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], cwd=data)
    try:
        kind = Postgres()
        _pid_file(data, other.pid, data)
        assert kind.left_running(data) == []
        _pid_file(data, other.pid, tmp_path / "elsewhere")
        assert kind.left_running(data) == []
        # A "postgres" in that folder, as its pid file says: the one left running.
        (tmp_path / "postgres-bin").mkdir()
        (tmp_path / "postgres-bin" / "postgres").symlink_to("/bin/sleep")
        postmaster = subprocess.Popen([str(tmp_path / "postgres-bin" / "postgres"), "60"], cwd=data)
        try:
            execed(postmaster.pid, "postgres")
            _pid_file(data, postmaster.pid, data)
            assert kind.left_running(data) == [postmaster.pid]
        finally:
            postmaster.kill()
            postmaster.wait()
        (data / "postmaster.pid").write_text("not a pid\n")
        assert kind.left_running(data) == []
        (data / "postmaster.pid").unlink()
        assert kind.left_running(data) == []
    finally:
        other.kill()
        other.wait()
