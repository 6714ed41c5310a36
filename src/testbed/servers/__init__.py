"""The server registry: one module per kind (postgres, dragonfly, nats), plus the servers a service
declares itself in testbed.yml (declared.py). Everything else in testbed iterates over this registry and
never names a kind: adding one is a module with a ServerKind, its catalogue entry and its tests."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from testbed.core.errors import TestbedError
from testbed.servers import dragonfly, nats, postgres
from testbed.servers.base import Binary, ContainerParts, ServerKind
from testbed.servers.declared import DECLARED_KEY, Declared

__all__ = [
    "REGISTRY",
    "WORKER_OF",
    "Binary",
    "ContainerParts",
    "ServerKind",
    "kind_of",
    "migrations_server",
    "ordered",
    "unavailable_on",
]

WORKER_OF = "worker_of"  # in an instance's settings: the server it stands in for, for one pytest worker

# The catalogue's kinds by name (the key in servers_catalogue and in testbed.yml's `servers`).
REGISTRY: dict[str, ServerKind] = {kind.name: kind for kind in (postgres.KIND, dragonfly.KIND, nats.KIND)}


def kind_of(name: str, settings: Mapping[str, Any] | None = None) -> ServerKind:
    """The kind serving `name`: its declaration when the service declared it, else the catalogue's."""
    if settings is not None and settings.get(DECLARED_KEY):
        return Declared(name)
    if settings is not None and settings.get(WORKER_OF) in REGISTRY:
        instance = copy.copy(REGISTRY[settings[WORKER_OF]])  # a pytest worker's own server of that kind
        instance.name = name
        return instance
    if name in REGISTRY:
        return REGISTRY[name]
    raise TestbedError(f"no server kind {name!r} (known: {', '.join(REGISTRY)}, or one declared in testbed.yml)")


def unavailable_on(servers: Mapping[str, Mapping[str, Any]], backend: str) -> str | None:
    """The first reason (naming the testbed.yml key) a server cannot run on `backend`, or None."""
    if backend not in ("native", "docker"):
        return None
    reasons = (kind_of(name, settings).unavailable(settings, backend) for name, settings in servers.items())
    return next((reason for reason in reasons if reason), None)


def migrations_server(servers: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The server the migrations run against, if the service has one that runs them."""
    return next((name for name, settings in servers.items() if kind_of(name, settings).runs_migrations), None)


def migrations_kinds() -> list[str]:
    return [name for name, kind in REGISTRY.items() if kind.runs_migrations]


def ordered(names: list[str]) -> list[str]:
    """Names in display order: the catalogue's kinds in their order, then declared ones as given."""
    return sorted(names, key=lambda name: REGISTRY[name].order if name in REGISTRY else 99)
