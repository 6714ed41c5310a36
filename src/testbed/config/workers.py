"""How many pytest-xdist workers a run asks for (a count, or `auto`: the CPUs testbed may use), and the
names of their instances of a server (`nats-gw1`)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from testbed.core.errors import ExitCode, TestbedError
from testbed.servers import WORKER_OF

MAX_WORKERS = 64


def cpus() -> int:
    """The CPUs this process may run on: its affinity (a container's cpuset, taskset), not the machine's count."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def count(value: object, where: str) -> int:
    """A worker count from `N` or `auto` (the CPUs, see cpus()); a bad one names `where` (exit 10). `auto`
    starts no more workers than the tests collected: pytest_run counts them before pytest starts."""
    if value == "auto":
        return cpus()
    number = int(value) if isinstance(value, str) and value.isdigit() else value
    if isinstance(number, int) and not isinstance(number, bool) and 1 <= number <= MAX_WORKERS:
        return number
    raise TestbedError(f"{where} must be a number from 1 to {MAX_WORKERS}, or auto; got {value!r}", ExitCode.CONFIG)


def crowding(workers: int) -> list[str]:
    """A notice when more workers than CPUs were asked for: they take turns on the CPUs, each with servers of
    its own, so the run is slower and bigger than with fewer, and nothing else would say so."""
    available = cpus()
    if workers <= available:
        return []
    return [
        f"Workers: {workers} pytest workers on {available} CPU{'s' if available > 1 else ''} take turns, each "
        f"with servers of its own; "
        f"--workers auto starts one per CPU (never more than the tests)"
    ]


def worker_name(index: int) -> str:
    return f"gw{index}"  # pytest-xdist's own names


def instance_name(server: str, index: int) -> str:
    return f"{server}-{worker_name(index)}"


def instance_names(servers: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Every name a pytest worker's instance of one of `servers` may take -> (that server, the worker)."""
    return {instance_name(server, i): (server, worker_name(i)) for server in servers for i in range(1, MAX_WORKERS)}


def primaries(servers: Mapping[str, Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The service's own servers, without the instances workers use."""
    return {name: settings for name, settings in servers.items() if not settings.get(WORKER_OF)}
