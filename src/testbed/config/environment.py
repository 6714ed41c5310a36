"""What a service's tests see of a run's servers: the facts each server exposes (`{{ postgres.url }}`),
and the tests' environment and pytest arguments rendered from them (for each pytest-xdist worker with its own
facts, where it can be)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from testbed import servers as registry
from testbed.core.templates import render_all

if TYPE_CHECKING:
    from testbed.config.service import ServiceConfig


def connection_facts(servers: Mapping[str, Mapping[str, Any]], host: str = "127.0.0.1") -> dict[str, Any]:
    """What tests and templates see of each server: host, port, url, and what its kind adds."""
    return {name: registry.kind_of(name, settings).facts(settings, host) for name, settings in servers.items()}


def service_environment(config: ServiceConfig, facts: Mapping[str, Any]) -> dict[str, str]:
    """The non-secret environment of the service's tests: each server's standard variables, a declared
    server's own `env`, then the config's `env`."""
    # Only testbed's own variables: a service's conventions (e.g. TESTING) belong in its testbed.yml `env`.
    env: dict[str, str] = {}
    for name in facts:
        settings = config.servers.get(name, {})
        kind = registry.kind_of(name, settings)
        env |= kind.environment(facts[name])
        templates = kind.env_templates(settings)
        if templates:
            # A declared server's env sees every fact, and its own host, port and url at the top level.
            own = {**facts, **facts[name]}
            rendered = render_all({f"servers.{name}.env.{key}": value for key, value in templates.items()}, own)
            env |= {key: rendered[f"servers.{name}.env.{key}"] for key in templates}
    rendered = render_all({f"env.{key}": value for key, value in config.env.items()}, facts)
    env |= {key: rendered[f"env.{key}"] for key in config.env}
    return env


def pytest_arguments(config: ServiceConfig, facts: Mapping[str, Any]) -> list[str]:
    """The config's pytest arguments with provisioned facts filled in."""
    templates = {f"tests.pytest_args[{i}]": arg for i, arg in enumerate(config.tests.pytest_args)}
    return list(render_all(templates, facts).values())


def check_templates(config: ServiceConfig, facts: Mapping[str, Any]) -> None:
    """Render every templated key (env, tests.pytest_args) once, naming all their problems in one line."""
    templates = {f"env.{key}": value for key, value in config.env.items()}
    templates |= {f"tests.pytest_args[{i}]": arg for i, arg in enumerate(config.tests.pytest_args)}
    render_all(templates, facts)


#: pytest's options it reads before any plugin can act (the ini file and its overrides, the root folder, the
#: plugins to load): a pytest-xdist worker's own value there comes too late (testbed/xdist/testbed_workers.py).
EARLY_OPTIONS = ("-o", "--override-ini", "-c", "--config-file", "--rootdir", "-p")


def _early_option(args: list[str], index: int) -> str | None:
    """The early option `args[index]` is given to (`-o x={{ … }}`, `-ox=…`, `--override-ini=…`), or None."""
    arg = args[index]
    for option in EARLY_OPTIONS:
        attached = f"{option}=" if option.startswith("--") else option
        if arg.startswith(attached) and len(arg) > len(option):
            return option
    before = args[index - 1] if index else ""
    return before if before in EARLY_OPTIONS else None


def early_worker_templates(config: ServiceConfig, count: int) -> list[str]:
    """With several pytest-xdist workers, each `tests.pytest_args` template given to an option pytest reads
    before testbed's plugin can put a worker's own value in (EARLY_OPTIONS) that names a server the workers
    do not share: every worker would get gw0's. One problem per template; none for one worker."""
    args = config.tests.pytest_args
    if count < 2 or not any("{" in arg for arg in args):
        return []
    from jinja2 import meta  # noqa: PLC0415
    from jinja2.exceptions import TemplateSyntaxError  # noqa: PLC0415
    from jinja2.sandbox import SandboxedEnvironment  # noqa: PLC0415

    jinja = SandboxedEnvironment(autoescape=False)
    problems = []
    for index, arg in enumerate(args):
        option = _early_option(args, index) if "{" in arg else None
        if option is None:
            continue
        try:
            names = meta.find_undeclared_variables(jinja.parse(arg))
        except TemplateSyntaxError:
            continue  # check_templates names it
        own = sorted(
            name
            for name in names
            if name in config.servers
            and registry.kind_of(name, config.servers[name]).worker_share(config.servers[name]) != "shared"
        )
        if own:
            problems.append(
                f"'tests.pytest_args[{index}]' {arg!r} is given to {option}, which pytest reads before testbed can "
                f"give each of {count} workers its own {', '.join(own)}: pass it as an option of the suite's "
                "own (pytest_addoption) or through env, or run one worker"
            )
    return problems
