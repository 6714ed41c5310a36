"""The local dev loop: up once, test many times, look around, down."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from support import FIXTURES, PROJECT, clean_env, cli, leftovers, playbook, run_folder_of, waiting_test
from testbed.core.errors import ExitCode

pytestmark = pytest.mark.slow


def test_up_test_status_env_logs_down(service: Path, runs: Path) -> None:
    up = cli("up", "--service", str(service), "--backend", "native", "--ports", "auto", "--run-folder", str(runs))
    assert up.returncode == 0, up.stdout + up.stderr
    assert "✅ Migrations: Applied successfully (2 new)" in up.stdout
    run_id = next(runs.iterdir()).name
    try:
        again = cli("up", "--service", str(service))
        assert again.returncode == 0, again.stdout + again.stderr
        assert "(already up)" in again.stdout
        assert list(runs.iterdir()) == [runs / run_id]

        status = cli("status", "--service", str(service))
        assert status.returncode == 0
        assert run_id in status.stdout and "up (lease)" in status.stdout and "✅ PostgreSQL: port" in status.stdout

        env = cli("env", "--service", str(service))
        assert env.returncode == 0
        exports = dict(re.findall(r"^export (\w+)=(\S+)$", env.stdout, re.M))
        assert {"POSTGRES_PORT", "DRAGONFLY_PORT", "NATS_URL"} <= set(exports)
        assert "TESTING" not in exports  # service-neutral: only testbed's own variables
        assert "# secrets (BASIC_TOKEN) are not printed: they are in " in env.stdout  # named, never printed
        # pytest by hand, as from an IDE, with just those exports.
        script = f"{env.stdout}\ncd {service} && python -m pytest -q -p no:cacheprovider tests"
        by_hand = subprocess.run(["bash", "-c", script], cwd=PROJECT, env=clean_env(), capture_output=True,
                                 text=True, check=False)
        assert by_hand.returncode == 0, by_hand.stdout + by_hand.stderr

        for _ in range(2):  # tests re-run against the same servers
            tested = cli("test", "--service", str(service), "--", "-k", "dragonfly or nats")
            assert tested.returncode == 0, tested.stdout + tested.stderr
            assert "✅ Tests: 2 passed" in tested.stdout
        failing = cli("test", "--service", str(service), "--", "-k", "no_such_test")
        assert failing.returncode == 5
        assert leftovers(run_id), "a failing `testbed test` leaves the environment up"

        logs = cli("logs", "--service", str(service), "postgres")
        assert logs.returncode == 0 and "database system is ready to accept connections" in logs.stdout
    finally:
        down = cli("down", "--service", str(service))
    assert down.returncode == 0, down.stdout + down.stderr
    assert leftovers(run_id) == []
    after = cli("status", "--service", str(service))
    assert run_id not in after.stdout


def test_up_playbook_twice_changes_nothing_the_second_time(service: Path, runs: Path) -> None:
    extravars = {"testbed_service": str(service), "testbed_backend": "native", "testbed_ports": "auto",
                 "testbed_run_root": str(runs), "testbed_run_id": "idempotent-up-check"}
    first = playbook("playbooks/up.yml", extravars)
    try:
        assert first.returncode == 0, first.stdout[-3000:]
        assert re.search(r"changed=[1-9]", first.stdout)
        second = playbook("playbooks/up.yml", extravars)
        assert second.returncode == 0, second.stdout[-3000:]
        assert re.search(r"localhost\s+: ok=\d+\s+changed=0 ", second.stdout), second.stdout[-1500:]
    finally:
        down = playbook("playbooks/down.yml", {"testbed_run_id": "idempotent-up-check"})
    assert down.returncode == 0
    assert leftovers("idempotent-up-check") == []


def _workers_suite(tmp_path: Path) -> Path:
    """The fixture whose test_fresh.py asserts it starts with no row, key or stream, and leaves one of each."""
    target = tmp_path / "workers"
    shutil.copytree(FIXTURES / "services" / "workers", target)
    return target


def _rows(fact: dict[str, object], database: str) -> int | None:
    """Rows in `database`'s holder table, or None when there is no such database."""
    admin = {k: fact[k] for k in ("host", "port", "user", "password")}
    with psycopg.connect(**admin, dbname="postgres", autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone() is None:
            return None
    with psycopg.connect(**admin, dbname=database) as conn:
        return int(conn.execute("SELECT count(*) FROM holder").fetchone()[0])  # type: ignore[index]


def _drop(fact: dict[str, object], database: str) -> None:
    admin = {k: fact[k] for k in ("host", "port", "user", "password")}
    with psycopg.connect(**admin, dbname="postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(database)))


REBUILT = "PostgreSQL's kept migrated state was gone: migrated again from empty (1 migration applied) and kept"


@contextlib.contextmanager
def _workers_up_and_dirty(tmp_path: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """The workers suite up, after a `testbed test` that left a row (and a key and a stream); `testbed down` after."""
    suite = _workers_suite(tmp_path)
    up = cli("up", "--service", str(suite), "--backend", "native", "--ports", "auto")
    assert up.returncode == 0, up.stdout + up.stderr
    run_folder = run_folder_of(up.stdout)
    try:
        dirty = cli("test", "--service", str(suite), "--", "-k", "fresh")
        assert dirty.returncode == 0, dirty.stdout + dirty.stderr
        yield suite, json.loads((run_folder / "state.json").read_text())["facts"]["postgres"]
    finally:
        down = cli("down", "--service", str(suite))
    assert down.returncode == 0, down.stdout + down.stderr
    assert leftovers(run_folder.name) == []


def test_a_reset_whose_kept_state_a_test_dropped_migrates_again_instead_of_claiming_it(tmp_path: Path) -> None:
    """A test dropped `<db>_testbed_fresh`: the reset printed `✅ Reset: back to the freshly migrated state` and
    the next tests failed on the rows earlier runs left. It now migrates the database again from empty, keeps
    that, and says so."""
    with _workers_up_and_dirty(tmp_path) as (suite, fact):
        template = f"{fact['database']}_testbed_fresh"
        _drop(fact, template)  # what a test of the service may do
        test = cli("test", "--service", str(suite), "--", "-k", "fresh")
        assert test.returncode == 0, test.stdout + test.stderr  # no row from the earlier run
        assert re.search(rf"^✅ Reset: back to the freshly migrated state in .*; {re.escape(REBUILT)}$", test.stdout,
                         re.M), test.stdout
        assert _rows(fact, template) == 0
        after = cli("test", "--service", str(suite), "--", "-k", "fresh")
        assert after.returncode == 0 and "✅ Reset: back to the freshly migrated state in" in after.stdout
        assert REBUILT not in after.stdout, after.stdout  # the kept state is there again: an ordinary reset


def test_a_second_up_notices_a_dropped_kept_state_and_migrates_again(tmp_path: Path) -> None:
    """It said `Up to date (0 new)` and kept the database with the rows the tests left as the template."""
    with _workers_up_and_dirty(tmp_path) as (suite, fact):
        database, template = fact["database"], f"{fact['database']}_testbed_fresh"
        _drop(fact, template)
        again = cli("up", "--service", str(suite))
        assert again.returncode == 0, again.stdout + again.stderr
        assert f"✅ Migrations: {REBUILT}" in again.stdout, again.stdout
        assert (_rows(fact, template), _rows(fact, database)) == (0, 0)
        test = cli("test", "--service", str(suite), "--", "-k", "fresh")
        assert test.returncode == 0, test.stdout + test.stderr
        assert REBUILT not in test.stdout, test.stdout


def test_a_second_testbed_test_at_once_is_refused_naming_the_running_one(service: Path, runs: Path) -> None:
    """Two `testbed test` at once on one environment: one crashed in ansible-runner (its folder is named by the
    run id, which they share), the other reported spurious failures. The second is refused, before anything
    of it starts, naming the first."""
    started, release = waiting_test(service)
    up = cli("up", "--service", str(service), "--backend", "native", "--ports", "auto", "--run-folder", str(runs))
    assert up.returncode == 0, up.stdout + up.stderr
    run_id = next(runs.iterdir()).name
    try:
        first = subprocess.Popen(
            [sys.executable, "-m", "testbed", "test", "--service", str(service), "--", "-k", "waits"],
            cwd=PROJECT, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        with started.open() as fifo:  # the first one's test is running
            assert fifo.read() == "started"
        second = cli("test", "--service", str(service), "--", "-k", "dragonfly")
        with release.open("w") as fifo:
            fifo.write("go")
        output, _ = first.communicate(timeout=300)
    finally:
        down = cli("down", "--service", str(service))

    assert second.returncode == ExitCode.CONFIG, second.stdout + second.stderr
    assert re.fullmatch(
        rf"testbed: error: `testbed test` \(pid {first.pid}, since \d\d:\d\d:\d\d\) is already running against "
        rf"environment {run_id}: one at a time, as each resets the same servers; wait for it to end \(or stop it "
        r"with Ctrl-C\), then run `testbed test` again",
        second.stderr.strip(),
    ), second.stderr
    assert second.stdout == ""  # nothing of it started
    assert first.returncode == 0, output
    assert "✅ Tests: 1 passed" in output, output
    assert down.returncode == 0, down.stdout + down.stderr
    assert leftovers(run_id) == []
