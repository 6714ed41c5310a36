"""Worker counts, the instances workers need, each worker's facts, the plugin and the reset gate, without
starting a server."""

from __future__ import annotations

from pathlib import Path

from support import run_workers_plugin
from testbed.config import catalogue
from testbed.config import workers as config_workers
from testbed.parallel import workers
from testbed.servers import WORKER_OF, declared

CATALOGUE = catalogue.load_catalogue()


def _servers(*names: str) -> dict[str, dict]:
    return {name: dict(CATALOGUE[name]) for name in names}






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


def test_the_plugin_gives_a_worker_its_share_and_the_controller_none(tmp_path: Path) -> None:
    shares = workers.write_shares(tmp_path / "shares.json", {"gw1": {"POSTGRES_DB": "app_gw1"}})
    assert oct(shares.stat().st_mode & 0o777) == "0o600"
    base = {workers.SHARES_VARIABLE: str(shares), "POSTGRES_DB": "app"}
    assert run_workers_plugin({**base, "PYTEST_XDIST_WORKER": "gw1"}).stdout.split() == ["app_gw1", "None"]
    assert run_workers_plugin({**base, "PYTEST_XDIST_WORKER": "gw0"}).stdout.split() == ["app", "None"]
    assert run_workers_plugin(base).stdout.split() == ["app", "None"]








