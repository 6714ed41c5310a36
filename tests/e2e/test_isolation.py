"""tests.isolation: test, end to end with real servers: every test starts from the freshly migrated state (a pooled
PostgreSQL clone swapped in for the worker's database, the Redis slot flushed, JetStream streams deleted).

The fixture service's tests/clean leaves a row, a key and a stream behind in each test and asserts it started
without any, in pytest-randomly's random order: it fails with `worker` (shown first in each test) and passes with
`test`. tests/held shows a held connection closed and the fixtures' path; tests/hostile attacks the pool."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from support import (
    FIXTURES,
    PROJECT,
    clean_env,
    cli,
    image_args,
    leftovers,
    playbook,
    run_folder_of,
    run_id_of,
    run_testbed,
)
from testbed.config.workers import worker_name
from testbed.core import junit
from testbed.core.concurrency import each_at_once
from testbed.core.errors import ExitCode
from testbed.parallel import workers
from testbed.parallel.handover import Handover
from testbed.run.store import RunState
from testbed.servers import postgres_pool
from testbed.servers.postgres_pool import PER_WORKER

pytestmark = pytest.mark.slow
CLEAN = 12  # tests in tests/clean
HOSTILE = ("tests/hostile", "-p", "no:randomly")  # in the order written: each attack, then a test after it
HELD = ("tests/held", "-p", "no:randomly")  # a connection held by one test, found closed by the next
POOLED = ("_testbed_pool_", "_testbed_trash_", "_testbed_copy_")


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    target = tmp_path / "isolation"
    shutil.copytree(FIXTURES / "services" / "isolation", target)
    return target


def _failures(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("❌")]


@contextlib.contextmanager
def _environment_up(
    suite: Path, *args: str, backend: str = "native", images: dict[str, str] | None = None
) -> Iterator[dict[str, object]]:
    """`testbed up` of the suite for the block (its PostgreSQL fact), then `testbed down`: nothing may be left."""
    up = cli("up", "--service", str(suite), "--ports", "auto", "--backend", backend, *image_args(images or {}), *args)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        yield json.loads((run_folder_of(up.stdout) / "state.json").read_text())["facts"]["postgres"]
    finally:
        down = cli("down", "--service", str(suite))
    assert down.returncode == 0, down.stdout + down.stderr
    assert leftovers(run_id_of(up.stdout)) == []


def _databases(fact: dict[str, object]) -> dict[str, tuple[bool, bool]]:
    """Every database of the environment's server -> (is a template, takes connections)."""
    with psycopg.connect(host=fact["host"], port=fact["port"], user=fact["user"], password=fact["password"],
                         dbname="postgres") as admin:
        rows = admin.execute("SELECT datname, datistemplate, datallowconn FROM pg_database").fetchall()
    return {name: (template, allowed) for name, template, allowed in rows}


def _nothing_pooled_left(fact: dict[str, object]) -> None:
    databases = _databases(fact)
    assert [name for name in databases if any(marker in name for marker in POOLED)] == []
    assert databases[f"{fact['database']}_testbed_fresh"] == (False, True), "the template is unlocked again"


