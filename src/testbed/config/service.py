"""A service's testbed.yml: loading and validation against the catalogue, into one typed ServiceConfig;
every problem is named in one line."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testbed import servers as registry
from testbed.config import workers
from testbed.config.servers import SERVICE_NAME, parse_servers, type_name
from testbed.core.environ import bad_env_names
from testbed.core.errors import ExitCode, TestbedError
from testbed.migrations.files import DEFAULT_SCHEMA as DEFAULT_MIGRATIONS_SCHEMA

CONFIG_NAME = "testbed.yml"


INSTALL_MODES = ("auto", "poetry", "pip", "none")


_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


# key -> (type, description) for the top level; nested maps are checked below.
_TOP_LEVEL: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "servers": list,
    "settings": dict,
    "migrations": (str, dict, type(None)),
    "tests": dict,
    "install": str,
    "secrets": dict,
    "env": dict,
}


_TESTS: dict[str, type | tuple[type, ...]] = {
    "paths": list,
    "pytest_args": list,
    "coverage": list,
    "timeout": int,
    "deadline": int,
    "workers": (int, str),
    "isolation": str,
}

# What starts from the freshly migrated state: every test, each pytest worker (at the start of a run; the dev
# loop resets before each `testbed test`), or the run (the dev loop keeps what earlier runs left).
ISOLATIONS = ("run", "worker", "test")


_SECRET: dict[str, type | tuple[type, ...]] = {"parameter": str, "optional": bool}


_MIGRATIONS: dict[str, type | tuple[type, ...]] = {"folder": str, "schema": str}


@dataclass(frozen=True)
class SecretSpec:
    """Where one secret comes from: an SSM parameter, or the variable of the same name locally."""

    variable: str
    parameter: str
    optional: bool = False


@dataclass(frozen=True)
class TestsSpec:
    """What pytest runs."""

    __test__ = False

    paths: list[str] = field(default_factory=lambda: ["tests"])
    pytest_args: list[str] = field(default_factory=list)
    coverage: list[str] = field(default_factory=list)
    timeout: int = 300
    deadline: int = 3600  # seconds for the whole tests phase; then pytest and all it started are killed
    workers: int | str = 1  # pytest-xdist workers, each with its own share of every server; "auto": the cores
    isolation: str = "worker"  # one of ISOLATIONS


@dataclass(frozen=True)
class ServiceConfig:
    """A validated service config with the catalogue's settings merged in."""

    name: str
    directory: Path
    servers: dict[str, dict[str, Any]]
    migrations: Path | None
    tests: TestsSpec
    install: str
    secrets: list[SecretSpec]
    env: dict[str, str]
    migrations_schema: str = DEFAULT_MIGRATIONS_SCHEMA

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ServiceConfig:
        """The inverse of as_dict, for phases that read the config back from the state file."""
        return cls(
            name=data["name"],
            directory=Path(data["directory"]),
            servers=copy.deepcopy(data["servers"]),
            migrations=Path(data["migrations"]) if data["migrations"] else None,
            tests=TestsSpec(**data["tests"]),
            install=data["install"],
            secrets=[SecretSpec(**spec) for spec in data["secrets"]],
            env=dict(data["env"]),
            migrations_schema=data.get("migrations_schema", DEFAULT_MIGRATIONS_SCHEMA),
        )

    def as_dict(self) -> dict[str, Any]:
        """Plain data for Ansible and report.json (secret values are never part of a config)."""
        return {
            "name": self.name,
            "directory": str(self.directory),
            "servers": copy.deepcopy(self.servers),
            "migrations": str(self.migrations) if self.migrations else None,
            "tests": {
                "paths": list(self.tests.paths),
                "pytest_args": list(self.tests.pytest_args),
                "coverage": list(self.tests.coverage),
                "timeout": self.tests.timeout,
                "deadline": self.tests.deadline,
                "workers": self.tests.workers,
                "isolation": self.tests.isolation,
            },
            "install": self.install,
            "secrets": [
                {"variable": s.variable, "parameter": s.parameter, "optional": s.optional} for s in self.secrets
            ],
            "env": dict(self.env),
            "migrations_schema": self.migrations_schema,
        }


