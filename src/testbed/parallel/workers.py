"""Parallel tests on one machine: pytest-xdist workers, each with its own share of every server, and the
dev loop's reset to the freshly migrated state.

Each server kind says how workers share it (ServerKind.worker_share): PostgreSQL logically (a database per
worker, cloned from the migrated one), the Redis slot and NATS by an instance per worker (a service that
reads only DRAGONFLY_HOST/PORT or NATS_URL cannot be pointed at a database index or an account otherwise),
a declared server by instance unless its declaration says `workers: shared`. Instances are ordinary servers
of the run (`<name>-gw1`, ...), brought up, probed, logged and torn down with the others; worker gw0 uses
the run's own servers. The service sees its share through the variables it reads anyway and through its
pytest arguments: the plugin (parallel/plugin/testbed_workers.py) sets each worker's variables, and puts its
rendering of `tests.pytest_args` in place of the controller's, before the suite's conftest is imported."""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from testbed.config.workers import instance_name, primaries, worker_name
from testbed.core.concurrency import each_at_once
from testbed.core.errors import ExitCode, TestbedError
from testbed.servers import WORKER_OF, kind_of, migrations_server

if TYPE_CHECKING:
    from testbed.run.record import RunRecord

PLUGIN = "testbed_workers"  # the module in PLUGIN_DIR that pytest loads with -p


PLUGIN_DIR = Path(__file__).parent / "plugin"  # on the tests' PYTHONPATH: the plugin alone, not the package


SHARES_VARIABLE = "TESTBED_WORKER_SHARES"  # the plugin reads the shares file named here


DURATIONS_VARIABLE = "TESTBED_DURATIONS"  # and orders the tests by the durations file named here


ARGUMENTS_KEY = "pytest_args"  # in the shares file, beside the workers' names: each worker's pytest arguments


def with_instances(servers: Mapping[str, Mapping[str, Any]], workers: int) -> dict[str, dict[str, Any]]:
    """`servers` plus, for each that workers share by instance, a server for each worker after the first.
    Existing entries are kept as they are (a run grown from 2 to 3 workers keeps its gw1)."""
    expanded = {name: dict(settings) for name, settings in servers.items()}
    for name, settings in primaries(servers).items():
        if kind_of(name, settings).worker_share(settings) != "instance":
            continue
        for index in range(1, workers):
            instance = instance_name(name, index)
            if instance in expanded:
                continue
            expanded[instance] = copy.deepcopy(dict(settings)) | {
                WORKER_OF: name,
                "title": f"{settings['title']} ({worker_name(index)})",
            }
    return expanded


def missing_instances(servers: Mapping[str, Mapping[str, Any]], workers: int) -> list[str]:
    """The instances `workers` workers need that the run does not have."""
    return [name for name in with_instances(servers, workers) if name not in servers]


def check_instances(servers: Mapping[str, Mapping[str, Any]], count: int, up_for: int) -> None:
    """Refuse `count` workers on an environment brought up for fewer (exit 10), naming the fix."""
    if missing_instances(servers, count):
        raise TestbedError(
            f"--workers {count}: the environment is up for {up_for}; "
            f"`testbed up --workers {count}` starts the servers {count} workers need",
            ExitCode.CONFIG,
        )


def worker_facts(servers: Mapping[str, Mapping[str, Any]], facts: Mapping[str, Any], index: int) -> dict[str, Any]:
    """The facts worker gw<index> connects with, under the run's own names (`postgres`, `nats`, ...),
    creating its logical shares (a cloned database) as it goes."""
    shares: dict[str, Any] = {}
    for name, settings in primaries(servers).items():
        kind = kind_of(name, settings)
        share = kind.worker_share(settings)
        if share == "instance":
            shares[name] = facts[instance_name(name, index)]
        elif share == "logical":
            shares[name] = kind.isolate(settings, facts[name], worker_name(index))
        else:
            shares[name] = facts[name]
    return shares


def write_shares(
    path: Path, shares: Mapping[str, Mapping[str, str]], arguments: Mapping[str, list[str]] | None = None
) -> Path:
    """Each worker's variables that differ from the run's, and each worker's rendering of tests.pytest_args
    (gw0's, the controller's, first) when they differ, in a 0600 file (a URL may hold a password)."""
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        json.dump({**shares, ARGUMENTS_KEY: arguments} if arguments else dict(shares), file)
    return path


def reset(servers: Mapping[str, Mapping[str, Any]], facts: Mapping[str, Any]) -> float:
    """Every server of the run back to its freshly migrated state, all at once; returns the seconds taken."""
    started = time.monotonic()
    each_at_once(lambda name: kind_of(name, servers[name]).reset(servers[name], facts[name]), servers)
    return time.monotonic() - started


def kept_state(record: RunRecord) -> tuple[dict[str, Any] | None, bool]:
    """The fact reaching the migrated state a dev-loop run keeps for its reset (None when none is there), and
    whether that state is lost: kept once and gone since (a test dropped it), so a reset has nothing to go
    back to and the state must be migrated again."""
    target = migrations_server(record.servers)
    if not record.dev_loop or target is None or target not in record.facts:
        return None, False
    fact = kind_of(target, record.servers[target]).kept(record.servers[target], record.facts[target])
    return fact, fact is None and record.kept_at is not None


def snapshot(servers: Mapping[str, Mapping[str, Any]], facts: Mapping[str, Any]) -> None:
    """Keep each server's freshly migrated state for `reset` (the dev loop, after migrations)."""
    for name, settings in primaries(servers).items():
        kind_of(name, settings).snapshot(settings, facts[name])
