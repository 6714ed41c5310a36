"""The server registry (testbed.servers): every kind's knowledge lives in its own module. No process starts."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from support import PROJECT
from testbed import servers
from testbed.backends.docker import containers
from testbed.config.catalogue import load_catalogue
from testbed.config.environment import connection_facts, service_environment
from testbed.config.service import load_service_config
from testbed.core.host import Account, Launch

SRC = PROJECT / "src" / "testbed"


def test_a_kind_is_named_only_in_its_own_module() -> None:
    """Issue 15's done-when: `grep '"postgres"\\|"nats"\\|"dragonfly"' src/` finds each name only in the
    kind's own modules (servers/<kind>.py and its helpers servers/<kind>_*.py); everything else iterates over the
    registry."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for name in re.findall(r'"(postgres|nats|dragonfly)"', line):
                # the kind's module, or one of its own helpers beside it (servers/postgres_admin.py)
                if path.parent != SRC / "servers" or path.stem.split("_")[0] != name:
                    found.append(f"{path.relative_to(PROJECT)}:{number}: {line.strip()}")
    assert found == []


def test_every_catalogue_entry_has_a_kind_and_back() -> None:
    assert set(load_catalogue(PROJECT)) == set(servers.REGISTRY)


def test_a_declared_server_gets_facts_and_a_container_like_the_catalogues() -> None:
    settings = {"postgres": dict(load_catalogue(PROJECT)["postgres"], port=0)}
    settings["s3"] = {
        "declared": True, "title": "S3", "port": 0, "container_port": 5000, "native_command": ["moto_server"],
        "image": "moto:5", "container_command": ["-p", "{{ port }}"], "ready": {"http": "/"}, "env": {},
    }  # fmt: skip
    assert servers.ordered(["s3", "postgres"]) == ["postgres", "s3"]
    facts = connection_facts({name: dict(s, port=15000) for name, s in settings.items()})
    assert facts["s3"] == {"host": "127.0.0.1", "port": 15000, "url": "http://127.0.0.1:15000"}
    spec = next(s for s in containers("r1", settings) if s["service"] == "s3")
    assert spec["ports"] == ["127.0.0.1::5000"] and spec["command"] == ["-p", "5000"]
    assert servers.unavailable_on(settings, "docker") is None
    assert "'servers.s3.native.command'" in (servers.unavailable_on({**settings, "s3": {
        **settings["s3"], "native_command": []}}, "native") or "")  # fmt: skip


class _Echo(servers.ServerKind):
    """A made-up kind: what a new module under src/testbed/servers/ would hold."""

    name = "echo"
    order = 5

    def ports(self, settings: Mapping[str, Any]) -> dict[str, int]:
        return {"port": 7}

    def locate(self, settings: Mapping[str, Any]) -> servers.Binary | str:
        return servers.Binary("/bin/echo-server")

    def launch(self, settings: Mapping[str, Any], binary: str, run_dir: Path, account: Account) -> Launch:
        return Launch(self.name, [binary, str(settings["port"])], run_dir / self.name, 15)

    def container(self, settings: Mapping[str, Any]) -> servers.ContainerParts:
        return servers.ContainerParts(command=["--echo"])

    def environment(self, fact: Mapping[str, Any]) -> dict[str, str]:
        return {"ECHO_ADDRESS": f"{fact['host']}:{fact['port']}"}

    def probe(self, settings: Mapping[str, Any], fact: Mapping[str, Any]) -> str:
        return "echo 1"


def test_a_new_kind_is_one_registration_away(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Registered, a kind is validated, listed, templated, containerised and exported like the built-ins."""
    monkeypatch.setitem(servers.REGISTRY, "echo", _Echo())
    catalogue = {**load_catalogue(PROJECT), "echo": {"title": "Echo", "port": 17007, "image": "echo:1"}}
    (tmp_path / "testbed.yml").write_text("servers: [echo, nats]\nenv: {ECHO_URL: '{{ echo.url }}'}\n")
    config = load_service_config(tmp_path, catalogue)
    facts = connection_facts(config.servers)
    assert facts["echo"] == {"host": "127.0.0.1", "port": 17007, "url": "tcp://127.0.0.1:17007"}
    assert service_environment(config, facts)["ECHO_ADDRESS"] == "127.0.0.1:17007"
    assert service_environment(config, facts)["ECHO_URL"] == "tcp://127.0.0.1:17007"
    spec = next(s for s in containers("r1", config.servers) if s["service"] == "echo")
    assert spec["ports"] == ["127.0.0.1:17007:7"] and spec["command"] == ["--echo"]
    assert servers.ordered(["nats", "echo"]) == ["nats", "echo"]  # nats is 2, echo 5


def test_a_declared_command_s_template_problems_are_named_by_their_place_in_the_declaration(tmp_path: Path) -> None:
    """`native: {command: [memcached, -p, "{{ nope }}", "{{ port }}", "{{ x.y }}"]}`: positions 2 and 4."""
    from testbed.core.errors import TestbedError  # noqa: PLC0415

    settings = {"declared": True, "title": "Cache", "port": 11211,
                "native_command": ["memcached", "-p", "{{ nope }}", "{{ port }}", "{{ x.y }}"]}  # fmt: skip
    kind = servers.kind_of("cache", settings)
    with pytest.raises(TestbedError) as raised:
        kind.launch(settings, "/usr/bin/memcached", tmp_path, Account(0, 0, "root"))
    message = str(raised.value)
    assert "native.command[2]" in message and "native.command[4]" in message
    assert "native.command[1]" not in message and "native.command[3]" not in message