def _check_keys(
    data: Mapping[str, Any], schema: Mapping[str, type | tuple[type, ...]], where: str, errors: list[str]
) -> None:
    for key, value in data.items():
        if key not in schema:
            errors.append(f"unknown key '{where}{key}' (allowed: {', '.join(schema)})")
            continue
        expected = schema[key]
        # bool is an int subclass: a `timeout: true` is still wrong.
        if not isinstance(value, expected) or (isinstance(value, bool) and expected is int):
            errors.append(f"'{where}{key}' must be {type_name(expected)}, got {type(value).__name__}")


def _string_list(value: list[Any], where: str, errors: list[str]) -> list[str]:
    if not all(isinstance(item, str) for item in value):
        errors.append(f"'{where}' must be a list of strings")
        return []
    return list(value)


def _secrets(raw: object, errors: list[str]) -> list[SecretSpec]:
    specs: list[SecretSpec] = []
    if not isinstance(raw, dict):
        return specs
    for variable, spec in raw.items():
        where = f"secrets.{variable}"
        bad = bad_env_names([variable], "secrets")
        if bad:
            errors += bad
        elif isinstance(spec, str):
            specs.append(SecretSpec(variable, spec))
        elif isinstance(spec, dict):
            _check_keys(spec, _SECRET, f"{where}.", errors)
            if not isinstance(spec.get("parameter"), str):
                errors.append(f"'{where}.parameter' is required (the SSM parameter name)")
            else:
                specs.append(SecretSpec(variable, spec["parameter"], bool(spec.get("optional", False))))
        else:
            errors.append(f"'{where}' must be an SSM parameter name or a mapping with 'parameter'")
    return specs


