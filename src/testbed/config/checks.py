"""What preflight can know about a service's tests before any server starts: the templated keys render (a
declared server's commands too), every `tests.paths` entry exists, the tests' environment fits the kernel's
exec limits, the migration files are well formed, and with pytest-xdist workers no template of a server
they do not share goes to an option pytest reads before each worker's own value can be put in. Each of
these used to surface only after the servers were up (exits 3, 4, 13), or not at all (workers colliding)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from testbed import servers as registry
from testbed.config.environment import (
    check_templates,
    connection_facts,
    early_worker_templates,
    pytest_arguments,
    service_environment,
)
from testbed.core.environ import passed_on
from testbed.core.errors import ExitCode, TestbedError
from testbed.migrations.files import MigrationError, discover
from testbed.servers.declared import Declared

if TYPE_CHECKING:
    from testbed.config.service import ServiceConfig

#: The kernel's limit for one argument or environment string (32 pages, include/uapi/linux/binfmts.h).
MAX_ARG_STRLEN = 32 * 4096
#: What the tests' command line adds that the config does not say: interpreter, junit and coverage paths.
_ARGV_ALLOWANCE = 8192
#: Variables run_tests adds itself (COVERAGE_FILE, PYTHONDONTWRITEBYTECODE) and secrets read from SSM.
_ENV_ALLOWANCE = 4096


def check_before_start(config: ServiceConfig, environ: Mapping[str, str] | None = None, worker_count: int = 1) -> None:
    """Every problem found, in one TestbedError (exit 10); nothing is started or written. `worker_count`: the
    pytest-xdist workers the tests will run on."""
    environ = os.environ if environ is None else environ
    facts = connection_facts(config.servers)
    problems: list[str] = []
    try:
        check_templates(config, facts)
    except TestbedError as exc:
        problems.append(str(exc))
    else:
        problems += exec_limit_problems(
            service_environment(config, facts), config.env, pytest_arguments(config, facts), environ
        )
        problems += early_worker_templates(config, worker_count)
    problems += declared_template_problems(config)
    problems += missing_test_paths(config)
    problems += migration_problems(config)
    if problems:
        raise TestbedError("; ".join(problems), ExitCode.CONFIG)


def declared_template_problems(config: ServiceConfig) -> list[str]:
    """The command templates of the servers a service declares (native, container, ready), each rendered with
    the names it gets when it runs: an unknown one used to surface only at launch."""
    problems = []
    for name, settings in config.servers.items():
        kind = registry.kind_of(name, settings)
        if isinstance(kind, Declared):
            problems += kind.template_problems(settings)
    return problems


def missing_test_paths(config: ServiceConfig) -> list[str]:
    """`tests.paths` entries (files, folders, or `file::node` ids) that are not there."""
    missing = []
    for entry in config.tests.paths:
        if entry.startswith("-"):
            continue  # an option someone put among the paths: pytest judges it
        path = config.directory / entry.split("::", 1)[0]
        if not path.exists():
            missing.append(entry)
    if not missing:
        return []
    names = ", ".join(repr(m) for m in missing)
    return [f"'tests.paths' {names} not found in {config.directory}: fix the path or create it"]


def exec_limit_problems(
    service_env: Mapping[str, str], configured: Mapping[str, str], pytest_args: list[str], environ: Mapping[str, str]
) -> list[str]:
    """Whether pytest can be exec'd with this environment: each string under MAX_ARG_STRLEN, all of them
    (plus their pointers) under ARG_MAX. A rendered `env` value too big fails exec with E2BIG otherwise."""
    env = passed_on(environ) | dict(service_env)
    sizes: dict[str, int] = {}
    for key, value in env.items():
        where = f"env.{key}" if key in configured else f"${key} (from the environment)"
        sizes[where] = len(f"{key}={value}".encode()) + 1
    for index, arg in enumerate(pytest_args):
        sizes[f"tests.pytest_args[{index}]"] = len(arg.encode()) + 1
    problems = [
        f"{where} is {size} bytes, over the kernel's {MAX_ARG_STRLEN}-byte limit for one exec string "
        "(MAX_ARG_STRLEN): pass it in a file instead"
        for where, size in sizes.items()
        if size > MAX_ARG_STRLEN
    ]
    pointer = 8
    total = sum(sizes.values()) + pointer * (len(sizes) + 2) + _ARGV_ALLOWANCE + _ENV_ALLOWANCE
    limit = os.sysconf("SC_ARG_MAX")
    if total > limit:
        largest = max(sizes, key=lambda where: sizes[where])
        problems.append(
            f"the tests' environment and arguments come to about {total} bytes, over the exec limit of {limit}"
            f" (getconf ARG_MAX; the largest is {largest}, {sizes[largest]} bytes): pass big values in files"
        )
    return problems


def migration_problems(config: ServiceConfig) -> list[str]:
    """The migration engine's own discovery: numbering, names and encoding, checked before any server."""
    if config.migrations is None:
        return []
    try:
        discover(config.migrations)
    except MigrationError as exc:
        return [f"migrations: {exc}"]
    return []
