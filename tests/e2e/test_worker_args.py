"""pytest-xdist workers for a suite that takes its servers as pytest options (`tests.pytest_args` templates):
each worker gets the arguments rendered with its own servers' facts, end to end with real servers.

The fixture service `workerargs` reaches PostgreSQL, the Redis slot and NATS only through its own options
(--postgres-url, --redis-url, --nats-url; its conftest drops the variables testbed also sets). Each worker
marks each server for its whole session and each test holds a row, a key and a stream and expects to see
no one else's: on shared servers the workers always meet (shown first); with `--workers N` each has its own,
through `testbed run`, `testbed test`, plain ansible-playbook and a shard, natively and on Docker."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from support import FIXTURES, cli, image_args, leftovers, playbook, run_folder_of, run_id_of, run_testbed
from testbed.core import junit
from testbed.core.errors import ExitCode

pytestmark = pytest.mark.slow

TESTS = 7  # test_alone's 6 and the database's


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    target = tmp_path / "workerargs"
    shutil.copytree(FIXTURES / "services" / "workerargs", target)
    return target


def _images(backend: str, request: pytest.FixtureRequest) -> dict[str, str]:
    return request.getfixturevalue("local_images") if backend == "docker" else {}


BACKENDS = ["native", pytest.param("docker", marks=pytest.mark.docker)]


def test_the_suite_collides_when_workers_share_the_servers(suite: Path, tmp_path: Path) -> None:
    # xdist asked for directly: two workers given the same options, so the same servers.
    result = run_testbed(suite, tmp_path / "runs", "--", "-n", "2")
    assert result.returncode == ExitCode.TESTS_FAILED, result.stdout + result.stderr
    assert "another worker's or test's" in (run_folder_of(result.stdout) / "junit.xml").read_text()
    assert leftovers(run_id_of(result.stdout)) == []


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("count", [2, 3])
def test_testbed_run_gives_each_worker_its_servers_in_its_arguments(
    suite: Path, tmp_path: Path, count: int, backend: str, request: pytest.FixtureRequest
) -> None:
    images = _images(backend, request)
    result = run_testbed(suite, tmp_path / "runs", "--workers", str(count), backend=backend, images=images)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert f"✅ Tests: {TESTS} passed in" in out and f"on {count} workers" in out
    assert f"✅ NATS (gw{count - 1}): Running on port" in out
    assert leftovers(run_id_of(result.stdout)) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_testbed_test_gives_each_worker_its_servers_in_its_arguments(
    suite: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    images = image_args(_images(backend, request))
    up = cli("up", "--service", str(suite), "--ports", "auto", "--backend", backend, "--workers", "3", *images)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        # The claims each run leaves are reset away before the next: only its own workers meet there.
        for count in (2, 3):
            test = cli("test", "--service", str(suite), "--workers", str(count))
            assert test.returncode == 0, test.stdout + test.stderr
            assert f"✅ Tests: {TESTS} passed in" in test.stdout and f"on {count} workers" in test.stdout
    finally:
        down = cli("down", "--service", str(suite))
    assert down.returncode == 0, down.stdout + down.stderr
    assert leftovers(run_id_of(up.stdout)) == []


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("count", [2, 3])
def test_plain_ansible_playbook_gives_each_worker_its_servers_in_its_arguments(
    suite: Path, tmp_path: Path, count: int, backend: str, request: pytest.FixtureRequest
) -> None:
    extravars = {
        "testbed_service": str(suite),
        "testbed_backend": backend,
        "testbed_ports": "auto",
        "testbed_run_root": str(tmp_path / "runs"),
        "testbed_workers": count,
        "testbed_images": _images(backend, request),
    }
    result = playbook("integration.yml", extravars)
    assert result.returncode == 0, result.stdout[-3000:]
    summary = junit.parse(run_folder_of(result.stdout) / "junit.xml")
    assert summary is not None and summary.counts()["passed"] == TESTS and summary.total == TESTS
    assert leftovers(run_id_of(result.stdout)) == []


def test_a_shard_gives_each_worker_its_servers_in_its_arguments(suite: Path, tmp_path: Path) -> None:
    result = run_testbed(suite, tmp_path / "runs", "--shard", "1/2", "--workers", "2")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    summary = junit.parse(run_folder_of(result.stdout) / "junit.xml")
    assert summary is not None and summary.failed == summary.errors == 0 and summary.total >= 2
    assert "on 2 workers" in out
    assert leftovers(run_id_of(result.stdout)) == []


def test_a_suite_making_its_own_worker_databases_from_its_url_still_passes(tmp_path: Path) -> None:
    # SQLAlchemy's way: the controller makes each worker's database from its --dburi (gw0's, as before);
    # each worker connects with its own --dburi (its clone's) with that database put in.
    service = tmp_path / "followers"
    shutil.copytree(FIXTURES / "services" / "followers", service)
    result = run_testbed(service, tmp_path / "runs", "--workers", "2")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "✅ Tests: 5 passed in" in out and "on 2 workers" in out
    assert leftovers(run_id_of(result.stdout)) == []


def test_a_template_pytest_reads_before_the_workers_get_theirs_is_refused_before_anything_starts(
    suite: Path, tmp_path: Path
) -> None:
    config = (suite / "testbed.yml").read_text()
    early = '    - "-o"\n    - "cache_dir={{ nats.port }}"\n'  # an ini value pytest reads before any plugin
    (suite / "testbed.yml").write_text(config.replace('    - "-r"\n', early + '    - "-r"\n'))
    result = run_testbed(suite, tmp_path / "runs", "--workers", "2")
    assert result.returncode == ExitCode.CONFIG, result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == [
        "testbed: error: 'tests.pytest_args[2]' 'cache_dir={{ nats.port }}' is given to -o, which pytest reads "
        "before testbed can give each of 2 workers its own nats: pass it as an option of the suite's own "
        "(pytest_addoption) or through env, or run one worker"
    ]
    assert not (tmp_path / "runs").exists()
