"""Connection facts, the tests' environment and templating, from settings alone (no server started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.config import catalogue, environment
from testbed.config import service as config_service
from testbed.core.errors import ExitCode, TestbedError

CATALOGUE = catalogue.load_catalogue()


def _servers(**ports: int) -> dict[str, dict]:
    servers = {name: dict(CATALOGUE[name]) for name in ports}
    for name, port in ports.items():
        servers[name]["port"] = port
    if "nats" in servers:
        servers["nats"]["monitor_port"] = 18999
    return servers


def _service(tmp_path: Path, env: dict[str, str] | None = None, pytest_args: list[str] | None = None,
             ) -> config_service.ServiceConfig:
    return config_service.ServiceConfig(name="svc", directory=tmp_path, servers={}, migrations=None, install="none",
                                        secrets=[], tests=config_service.TestsSpec(pytest_args=pytest_args or []),
                                        env=env or {})


def test_facts_give_each_server_its_host_port_and_url() -> None:
    facts = environment.connection_facts(_servers(postgres=25432, dragonfly=26379, nats=24222), host="10.0.0.5")
    pg = CATALOGUE["postgres"]
    assert facts["postgres"] == {
        "host": "10.0.0.5", "port": 25432, "user": pg["user"], "password": pg["password"],
        "database": pg["database"],
        "url": f"postgresql://{pg['user']}:{pg['password']}@10.0.0.5:25432/{pg['database']}",
    }
    assert facts["dragonfly"] == {"host": "10.0.0.5", "port": 26379, "url": "redis://10.0.0.5:26379/0"}
    assert facts["nats"] == {"host": "10.0.0.5", "port": 24222, "url": "nats://10.0.0.5:24222", "monitor_port": 18999}


def test_facts_cover_only_the_servers_the_service_uses() -> None:
    assert list(environment.connection_facts(_servers(nats=24222))) == ["nats"]


def test_environment_has_the_standard_variables_then_the_services_own(tmp_path: Path) -> None:
    facts = environment.connection_facts(_servers(postgres=25432, dragonfly=26379, nats=24222))
    env = environment.service_environment(_service(tmp_path, {"DATABASE_URL": "{{ postgres.url }}?sslmode=disable",
                                                         "POSTGRES_PORT": "6000", "PLAIN": "x"}), facts)
    pg = CATALOGUE["postgres"]
    assert env == {
        "POSTGRES_HOST": "127.0.0.1", "POSTGRES_PORT": "6000", "POSTGRES_USER": pg["user"],
        "POSTGRES_PASSWORD": pg["password"], "POSTGRES_DB": pg["database"],
        "DRAGONFLY_HOST": "127.0.0.1", "DRAGONFLY_PORT": "26379", "NATS_URL": "nats://127.0.0.1:24222",
        "DATABASE_URL": f"{facts['postgres']['url']}?sslmode=disable", "PLAIN": "x",
    }


def test_environment_without_servers_is_the_services_own(tmp_path: Path) -> None:
    assert environment.service_environment(_service(tmp_path, {"A": "1"}), {}) == {"A": "1"}


def test_pytest_arguments_are_rendered_in_order(tmp_path: Path) -> None:
    facts = environment.connection_facts(_servers(nats=24222))
    service = _service(tmp_path, pytest_args=["-x", "--nats={{ nats.url }}", "-p", "{{ 'no' }}:x"])
    args = environment.pytest_arguments(service, facts)
    assert args == ["-x", "--nats=nats://127.0.0.1:24222", "-p", "no:x"]


def test_every_templating_problem_is_named_in_one_line(tmp_path: Path) -> None:
    facts = environment.connection_facts(_servers(postgres=25432))
    service = _service(tmp_path, {"A": "{{ postgres.uri }}", "B": "{{ redis.url }}/{{ nats.port }}", "C": "{{ oops"},
                       pytest_args=["{{ postgres.port + 'a' }}"])
    with pytest.raises(TestbedError) as caught:
        environment.check_templates(service, facts)
    message = str(caught.value)
    assert caught.value.exit_code == ExitCode.CONFIG and "\n" not in message
    assert message.startswith("testbed.yml 'env.A': cannot render '{{ postgres.uri }}': ")
    assert "'uri'" in message, message
    assert "'env.B': cannot render '{{ redis.url }}/{{ nats.port }}': 'redis' is undefined, 'nats' is undefined" \
        in message, message
    assert "'env.C': cannot render '{{ oops': " in message and "(template line 1)" in message, message
    assert "'tests.pytest_args[0]': cannot render \"{{ postgres.port + 'a' }}\": " in message, message
    assert message.endswith("(facts: postgres)"), message