def nearest_service_dir(start: Path) -> Path:
    """The service a command without --service means: the nearest testbed.yml in start or above it."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / CONFIG_NAME).is_file():
            return folder
    raise TestbedError(
        f"no {CONFIG_NAME} in {start} or any folder above it: run testbed in a service's folder "
        "or pass --service with the service's folder"
    )


def load_service_config(service_dir: Path | str, catalogue: Mapping[str, dict[str, Any]]) -> ServiceConfig:
    """Read and validate `<service_dir>/testbed.yml`; every problem is named in one line."""
    directory = Path(service_dir).resolve()
    path = directory / CONFIG_NAME
    if not path.is_file():
        raise TestbedError(
            f"no {CONFIG_NAME} in {directory}: create one (see README 'Config file reference') "
            "or pass --service with the service's folder"
        )
    import yaml  # noqa: PLC0415

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise TestbedError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from exc
    if not isinstance(raw, dict):
        raise TestbedError(f"{path}: must be a mapping of keys (name, servers, settings, ...)")

    errors: list[str] = []
    _check_keys(raw, _TOP_LEVEL, "", errors)
    name = raw.get("name", directory.name)
    if isinstance(name, str) and not SERVICE_NAME.fullmatch(name):
        errors.append(f"'name' must be letters, digits, '.', '_' or '-', got {name!r}")
    servers = parse_servers(raw, catalogue, errors) if isinstance(raw.get("servers", []), list) else {}

    tests_raw = raw.get("tests", {})
    tests = TestsSpec()
    if isinstance(tests_raw, dict):
        _check_keys(tests_raw, _TESTS, "tests.", errors)
        tests = TestsSpec(
            paths=_string_list(tests_raw.get("paths", ["tests"]), "tests.paths", errors)
            if isinstance(tests_raw.get("paths", []), list)
            else [],
            pytest_args=_string_list(tests_raw.get("pytest_args", []), "tests.pytest_args", errors)
            if isinstance(tests_raw.get("pytest_args", []), list)
            else [],
            coverage=_string_list(tests_raw.get("coverage", []), "tests.coverage", errors)
            if isinstance(tests_raw.get("coverage", []), list)
            else [],
            timeout=tests_raw["timeout"] if isinstance(tests_raw.get("timeout"), int) else 300,
            deadline=tests_raw["deadline"] if isinstance(tests_raw.get("deadline"), int) else 3600,
            workers=tests_raw.get("workers", 1) if isinstance(tests_raw.get("workers", 1), int | str) else 1,
            isolation=str(tests_raw.get("isolation", "worker")),
        )
        if tests.isolation not in ISOLATIONS:
            errors.append(f"'tests.isolation' must be one of {', '.join(ISOLATIONS)}, got {tests_raw['isolation']!r}")
        try:
            workers.count(tests.workers, "'tests.workers'")
        except TestbedError as exc:
            errors.append(str(exc))
        if tests.deadline < 1:
            errors.append(f"'tests.deadline' must be at least 1 second, got {tests.deadline}")
    install = raw.get("install", "auto")
    if isinstance(install, str) and not install.strip():
        errors.append(f"'install' must be one of {', '.join(INSTALL_MODES)} or a command")

    env: dict[str, str] = {}
    for key, value in (raw.get("env") or {}).items() if isinstance(raw.get("env"), dict) else ():
        bad = bad_env_names([key], "env")
        if bad:
            errors += bad
        elif not isinstance(value, str | int | float) or isinstance(value, bool):
            errors.append(f"'env.{key}' must be a string, got {type(value).__name__}")
        else:
            env[key] = str(value)
    secrets = _secrets(raw.get("secrets", {}), errors)
    clash = sorted(set(env) & {s.variable for s in secrets})
    if clash:
        errors.append(f"'{clash[0]}' is both in 'env' and in 'secrets'; keep it in one")

    migrations_dir, migrations_schema = _migrations(raw, directory, servers, errors)
    if errors:
        raise TestbedError(f"{path}: " + "; ".join(errors), ExitCode.CONFIG)
    return ServiceConfig(
        name=name,
        directory=directory,
        servers=servers,
        migrations=migrations_dir,
        tests=tests,
        install=install,
        secrets=secrets,
        env=env,
        migrations_schema=migrations_schema,
    )


def _migrations(
    raw: Mapping[str, Any], directory: Path, servers: Mapping[str, Any], errors: list[str]
) -> tuple[Path | None, str]:
    """`migrations: <folder>`, or `migrations: {folder: <folder>, schema: <bookkeeping schema>}`."""
    default_folder = "migrations" if (directory / "migrations").is_dir() else None
    value = raw.get("migrations", default_folder)
    schema = DEFAULT_MIGRATIONS_SCHEMA
    if isinstance(value, dict):
        _check_keys(value, _MIGRATIONS, "migrations.", errors)
        schema = value["schema"] if isinstance(value.get("schema"), str) else schema
        value = value.get("folder", default_folder)
        if not isinstance(value, str | None):
            value = None
        user = servers.get(registry.migrations_server(servers) or "", {}).get("user")
        if not _SCHEMA_NAME.fullmatch(schema) or schema.startswith("pg_"):
            errors.append(
                f"'migrations.schema' must be lowercase letters, digits and '_' (at most 63, not starting with"
                f" 'pg_'), got {schema!r}"
            )
        elif schema in ("public", user):
            errors.append(
                f"'migrations.schema' {schema!r} is on the service's search_path (\"$user\", public); "
                f"name another, e.g. {DEFAULT_MIGRATIONS_SCHEMA}"
            )
    folder = (directory / value) if isinstance(value, str) else None
    if folder is not None and not folder.is_dir():
        errors.append(f"'migrations' folder {folder} does not exist")
    if folder is not None and registry.migrations_server(servers) is None:
        errors.append(f"'migrations' needs {' or '.join(repr(k) for k in registry.migrations_kinds())} in 'servers'")
    return folder, schema
