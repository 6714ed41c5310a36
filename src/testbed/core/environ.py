"""Environment variables: which names the tests' environment may hold, and what of testbed's own environment
is never passed on to the processes it starts (the tests, the servers)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

# A name the tests' environment may hold (`env`, a declared server's `env`, `secrets`): anything else breaks the
# environment pytest starts with, or `testbed env`'s export lines.
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Ansible's, ansible-runner's (AWX_*, RUNNER_*), AWS's credentials, testbed's own settings, and the xdist worker
# identity of a suite that runs testbed (a service's workers would take it for theirs).
NOT_PASSED_ON = ("ANSIBLE_", "AWS_", "TESTBED_", "AWX_", "RUNNER_", "PYTEST_XDIST_")


def bad_env_names(names: Iterable[object], where: str) -> list[str]:
    """A problem for each of `names` (the keys of testbed.yml's `where`) that is not an environment variable's."""
    problems = []
    for name in names:
        if not isinstance(name, str) or not ENV_NAME.fullmatch(name):
            shown = name if isinstance(name, str) and name.isprintable() else repr(name)  # one line, always
            problems.append(f"'{where}.{shown}' is not a valid environment variable name")
    return problems


def passed_on(environ: Mapping[str, str]) -> dict[str, str]:
    """What of `environ` a process testbed starts inherits."""
    return {key: value for key, value in environ.items() if not key.startswith(NOT_PASSED_ON)}


def is_github_actions(environ: Mapping[str, str] | None = None) -> bool:
    """True only inside a GitHub Actions job."""
    env = os.environ if environ is None else environ
    return env.get("GITHUB_ACTIONS") == "true"
