"""The `servers` and `settings` sections of testbed.yml: the catalogue's servers with the service's overrides,
the servers a service declares itself, and two servers on one fixed port, each problem named."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from testbed import servers as registry
from testbed.config import workers as config_workers
from testbed.core.paths import RUNTIME_ENTRIES
from testbed.servers import declared

SERVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# A declared server's name: its facts' name in templates (`{{ s3.url }}`), its data folder's in the run's runtime
# folder, part of its container's and its log's names.
SERVER_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


def type_name(expected: type | tuple[type, ...]) -> str:
    types = expected if isinstance(expected, tuple) else (expected,)
    names = {
        "str": "a string",
        "list": "a list",
        "dict": "a mapping",
        "int": "an integer",
        "bool": "true or false",
        "NoneType": "null",
    }
    return " or ".join(names.get(t.__name__, t.__name__) for t in types)


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def parse_servers(raw: dict[str, Any], catalogue: Mapping[str, dict[str, Any]], errors: list[str]) -> dict[str, Any]:
    """The catalogue's servers by name, and the service's own as `{name: declaration}` (servers/declared.py)."""
    entries = raw.get("servers", list(catalogue))
    settings = raw.get("settings", {}) if isinstance(raw.get("settings", {}), dict) else {}
    servers: dict[str, Any] = {}
    declared_names = [next(iter(entry)) for entry in entries if isinstance(entry, dict) and len(entry) == 1]
    reserved = _reserved_names([*catalogue, *declared_names]) if declared_names else {}
    for entry in entries:
        if isinstance(entry, dict) and len(entry) == 1:
            _declared_entry(entry, catalogue, reserved, servers, errors)
        elif not isinstance(entry, str):
            errors.append("'servers' must list catalogue names or `name: {declaration}` mappings")
        elif entry not in catalogue:
            errors.append(
                f"unknown server '{entry}' in 'servers' (known: {', '.join(catalogue)}), or declare it: "
                f"`- {entry}: {{port: ..., native: {{command: [...]}}}}`"
            )
        elif entry in servers:
            twice = f"'servers' lists '{entry}' twice: list each server once"
            errors.extend([] if twice in errors else [twice])  # three times is still one problem
        else:
            servers[entry] = copy.deepcopy(catalogue[entry])
    for name, override in settings.items():
        if name not in catalogue:
            errors.append(f"unknown server 'settings.{name}' (known: {', '.join(catalogue)})")
        elif name not in servers:
            errors.append(f"'settings.{name}' is set but '{name}' is not in 'servers'")
        elif not isinstance(override, dict):
            errors.append(f"'settings.{name}' must be a mapping, got {type(override).__name__}")
        else:
            allowed = catalogue[name]
            for key, value in override.items():
                if key not in allowed or key == "title":
                    settable = ", ".join(k for k in allowed if k != "title")
                    errors.append(f"unknown key 'settings.{name}.{key}' (allowed: {settable})")
                elif not isinstance(value, type(allowed[key])) and allowed[key] is not None:
                    errors.append(
                        f"'settings.{name}.{key}' must be {type_name(type(allowed[key]))}, got {type(value).__name__}"
                    )
            servers[name] = _merge(servers[name], override)
    _port_clashes(servers, errors)
    return servers


def _reserved_names(servers: list[Any]) -> dict[str, str]:
    """The names no declared server may take, each with what holds it: a pytest worker's instance of one of
    `servers` (`nats-gw1`), and what testbed keeps in a run's runtime folder, where each server's data folder is
    named after it (`private`, `state.json`)."""
    reserved = {
        name: f"it names pytest worker {worker}'s instance of '{server}'"
        for name, (server, worker) in config_workers.instance_names(s for s in servers if isinstance(s, str)).items()
    }
    entries = dict(RUNTIME_ENTRIES)
    for kind in registry.REGISTRY.values():
        entries |= dict.fromkeys(kind.run_dir_entries, f"a file of {kind.name}'s")
    reserved |= {name: f"the run's runtime folder holds {what} under that name" for name, what in entries.items()}
    return reserved


def _declared_entry(
    entry: Mapping[Any, Any],
    catalogue: Mapping[str, Any],
    reserved: Mapping[str, str],
    servers: dict[str, Any],
    errors: list[str],
) -> None:
    name, spec = next(iter(entry.items()))
    if isinstance(name, str) and name in catalogue:
        errors.append(f"'servers.{name}' is a catalogue server: list it by name and set 'settings.{name}'")
    elif isinstance(name, str) and name in reserved:
        errors.append(f"'servers.{name}' is reserved: {reserved[name]}; name the server otherwise")
    elif not isinstance(name, str) or not SERVER_NAME.fullmatch(name):
        errors.append(
            f"'servers' entry {name!r} must be a simple name: a lowercase letter, then lowercase letters, digits or "
            "'_', at most 32 (templates name its facts by it, e.g. `{{ name.url }}`)"
        )
    elif name in servers:
        errors.append(f"'servers.{name}' is declared twice")
    else:
        parsed = declared.parse(name, spec, errors)
        if parsed is not None:
            servers[name] = parsed


def _port_clashes(servers: Mapping[str, Mapping[str, Any]], errors: list[str]) -> None:
    """Two servers on one fixed port can never both start: say so before anything does."""
    owners: dict[int, str] = {}
    for name, settings in servers.items():
        for key in registry.kind_of(name, settings).ports(settings):
            port = settings.get(key)
            if not isinstance(port, int) or not port:
                continue
            where = f"servers.{name}.{key}" if settings.get(declared.DECLARED_KEY) else f"settings.{name}.{key}"
            if port in owners:
                errors.append(f"'{where}' {port} is also '{owners[port]}': give each server its own port")
            else:
                owners[port] = where
