"""pytest-xdist workers, each with its own share of every server (a database cloned per worker, a Redis and a
NATS instance per worker), and the dev loop's reset to the freshly migrated state, end to end with real servers.

The fixture service's test_alone.py holds a row, a Redis key and a JetStream stream for a moment in each test and
expects to be alone: it fails when workers share the servers (shown first), and passes with 2 and 3 workers on
both backends. test_fresh.py asserts it starts with no row, no key and no stream, and leaves one of each."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from support import (
    FIXTURES,
    clean_env,
    cli,
    image_args,
    leftovers,
    playbook,
    run,
    run_folder_of,
    run_id_of,
    run_testbed,
    run_testbed_argv,
)
from testbed.core import junit
from testbed.core.errors import ExitCode

pytestmark = pytest.mark.slow


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    target = tmp_path / "workers"
    shutil.copytree(FIXTURES / "services" / "workers", target)
    return target


@contextlib.contextmanager
def _environment_up(suite: Path, *args: str) -> Iterator[subprocess.CompletedProcess[str]]:
    """`testbed up` of the suite for the body of the block, then `testbed down`: nothing of it may be left."""
    up = cli("up", "--service", str(suite), "--ports", "auto", *args)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        yield up
    finally:
        down = cli("down", "--service", str(suite))
    assert down.returncode == 0, down.stdout + down.stderr
    assert leftovers(run_id_of(up.stdout)) == []


def test_the_colliding_suite_fails_when_workers_share_the_servers(suite: Path, tmp_path: Path) -> None:
    # xdist asked for directly: two workers, one set of servers. This is what --workers prevents.
    result = run_testbed(suite, tmp_path / "runs", "--", "-n", "2", "-k", "alone")
    assert result.returncode == ExitCode.TESTS_FAILED, result.stdout + result.stderr
    junit = (run_folder_of(result.stdout) / "junit.xml").read_text()
    assert "another test holds" in junit or "assert" in junit
    assert leftovers(run_id_of(result.stdout)) == []


@pytest.mark.parametrize("count", [2, 3])
def test_each_worker_gets_its_own_servers_natively(suite: Path, tmp_path: Path, count: int) -> None:
    result = run_testbed(suite, tmp_path / "runs", "--workers", str(count), "--", "-k", "alone")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "✅ Tests: 7 passed in" in out and f"on {count} workers" in out
    # An instance of the Redis slot and of NATS for each worker after the first; PostgreSQL clones a database.
    for index in range(1, count):
        assert f"✅ Dragonfly (gw{index}): Running on port" in out and f"✅ NATS (gw{index}): Running on port" in out
    assert "PostgreSQL (gw" not in out
    assert leftovers(run_id_of(result.stdout)) == []


def test_testbed_run_from_inside_an_xdist_worker_still_gives_each_worker_its_servers(
    suite: Path, tmp_path: Path
) -> None:
    # A test of another suite's pytest-xdist worker runs testbed: its PYTEST_XDIST_* variables must not reach the
    # service's pytest, whose plugin would take that worker's share in the controller, and so for gw0 too.
    outer = clean_env(PYTEST_XDIST_WORKER="gw1", PYTEST_XDIST_WORKER_COUNT="2", PYTEST_XDIST_TESTRUNUID="outer")
    result = run_testbed(suite, tmp_path / "runs", "--workers", "2", "--", "-k", "alone", env=outer)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "✅ Tests: 7 passed in" in result.stdout
    assert leftovers(run_id_of(result.stdout)) == []


@pytest.mark.docker
@pytest.mark.parametrize("count", [2, 3])
def test_each_worker_gets_its_own_servers_on_docker(
    suite: Path, tmp_path: Path, count: int, local_images: dict[str, str]
) -> None:
    result = run_testbed(
        suite, tmp_path / "runs", "--workers", str(count), "--", "-k", "alone", backend="docker", images=local_images
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert f"on {count} workers" in out and f"✅ NATS (gw{count - 1}): Running on port" in out
    assert leftovers(run_id_of(result.stdout)) == []


def test_plain_ansible_playbook_takes_testbed_workers(suite: Path, tmp_path: Path) -> None:
    extravars = {
        "testbed_service": str(suite),
        "testbed_backend": "native",
        "testbed_ports": "auto",
        "testbed_run_root": str(tmp_path / "runs"),
        "testbed_workers": 2,
        "testbed_pytest_args": ["-k", "alone"],
    }
    result = playbook("integration.yml", extravars)
    assert result.returncode == 0, result.stdout[-3000:]
    summary = junit.parse(run_folder_of(result.stdout) / "junit.xml")
    assert summary is not None and summary.counts()["passed"] == 7 and summary.total == 7
    assert leftovers(run_id_of(result.stdout)) == []


@pytest.mark.parametrize("backend", ["native", pytest.param("docker", marks=pytest.mark.docker)])
def test_three_tests_in_a_row_each_start_fresh_and_no_reset_keeps_the_data(
    suite: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    images = image_args(request.getfixturevalue("local_images")) if backend == "docker" else []
    with _environment_up(suite, "--backend", backend, *images):
        for _ in range(3):
            test = cli("test", "--service", str(suite), "--", "-k", "fresh")
            assert test.returncode == 0, test.stdout + test.stderr
            assert "✅ Reset: back to the freshly migrated state in" in test.stdout
        kept = cli("test", "--service", str(suite), "--no-reset", "--", "-k", "fresh")
        assert kept.returncode == ExitCode.TESTS_FAILED, kept.stdout + kept.stderr
        assert "Reset:" not in kept.stdout
        assert "a row from an earlier run" in (run_folder_of(kept.stdout) / "pytest.log").read_text()


def test_workers_in_the_dev_loop_grow_the_environment_on_up(suite: Path) -> None:
    with _environment_up(suite, "--backend", "native") as up:
        # More workers than the environment has servers for: one line naming the fix, nothing run.
        refused = cli("test", "--service", str(suite), "--workers", "2")
        assert refused.returncode == ExitCode.CONFIG
        assert refused.stderr.strip().splitlines() == [
            "testbed: error: --workers 2: the environment is up for 1; "
            "`testbed up --workers 2` starts the servers 2 workers need"
        ]
        grown = cli("up", "--service", str(suite), "--workers", "2")
        assert grown.returncode == 0, grown.stdout + grown.stderr
        assert "✅ NATS (gw1): Running on port" in grown.stdout and run_id_of(grown.stdout) == run_id_of(up.stdout)
        # test_fresh leaves a row, a key and a stream on whichever worker ran it: each next run starts reset.
        for selection, passed in (("fresh", 1), ("alone", 7), ("fresh", 1), ("alone", 7)):
            test = cli("test", "--service", str(suite), "--workers", "2", "--", "-k", selection)
            assert test.returncode == 0, test.stdout + test.stderr
            assert f"✅ Tests: {passed} passed in" in test.stdout and "on 2 workers" in test.stdout


def test_a_reset_that_fails_stops_the_tests_at_the_gate_with_one_line(suite: Path) -> None:
    with _environment_up(suite, "--backend", "native") as up:
        fact = json.loads((run_folder_of(up.stdout) / "state.json").read_text())["facts"]["postgres"]
        template = f"{fact['database']}_testbed_fresh"
        # Someone's session on the migrated state's template: PostgreSQL will not clone a database in use.
        with psycopg.connect(host=fact["host"], port=fact["port"], user=fact["user"], password=fact["password"],
                             dbname=template):
            test = cli("test", "--service", str(suite), "--", "-k", "fresh")
        assert test.returncode == ExitCode.PROVISIONING, test.stdout + test.stderr
        failure = [line for line in test.stdout.splitlines() if line.startswith("❌")]
        assert failure == [f"❌ Tests: PostgreSQL: cannot clone database 'workers': source database \"{template}\" "
                           "is being accessed by other users"], test.stdout
        # pytest stopped at the gate: no test ran against the half-reset servers.
        log = (run_folder_of(test.stdout) / "pytest.log").read_text()
        assert log.startswith("testbed: the servers are not ready for the tests: PostgreSQL: cannot clone")
        assert "collected" not in log and "test session starts" not in log
        again = cli("test", "--service", str(suite), "--", "-k", "fresh")  # the session is gone: reset and pass
        assert again.returncode == 0, again.stdout + again.stderr


@pytest.mark.parametrize("server", ["postgres", "nats-gw1"])
def test_a_server_that_died_since_up_is_named_before_the_tests_and_up_replaces_it(suite: Path, server: str) -> None:
    with _environment_up(suite, "--backend", "native", "--workers", "2") as up:
        state = json.loads((run_folder_of(up.stdout) / "state.json").read_text())
        process = next(r for r in state["resources"] if r["kind"] == "process" and r["service"] == server)
        os.kill(process["pid"], signal.SIGKILL)  # the server dies between two dev-loop runs
        test = cli("test", "--service", str(suite), "--workers", "2", "--", "-k", "alone")
        assert test.returncode == ExitCode.PROVISIONING, test.stdout + test.stderr
        title = state["servers"][server]["title"]
        failure = [line for line in test.stdout.splitlines() if line.startswith("❌")]
        assert failure == [f"❌ Tests: {title} exited before the tests; `testbed up` replaces the environment"]
        assert not (run_folder_of(test.stdout) / "pytest.log").exists(), "pytest never started"
        replaced = cli("up", "--service", str(suite), "--ports", "auto", "--workers", "2")
        assert replaced.returncode == 0, replaced.stdout + replaced.stderr
        assert f"ℹ️  environment {run_id_of(up.stdout)} is unhealthy; replacing it" in replaced.stdout
        test = cli("test", "--service", str(suite), "--workers", "2", "--", "-k", "alone")
        assert test.returncode == 0, test.stdout + test.stderr
    assert leftovers(run_id_of(replaced.stdout)) == []


def test_bad_worker_counts_are_refused_before_anything_starts(suite: Path, tmp_path: Path) -> None:
    for given in ("0", ""):  # an empty value (an unset variable in a script) is refused, not the default
        result = run_testbed(suite, tmp_path / "runs", "--workers", given)
        assert result.returncode == ExitCode.CONFIG
        refused = f"testbed: error: --workers must be a number from 1 to 64, or auto; got {given!r}"
        assert result.stderr.strip() == refused
        assert not (tmp_path / "runs").exists()
    config = (suite / "testbed.yml").read_text()
    (suite / "testbed.yml").write_text(config.replace("  paths: [tests]\n", "  paths: [tests]\n  workers: many\n"))
    result = run_testbed(suite, tmp_path / "runs")
    assert result.returncode == ExitCode.CONFIG
    assert "'tests.workers' must be a number from 1 to 64, or auto; got 'many'" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_the_reference_service_passes_with_two_workers(tmp_path: Path) -> None:
    reference = FIXTURES.parent.parent / "services" / "agent_executor"
    result = run_testbed(reference, tmp_path / "runs", "--workers", "2", timeout=900)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    report = json.loads((run_folder_of(result.stdout) / "report.json").read_text())
    assert report["tests"]["failed"] == 0 and report["tests"]["passed"] >= 40 and "on 2 workers" in out
    assert leftovers(run_id_of(result.stdout)) == []


def test_a_declared_server_gets_an_instance_per_worker_unless_shared(tmp_path: Path) -> None:
    service = tmp_path / "declared"
    shutil.copytree(FIXTURES / "services" / "declared", service)
    config = (service / "testbed.yml").read_text()
    config = config.replace("      title: S3 (moto)\n", "      title: S3 (moto)\n      workers: shared\n")
    seen = tmp_path / "seen"
    seen.mkdir()
    (service / "testbed.yml").write_text(config.replace("env:\n  S3_URL", f"env:\n  SEEN: {seen}\n  S3_URL"))
    (service / "tests" / "test_seen.py").write_text(
        "import json, os, pytest\n\n"
        "@pytest.mark.parametrize('n', range(4))\n"
        "def test_records_what_it_sees(n):\n"
        "    worker = os.environ['PYTEST_XDIST_WORKER']\n"
        "    keys = ('MEMCACHED_ADDRESS', 'CACHE_PORT', 'AWS_ENDPOINT_URL', 'S3_URL')\n"
        "    seen = {key: os.environ[key] for key in keys}\n"
        "    (__import__('pathlib').Path(os.environ['SEEN']) / f'{worker}-{n}.json').write_text(json.dumps(seen))\n"
    )
    result = run_testbed(service, tmp_path / "runs", "--workers", "2", "--", "-k", "seen", "--dist", "each")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "✅ memcached (gw1): Running on port" in out and "S3 (moto) (gw1)" not in out
    seen_by = {path.stem.split("-")[0]: json.loads(path.read_text()) for path in seen.iterdir()}
    assert seen_by.keys() == {"gw0", "gw1"}
    gw0, gw1 = seen_by["gw0"], seen_by["gw1"]
    assert gw0["MEMCACHED_ADDRESS"] != gw1["MEMCACHED_ADDRESS"]  # its own memcached
    assert gw1["MEMCACHED_ADDRESS"].endswith(":" + gw1["CACHE_PORT"])  # templates see the worker's instance
    assert gw0["AWS_ENDPOINT_URL"] == gw1["AWS_ENDPOINT_URL"] and gw0["S3_URL"] == gw1["S3_URL"]  # shared
    assert leftovers(run_id_of(result.stdout)) == []


def test_a_migration_added_while_up_lands_on_the_fresh_state_and_the_reset_keeps_it(suite: Path) -> None:
    with _environment_up(suite, "--backend", "native"):
        again = cli("up", "--service", str(suite))  # nothing new: nothing reset, nothing kept again
        assert again.returncode == 0 and "✅ Migrations: Up to date (0 new)" in again.stdout, again.stdout
        dirty = cli("test", "--service", str(suite), "--", "-k", "fresh")  # leaves a row, a key and a stream
        assert dirty.returncode == 0, dirty.stdout + dirty.stderr
        (suite / "migrations" / "0002_note.sql").write_text("ALTER TABLE holder ADD COLUMN note text;\n")
        migrated = cli("up", "--service", str(suite))
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        assert "✅ Migrations: Applied successfully (1 new)" in migrated.stdout
        (suite / "tests" / "test_note.py").write_text(
            "from servers import database\n\n"
            "def test_the_new_column_is_there_and_the_old_row_is_not():\n"
            "    with database() as db:\n"
            "        assert db.execute('SELECT count(note) FROM holder').fetchone()[0] == 0\n"
            "        assert db.execute('SELECT count(*) FROM holder').fetchone()[0] == 0\n"
        )
        # Without a reset of its own: the database the new migration left is the fresh one, with it.
        kept = cli("test", "--service", str(suite), "--no-reset", "--", "-k", "note")
        assert kept.returncode == 0, kept.stdout + kept.stderr
        # And the reset's template has it too: after a run that leaves a row, the reset keeps the column.
        for selection in ("fresh", "note"):
            reset = cli("test", "--service", str(suite), "--", "-k", selection)
            assert reset.returncode == 0 and "1 passed" in reset.stdout, reset.stdout + reset.stderr


def test_more_workers_than_cpus_runs_with_one_notice_saying_so(suite: Path, tmp_path: Path) -> None:
    # This process and all it starts may use one CPU (its affinity), whatever the machine has.
    argv = ["taskset", "--cpu-list", str(min(os.sched_getaffinity(0))),
            *run_testbed_argv(suite, tmp_path / "runs", "--workers", "2", "--", "-k", "alone")]
    result = run(argv)
    assert result.returncode == 0, result.stdout + result.stderr
    notices = [line for line in result.stdout.splitlines() if "pytest workers on" in line]
    assert notices == ["ℹ️  Workers: 2 pytest workers on 1 CPU take turns, each with servers of its own; "
                       "--workers auto starts one per CPU (never more than the tests)"], result.stdout
    assert "✅ Tests: 7 passed in" in result.stdout and "on 2 workers" in result.stdout  # what was asked, still
    assert leftovers(run_id_of(result.stdout)) == []


@pytest.mark.parametrize("where", ["--workers", "tests.workers"])
def test_auto_workers_are_never_more_than_the_tests(suite: Path, tmp_path: Path, where: str) -> None:
    # One test selected: `auto` (the CPUs) starts one pytest, no xdist worker beside it.
    if where == "--workers":
        asked = ["--workers", "auto"]
    else:
        config = (suite / "testbed.yml").read_text()
        (suite / "testbed.yml").write_text(config.replace("  paths: [tests]\n", "  paths: [tests]\n  workers: auto\n"))
        asked = []
    result = run_testbed(suite, tmp_path / "runs", *asked, "--", "-k", "fresh")
    assert result.returncode == 0, result.stdout + result.stderr
    tests_line = next(line for line in result.stdout.splitlines() if line.startswith("✅ Tests:"))
    assert tests_line.startswith("✅ Tests: 1 passed in") and "workers" not in tests_line, tests_line
    folder = run_folder_of(result.stdout)
    assert json.loads((folder / "report.json").read_text())["tests"]["passed"] == 1
    assert "created:" not in (folder / "pytest.log").read_text()  # xdist's line when it starts workers
    assert "pytest workers on" not in result.stdout
    assert leftovers(folder.name) == []
