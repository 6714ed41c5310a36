"""The local dev loop: up once, test many times, look around, down."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from conftest import PROJECT, clean_env, cli, leftovers, playbook

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
