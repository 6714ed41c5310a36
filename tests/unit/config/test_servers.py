"""testbed.yml's `servers` and `settings`: the catalogue's servers with the service's overrides merged, each problem
named with its key, and two servers on one fixed port refused before anything starts."""

from __future__ import annotations

from typing import Any

import pytest

from testbed.config import catalogue
from testbed.config.servers import parse_servers

CATALOGUE = catalogue.load_catalogue()


def _parsed(raw: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    errors: list[str] = []
    return parse_servers(raw, CATALOGUE, errors), errors


def test_without_servers_every_catalogue_server_is_used() -> None:
    servers, errors = _parsed({})
    assert errors == [] and list(servers) == list(CATALOGUE)


def test_an_override_merges_into_a_nested_default_and_leaves_the_catalogue_alone() -> None:
    servers, errors = _parsed({"servers": ["postgres"], "settings": {"postgres": {
        "port": 25433, "server_settings": {"max_connections": "50"}}}})
    assert errors == []
    assert servers["postgres"]["port"] == 25433
    default = CATALOGUE["postgres"]["server_settings"]
    assert servers["postgres"]["server_settings"] == {**default, "max_connections": "50"}
    assert (CATALOGUE["postgres"]["port"] == 15433 and "max_connections" not in default) or \
        default.get("max_connections") != "50"  # the catalogue itself is never changed


@pytest.mark.parametrize(("raw", "problem"), [
    ({"servers": ["mysql"]}, "unknown server 'mysql' in 'servers' (known: "),
    ({"servers": ["nats", "nats", "nats"]}, "'servers' lists 'nats' twice: list each server once"),
    ({"servers": [3]}, "'servers' must list catalogue names or `name: {declaration}` mappings"),
    ({"servers": ["nats"], "settings": {"redis": {}}}, "unknown server 'settings.redis' (known: "),
    ({"servers": ["nats"], "settings": {"postgres": {}}}, "'settings.postgres' is set but 'postgres' is not in"),
    ({"servers": ["nats"], "settings": {"nats": 1}}, "'settings.nats' must be a mapping, got int"),
    ({"servers": ["nats"], "settings": {"nats": {"title": "x"}}}, "unknown key 'settings.nats.title' (allowed: "),
    ({"servers": ["nats"], "settings": {"nats": {"port": "4222"}}}, "'settings.nats.port' must be an integer, got str"),
    ({"servers": ["postgres", {"postgres": {}}]}, "'servers.postgres' is a catalogue server: list it by name"),
    ({"servers": ["nats", {"private": {}}]}, "'servers.private' is reserved: the run's runtime folder holds its"),
    ({"servers": [{"S3": {}}]}, "'servers' entry 'S3' must be a simple name"),
])
def test_each_problem_is_named_with_its_key(raw: dict[str, Any], problem: str) -> None:
    _, errors = _parsed(raw)
    assert len(errors) == 1 and errors[0].startswith(problem), errors


def test_two_servers_on_one_fixed_port_are_refused() -> None:
    _, errors = _parsed({"servers": ["postgres", "nats"], "settings": {"nats": {"port": 15433}}})
    assert len(errors) == 1 and "15433" in errors[0] and "postgres" in errors[0] and "nats" in errors[0], errors
