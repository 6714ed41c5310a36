"""A server the service declares itself: its settings with their defaults, or each problem named with its key."""

from __future__ import annotations

from typing import Any

import pytest

from testbed.servers import declared


def _parsed(spec: object) -> tuple[dict[str, Any] | None, list[str]]:
    errors: list[str] = []
    return declared.parse("s3", spec, errors), errors


def test_a_minimal_declaration_gets_its_defaults() -> None:
    settings, errors = _parsed({"port": 9000, "native": {"command": ["moto_server", "-p", "{{ port }}"]}})
    assert errors == []
    assert settings == {declared.DECLARED_KEY: True, "title": "s3", "port": 9000, "container_port": 9000,
                        "native_command": ["moto_server", "-p", "{{ port }}"], "image": "", "container_command": [],
                        "ready": {"tcp": True}, "env": {}, "workers": "instance", "reset_command": []}


@pytest.mark.parametrize(("spec", "problem"), [
    ([1], "'servers.s3' must be a mapping (port, native, image, ready, env), got list"),
    ({"port": 9000, "colour": "red"}, "unknown key 'servers.s3.colour' (allowed: "),
    ({"port": 0}, "'servers.s3.port' is required: a TCP port (1-65535) the server listens on, got 0"),
    ({"port": True}, "'servers.s3.port' is required: a TCP port (1-65535) the server listens on, got True"),
    ({"port": 1, "native": {"cmd": []}}, "'servers.s3.native' must be a mapping with 'command'"),
    ({"port": 1, "native": {"command": []}}, "'servers.s3.native.command' must be a non-empty list of strings"),
    ({"port": 1, "container_port": 70000}, "'servers.s3.container_port' must be a TCP port (1-65535)"),
    ({"port": 1, "ready": {"udp": True}}, "'servers.s3.ready' must be one of {http: /path}, {tcp: true}"),
    ({"port": 1, "ready": {"http": "health"}}, "'servers.s3.ready.http' must be a path starting with '/'"),
    ({"port": 1, "ready": {"tcp": "yes"}}, "'servers.s3.ready.tcp' must be true"),
    ({"port": 1, "workers": "each"}, "'servers.s3.workers' must be one of "),
    ({"port": 1, "env": {"A": 1}}, "'servers.s3.env' must map variable names to strings"),
    ({"port": 1, "env": {"A B": "x"}}, "'servers.s3.env.A B' is not a valid environment variable name"),
])
def test_each_problem_is_named_with_its_key_and_nothing_is_returned(spec: object, problem: str) -> None:
    settings, errors = _parsed(spec)
    assert settings is None and len(errors) == 1 and errors[0].startswith(problem), errors


def test_every_problem_of_one_declaration_is_named() -> None:
    _, errors = _parsed({"port": -1, "image": 3, "title": 4})
    assert len(errors) == 3 and [e.split("'")[1] for e in errors] == ["servers.s3.port", "servers.s3.image",
                                                                      "servers.s3.title"]
