"""The container each server gets on the Docker backend, from its settings (no engine: `present` comes
from the image check, given here)."""

from __future__ import annotations

import pytest

from testbed.backends import docker, docker_api
from testbed.config import catalogue
from testbed.core.paths import runtime_root

CATALOGUE = catalogue.load_catalogue()


@pytest.fixture(autouse=True)
def _images_here(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(docker_api, "image_present", lambda image: image != CATALOGUE["nats"]["image"])


def _specs(ports: str) -> dict[str, dict]:
    servers = {name: dict(settings) for name, settings in CATALOGUE.items()}
    if ports == "auto":  # preflight sets 0: Docker publishes an ephemeral port that testbed reads back
        for settings in servers.values():
            for key in ("port", "monitor_port"):
                if key in settings:
                    settings[key] = 0
    return {spec["service"]: spec for spec in docker.containers("r1", servers)}


def test_every_container_is_named_and_labelled_for_its_run() -> None:
    specs = _specs("fixed")
    assert list(specs) == list(CATALOGUE)
    for name, spec in specs.items():
        assert spec["name"] == f"testbed-r1-{name}"
        assert spec["image"] == CATALOGUE[name]["image"]
        assert spec["labels"] == {docker_api.LABEL_RUN: "r1", docker_api.LABEL_SERVICE: name,
                                  docker_api.LABEL_ROOT: str(runtime_root())}
        assert spec["present"] == (name != "nats")


def test_postgres_gets_its_credentials_settings_and_a_tmpfs_data_folder() -> None:
    spec = _specs("fixed")["postgres"]
    pg = CATALOGUE["postgres"]
    assert spec["env"] == {"POSTGRES_USER": pg["user"], "POSTGRES_PASSWORD": pg["password"],
                           "POSTGRES_DB": pg["database"]}
    assert spec["command"][0] == "postgres"
    assert spec["command"][1:] == [a for k, v in pg["server_settings"].items() for a in ("-c", f"{k}={v}")]
    assert spec["tmpfs"] == ["/var/lib/postgresql/data"]


def test_dragonfly_and_nats_commands() -> None:
    specs = _specs("fixed")
    df = CATALOGUE["dragonfly"]
    assert specs["dragonfly"]["command"] == ["--port=6379", f"--proactor_threads={df['proactor_threads']}",
                                             f"--maxmemory={df['maxmemory']}"]
    assert specs["nats"]["command"] == ["-js", "-sd", "/data/jetstream", "-p", "4222", "-m", "8222"]
    assert specs["dragonfly"]["env"] == specs["nats"]["env"] == {}


def test_fixed_ports_are_published_on_loopback_as_configured() -> None:
    specs = _specs("fixed")
    assert specs["postgres"]["ports"] == [f"127.0.0.1:{CATALOGUE['postgres']['port']}:5432"]
    assert specs["dragonfly"]["ports"] == [f"127.0.0.1:{CATALOGUE['dragonfly']['port']}:6379"]
    assert specs["nats"]["ports"] == [f"127.0.0.1:{CATALOGUE['nats']['port']}:4222",
                                      f"127.0.0.1:{CATALOGUE['nats']['monitor_port']}:8222"]


def test_auto_ports_leave_the_host_port_to_docker() -> None:
    specs = _specs("auto")
    assert specs["postgres"]["ports"] == ["127.0.0.1::5432"]
    assert specs["dragonfly"]["ports"] == ["127.0.0.1::6379"]
    assert specs["nats"]["ports"] == ["127.0.0.1::4222", "127.0.0.1::8222"]
