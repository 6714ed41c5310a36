"""The server registry (testbed.servers): every kind's knowledge lives in its own module. No process starts."""

from __future__ import annotations

import re

from conftest import PROJECT
from testbed import servers
from testbed.config import connection_facts, load_catalogue
from testbed.pipeline import containers

SRC = PROJECT / "src" / "testbed"


def test_a_kind_is_named_only_in_its_own_module() -> None:
    """Issue 15's done-when: `grep '"postgres"\\|"nats"\\|"dragonfly"' src/` finds each name only in the
    kind's own module; everything else iterates over the registry."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for name in re.findall(r'"(postgres|nats|dragonfly)"', line):
                if path != SRC / "servers" / f"{name}.py":
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