def _test(suite: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return cli("test", "--service", str(suite), *args, env=env)


@pytest.mark.parametrize("backend", ["native", pytest.param("docker", marks=pytest.mark.docker)])
def test_every_test_starts_clean_on_two_workers_with_testbed_run(
    suite: Path, tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    images = request.getfixturevalue("local_images") if backend == "docker" else None
    shared = run_testbed(suite, tmp_path / "runs", "--workers", "2", "--isolation", "worker", "--", "tests/clean",
                         backend=backend, images=images)
    assert shared.returncode == ExitCode.TESTS_FAILED, shared.stdout + shared.stderr
    assert "from an earlier test" in (run_folder_of(shared.stdout) / "junit.xml").read_text()
    assert leftovers(run_id_of(shared.stdout)) == []

    config = suite / "testbed.yml"
    config.write_text(config.read_text().replace("  paths: [tests]\n", "  paths: [tests]\n  isolation: test\n"))
    isolated = run_testbed(suite, tmp_path / "runs", "--workers", "2", "--", "tests/clean", backend=backend,
                           images=images)
    assert isolated.returncode == 0, isolated.stdout + isolated.stderr
    assert f"✅ Tests: {CLEAN} passed in" in isolated.stdout and "on 2 workers" in isolated.stdout
    assert "Using --randomly-seed=" in (run_folder_of(isolated.stdout) / "pytest.log").read_text()  # in random order
    assert leftovers(run_id_of(isolated.stdout)) == []


@pytest.mark.parametrize("backend", ["native", pytest.param("docker", marks=pytest.mark.docker)])
def test_plain_ansible_playbook_takes_testbed_isolation(
    suite: Path, tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    images = request.getfixturevalue("local_images") if backend == "docker" else {}
    extravars: dict[str, object] = {
        "testbed_service": str(suite), "testbed_backend": backend, "testbed_ports": "auto", "testbed_images": images,
        "testbed_run_root": str(tmp_path / "runs"), "testbed_workers": 2, "testbed_pytest_args": ["tests/clean"],
    }
    for isolation, passed in (("worker", False), ("test", True)):
        result = playbook("integration.yml", extravars | {"testbed_isolation": isolation})
        assert (result.returncode == 0) is passed, result.stdout[-3000:]
        summary = junit.parse(run_folder_of(result.stdout) / "junit.xml")
        assert summary is not None and (summary.counts()["passed"] == CLEAN) is passed
        assert leftovers(run_id_of(result.stdout)) == []


def test_the_dev_loop_isolates_each_test_and_gives_back_its_pool(suite: Path) -> None:
    with _environment_up(suite, "--workers", "2") as fact:
        assert _test(suite, "--workers", "2", "--", "tests/clean").returncode == ExitCode.TESTS_FAILED
        for _ in range(2):  # the pool is given back after each run, and made again by the next
            isolated = _test(suite, "--workers", "2", "--isolation", "test", "--", "tests/clean")
            assert isolated.returncode == 0, isolated.stdout + isolated.stderr
            assert f"✅ Tests: {CLEAN} passed in" in isolated.stdout
            _nothing_pooled_left(fact)
        # A connection held across tests is closed by the swap; the fixtures give fresh servers of a test's own.
        held = _test(suite, "--workers", "1", "--isolation", "test", "--", *HELD)
        assert held.returncode == 0, held.stdout + held.stderr
        assert "✅ Tests: 4 passed in" in held.stdout
        # A test that drops its own database, one that takes the pool's next names: the tests after them start
        # clean, and the names it took go with the pool.
        hostile = _test(suite, "--workers", "1", "--isolation", "test", "--", *HOSTILE, "-k",
                        "drops or takes or then_starts")
        assert hostile.returncode == 0, hostile.stdout + hostile.stderr
        assert "✅ Tests: 6 passed in" in hostile.stdout
        _nothing_pooled_left(fact)


@pytest.mark.docker
def test_the_dev_loop_on_docker_isolates_each_test(suite: Path, local_images: dict[str, str]) -> None:
    with _environment_up(suite, "--workers", "2", backend="docker", images=local_images) as fact:
        assert _test(suite, "--workers", "2", "--", "tests/clean").returncode == ExitCode.TESTS_FAILED
        isolated = _test(suite, "--workers", "2", "--isolation", "test", "--", "tests/clean")
        assert isolated.returncode == 0, isolated.stdout + isolated.stderr
        assert f"✅ Tests: {CLEAN} passed in" in isolated.stdout and "on 2 workers" in isolated.stdout
        _nothing_pooled_left(fact)


def test_fixtures_without_per_test_isolation_name_what_they_need(suite: Path, tmp_path: Path) -> None:
    # In a whole-pipeline run the migrated state is not kept under `worker`: the fixture says how to get it.
    result = run_testbed(suite, tmp_path / "runs", "--", "tests/held", "-k", "fixtures")
    assert result.returncode == ExitCode.TESTS_FAILED, result.stdout + result.stderr
    assert "❌ Tests: 2 errors in" in result.stdout  # in the fixture, before the test
    log = (run_folder_of(result.stdout) / "pytest.log").read_text()
    assert "a fresh database mid-run needs the migrated state kept: set tests.isolation: test" in log
    assert leftovers(run_id_of(result.stdout)) == []


def test_keep_failed_keeps_the_failing_tests_database_until_the_environment_goes(suite: Path) -> None:
    with _environment_up(suite) as fact:
        refused = _test(suite, "--keep-failed")
        assert refused.returncode == ExitCode.CONFIG
        assert refused.stderr.strip().splitlines() == [
            "testbed: error: --keep-failed keeps the database of a failing test, which only --isolation test gives "
            "each test (tests.isolation is worker): add --isolation test"
        ]
        failed = _test(suite, "--isolation", "test", "--keep-failed", "--", *HOSTILE, "-p", "no:xdist", "-k",
                       "fails_on_purpose or then_starts")
        assert failed.returncode == ExitCode.TESTS_FAILED, failed.stdout + failed.stderr
        kept = "isolation_testbed_failed_test_fails_on_purpose"
        assert f"ℹ️  Kept for debugging (--keep-failed): {kept}; `testbed env` prints them" in failed.stdout
        env = cli("env", "--service", str(suite))
        assert f"# kept by --keep-failed: database {kept} (export POSTGRES_DB={kept} to reach it)" in env.stdout
        with psycopg.connect(host=fact["host"], port=fact["port"], user=fact["user"], password=fact["password"],
                             dbname=kept) as db:
            assert db.execute("SELECT test FROM marks ORDER BY test").fetchall() == [
                ("migrated",), ("the failing test was here",)]
        _nothing_pooled_left(fact)


def test_a_clone_that_fails_stops_the_tests_with_one_line(suite: Path) -> None:
    with _environment_up(suite) as fact:
        # A test sits on the template: every clone after it fails. The clones made before serve the next tests;
        # then the run stops, and no test runs on a database that was not swapped.
        result = _test(suite, "--isolation", "test", "--", *HOSTILE, "-p", "no:xdist", "-k",
                       "holds_a_session or then_starts")
        assert result.returncode == ExitCode.PROVISIONING, result.stdout + result.stderr
        assert _failures(result.stdout) == [
            "❌ Tests: PostgreSQL: cannot clone database 'isolation': source database \"isolation_testbed_fresh\" "
            "is being accessed by other users"]
        summary = junit.parse(run_folder_of(result.stdout) / "junit.xml")
        assert summary is not None and summary.counts()["passed"] == 3 and summary.counts()["errors"] == 1
        assert summary.total == 4, "the last test never ran"
        _nothing_pooled_left(fact)


def test_a_test_that_kills_the_database_server_fails_the_run_with_one_line(suite: Path, tmp_path: Path) -> None:
    result = run_testbed(suite, tmp_path / "runs", "--isolation", "test", "--", *HOSTILE, "-p", "no:xdist",
                         "-k", "kills or then_starts")
    assert result.returncode == ExitCode.PROVISIONING, result.stdout + result.stderr
    failures = _failures(result.stdout)
    assert len(failures) == 1 and failures[0].startswith("❌ Tests: PostgreSQL: cannot swap in a fresh database"), \
        result.stdout
    assert leftovers(run_id_of(result.stdout)) == []


def test_ctrl_c_in_the_middle_of_a_test_leaves_no_pooled_database(suite: Path, tmp_path: Path) -> None:
    with _environment_up(suite, "--workers", "2") as fact:
        started = tmp_path / "started"
        tests = subprocess.Popen(
            [sys.executable, "-m", "testbed", "test", "--service", str(suite), "--workers", "2", "--isolation", "test",
             "--", *HOSTILE, "-k", "waits_to_be_interrupted or then_starts"],
            cwd=PROJECT, env=clean_env(ISOLATION_STARTED=str(started)), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        try:
            while not started.exists() and tests.poll() is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    tests.wait(timeout=0.05)
            assert tests.poll() is None, tests.communicate()
            tests.send_signal(signal.SIGINT)
            out, err = tests.communicate(timeout=120)
        finally:
            if tests.poll() is None:
                tests.kill()
        assert tests.returncode == ExitCode.SIGINT, out + err
        _nothing_pooled_left(fact)


def test_the_pool_refills_under_load_and_every_hand_over_is_a_fresh_clone(suite: Path) -> None:
    """Two workers' plugins ask for a reset before each of 25 tests of no time, while two busy processes hold the
    cores: 50 hand-overs drain a pool of 4 again and again. Each test still starts on a database of its own, as
    migrated, and the pool is full again when the asking stops."""
    up = cli("up", "--service", str(suite), "--ports", "auto", "--backend", "native", "--workers", "2")
    assert up.returncode == 0, up.stdout + up.stderr
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        state = RunState.find(run_id_of(up.stdout))
        record = state.load()
        shares = {worker_name(0): record.own_facts(), worker_name(1): workers.worker_facts(record.servers,
                                                                                            record.facts, 1)}
        fact = record.own_facts()["postgres"]
        handover = Handover(Path(tempfile.mkdtemp(dir=state.runtime_dir)), "test", keep_failed=False)
        handover.start(record.servers, record.own_facts(), shares)
        seen: dict[str, list[tuple[int, list[str]]]] = {}

        def tests_of(worker: str) -> None:
            seen[worker] = []
            for _ in range(25):
                assert handover.answer(["reset", worker]) == {"ok": True}
                with psycopg.connect(shares[worker]["postgres"]["url"], autocommit=True) as db:
                    oid = db.execute("SELECT oid FROM pg_database WHERE datname = current_database()").fetchone()
                    marks = [row[0] for row in db.execute("SELECT test FROM marks")]
                    db.execute("INSERT INTO marks VALUES ('left by a test')")
                seen[worker].append((int(oid[0]), marks))

        try:
            each_at_once(tests_of, list(shares))
            # Full again: PER_WORKER clones per worker, made after the last hand-over took one.
            deadline = time.monotonic() + 60
            while len(pooled := [n for n in _databases(fact) if "_testbed_pool_" in n]) < PER_WORKER * 2:
                assert time.monotonic() < deadline, pooled
                time.sleep(0.1)
        finally:
            handover.close()
        hand_overs = [entry for entries in seen.values() for entry in entries]
        assert len(hand_overs) == 50
        assert all(marks == ["migrated"] for _, marks in hand_overs), "a test saw an earlier test's row"
        # A worker's first test needs no reset; every other one is a clone never handed out before.
        assert len({oid for oid, _ in hand_overs}) == 50
        _nothing_pooled_left(fact)
    finally:
        for process in busy:
            process.kill()
            process.wait()
        down = cli("down", "--service", str(suite))
    assert down.returncode == 0, down.stdout + down.stderr
    assert leftovers(run_id_of(up.stdout)) == []


def test_a_session_closed_just_before_the_hand_over_is_waited_for_and_one_that_stays_is_not(suite: Path) -> None:
    # A suite closes its connection at a test's end, just before the next test's hand-over, while the server
    # process is still going: the swap waits the moment it takes rather than ending it in PostgreSQL's 100 ms steps.
    with _environment_up(suite) as fact:
        login = {"host": fact["host"], "port": fact["port"], "user": fact["user"], "password": fact["password"]}
        with psycopg.connect(**login, dbname="postgres", autocommit=True) as admin:  # type: ignore[arg-type]
            held = psycopg.connect(**login, dbname=fact["database"])  # type: ignore[arg-type]
            assert postgres_pool.sessions_leave(admin, str(fact["database"])) is False  # ended by the swap then
            held.close()
            assert postgres_pool.sessions_leave(admin, str(fact["database"])) is True
