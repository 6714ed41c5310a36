"""Worker counts, the instances workers need, each worker's facts, the plugin and the reset gate, without
starting a server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from testbed.config import catalogue, service
from testbed.config import workers as config_workers
from testbed.core.errors import ExitCode, TestbedError
from testbed.parallel import workers
from testbed.parallel.reset_gate import GATE_VARIABLE, ResetGate
from testbed.servers import WORKER_OF, declared

CATALOGUE = catalogue.load_catalogue()


def _servers(*names: str) -> dict[str, dict]:
    return {name: dict(CATALOGUE[name]) for name in names}


@pytest.mark.parametrize(("given", "expected"), [(1, 1), ("3", 3), (64, 64), ("auto", os.cpu_count() or 1)])
def test_counts(given: object, expected: int) -> None:
    assert config_workers.count(given, "--workers") == expected


@pytest.mark.parametrize("given", [0, "0", 65, "-1", "two", True, 1.5, None])
def test_bad_counts_name_the_key(given: object) -> None:
    with pytest.raises(TestbedError) as caught:
        config_workers.count(given, "'tests.workers'")
    assert caught.value.exit_code == ExitCode.CONFIG
    assert str(caught.value) == f"'tests.workers' must be a number from 1 to 64, or auto; got {given!r}"


def test_the_redis_slot_and_nats_get_an_instance_per_worker_after_the_first_and_postgres_none() -> None:
    servers = workers.with_instances(_servers("postgres", "dragonfly", "nats"), 3)
    assert sorted(servers) == [
        "dragonfly", "dragonfly-gw1", "dragonfly-gw2", "nats", "nats-gw1", "nats-gw2", "postgres"
    ]
    assert servers["nats-gw2"][WORKER_OF] == "nats" and servers["nats-gw2"]["title"] == "NATS (gw2)"
    assert config_workers.primaries(servers).keys() == {"postgres", "dragonfly", "nats"}
    assert workers.with_instances(_servers("postgres", "dragonfly"), 1).keys() == {"postgres", "dragonfly"}


def test_growing_keeps_the_instances_there_are_and_names_the_missing() -> None:
    two = workers.with_instances(_servers("dragonfly"), 2)
    two["dragonfly-gw1"]["port"] = 41234  # picked when it was brought up
    assert workers.missing_instances(two, 2) == [] and workers.missing_instances(two, 1) == []
    assert workers.missing_instances(two, 3) == ["dragonfly-gw2"]
    assert workers.with_instances(two, 3)["dragonfly-gw1"]["port"] == 41234


def test_a_declared_server_is_shared_by_instance_unless_it_says_shared() -> None:
    errors: list[str] = []
    own = declared.parse("mock", {"port": 15001, "native": {"command": ["mock"]}}, errors)
    shared = declared.parse("s3", {"port": 15000, "native": {"command": ["moto"]}, "workers": "shared"}, errors)
    declared.parse("bad", {"port": 15002, "workers": "logical"}, errors)
    assert errors == ["'servers.bad.workers' must be one of instance, shared, got 'logical'"]
    assert own is not None and shared is not None
    servers = workers.with_instances({"mock": own, "s3": shared}, 2)
    assert sorted(servers) == ["mock", "mock-gw1", "s3"]


def test_each_worker_connects_to_its_own_instance_under_the_run_s_names() -> None:
    servers = workers.with_instances(_servers("dragonfly", "nats"), 2)
    facts = {name: {"host": "127.0.0.1", "port": 1000 + i, "url": f"x://{name}"} for i, name in enumerate(servers)}
    mine = workers.worker_facts(servers, facts, 1)
    assert mine == {"dragonfly": facts["dragonfly-gw1"], "nats": facts["nats-gw1"]}


def _plugin(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = "import os, testbed_workers; print(os.environ.get('POSTGRES_DB'), os.environ.get('TESTBED_RESET_GATE'))"
    return subprocess.run(
        [sys.executable, "-c", code],
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(workers.PLUGIN_DIR), **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def test_the_plugin_gives_a_worker_its_share_and_the_controller_none(tmp_path: Path) -> None:
    shares = workers.write_shares(tmp_path / "shares.json", {"gw1": {"POSTGRES_DB": "app_gw1"}})
    assert oct(shares.stat().st_mode & 0o777) == "0o600"
    base = {workers.SHARES_VARIABLE: str(shares), "POSTGRES_DB": "app"}
    assert _plugin({**base, "PYTEST_XDIST_WORKER": "gw1"}).stdout.split() == ["app_gw1", "None"]
    assert _plugin({**base, "PYTEST_XDIST_WORKER": "gw0"}).stdout.split() == ["app", "None"]
    assert _plugin(base).stdout.split() == ["app", "None"]


def test_the_gate_holds_pytest_until_the_reset_is_done_then_lets_workers_pass(tmp_path: Path) -> None:
    order: list[str] = []
    gate = ResetGate(tmp_path, lambda: order.append("reset"))
    result = _plugin({GATE_VARIABLE: str(gate.path), "POSTGRES_DB": "app"})
    gate.close()
    assert result.returncode == 0 and result.stdout.split() == ["app", "None"]  # passed, and removed for workers
    assert order == ["reset"] and not gate.path.exists()


def test_a_failed_reset_stops_pytest_at_the_gate_and_is_raised_once(tmp_path: Path) -> None:
    def fail() -> None:
        raise TestbedError("PostgreSQL: cannot clone database 'app': connection refused", ExitCode.PROVISIONING)

    gate = ResetGate(tmp_path, fail)
    result = _plugin({GATE_VARIABLE: str(gate.path)})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "testbed: the servers are not ready for the tests: PostgreSQL: cannot clone database 'app': connection refused"
    )
    with pytest.raises(TestbedError) as caught:
        gate.close()
    assert caught.value.exit_code == ExitCode.PROVISIONING


def test_a_gate_nobody_answers_stops_pytest(tmp_path: Path) -> None:
    path = tmp_path / "gate.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    listener.close()  # testbed went away: the path is there, nobody listens
    result = _plugin({GATE_VARIABLE: str(path)})
    assert result.returncode != 0 and "ConnectionRefusedError" in result.stderr


def test_tests_workers_in_testbed_yml(tmp_path: Path) -> None:
    (tmp_path / "testbed.yml").write_text("servers: [dragonfly]\ntests:\n  workers: auto\n")
    assert service.load_service_config(tmp_path, CATALOGUE).tests.workers == "auto"
    (tmp_path / "testbed.yml").write_text("servers: [dragonfly]\ntests:\n  workers: [2]\n")
    with pytest.raises(TestbedError) as caught:
        service.load_service_config(tmp_path, CATALOGUE)
    assert "'tests.workers' must be" in str(caught.value) and caught.value.exit_code == ExitCode.CONFIG
    assert json.dumps(service.TestsSpec().workers) == "1"
