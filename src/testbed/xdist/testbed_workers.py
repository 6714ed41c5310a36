"""The pytest plugin testbed loads into the service's tests (`-p testbed_workers`). At import, before the
service's conftest: it waits at testbed's gate until the dev loop's reset (and each worker's database) is
ready (testbed.reset_gate), then, in a pytest-xdist worker gwN, takes that worker's own share of every
server (its database, its Redis, its NATS) through the very variables the service reads anyway. With
durations recorded by earlier runs, each worker collects the tests in a balanced, longest-first order.
Standard library and pytest only: it runs in the service's environment, where testbed is not installed."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Generator
from pathlib import Path

import pytest

GATE_VARIABLE = "TESTBED_RESET_GATE"
SHARES_VARIABLE = "TESTBED_WORKER_SHARES"
DURATIONS_VARIABLE = "TESTBED_DURATIONS"  # pytest-split's durations file, test id -> seconds


def _wait_at_gate() -> None:
    # Removed once passed: the xdist workers the controller starts later inherit its environment without it.
    gate = os.environ.pop(GATE_VARIABLE, None)
    if not gate:
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.connect(gate)
        answer = connection.makefile("r", encoding="utf-8").readline().strip()
    if answer != "ok":
        raise SystemExit(f"testbed: the servers are not ready for the tests: {answer or 'testbed went away'}")


def _take_share() -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # set by xdist before the worker imports any plugin
    path = os.environ.get(SHARES_VARIABLE)
    if not worker or not path:
        return
    shares: dict[str, dict[str, str]] = json.loads(Path(path).read_text(encoding="utf-8"))
    os.environ.update(shares.get(worker, {}))


def balanced_order(ids: list[str], durations: dict[str, float], workers: int) -> list[int]:
    """The indices of `ids` in the order pytest-xdist's worksteal scheduler should see them. It hands each
    worker a contiguous chunk (what is left // the workers left) and later steals from the tail of the
    longest queue. So each chunk gets an equal share of the known time (the longest test first into the
    lightest chunk with room) and runs longest first: what is left to steal at the end is short, and no
    long test starts last. A test with no recorded duration weighs the average; none known: unchanged."""
    known = [durations[name] for name in ids if name in durations]
    if not known or workers < 2:
        return list(range(len(ids)))
    average = sum(known) / len(known)
    weight = [durations.get(name, average) for name in ids]
    sizes = []
    left = len(ids)
    for worker in range(workers):
        sizes.append(left // (workers - worker))
        left -= sizes[-1]
    chunks: list[list[int]] = [[] for _ in sizes]
    loads = [0.0] * workers
    for index in sorted(range(len(ids)), key=lambda i: (-weight[i], i)):
        lightest = min((c for c in range(workers) if len(chunks[c]) < sizes[c]), key=lambda c: (loads[c], c))
        chunks[lightest].append(index)
        loads[lightest] += weight[index]
    return [index for chunk in chunks for index in chunk]


def _read_durations(path: str) -> dict[str, float]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # the order is only an optimisation: no usable file, collection order
    if not isinstance(data, dict):
        return {}
    return {str(k): float(v) for k, v in data.items() if isinstance(v, int | float) and not isinstance(v, bool)}


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> Generator[None, None, None]:
    # A wrapper: after every other plugin (pytest-split's shard selection, -k, markers) has chosen the items.
    # Every worker computes the same order from the same file, as xdist requires of their collections.
    yield
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    path = os.environ.get(DURATIONS_VARIABLE)
    shuffled = config.pluginmanager.hasplugin("randomly") and config.getoption("randomly_reorganize", False)
    if os.environ.get("PYTEST_XDIST_WORKER") and workers > 1 and path and not shuffled:
        order = balanced_order([item.nodeid for item in items], _read_durations(path), workers)
        items[:] = [items[index] for index in order]


_wait_at_gate()  # at import: `-p` plugins are imported before any conftest
_take_share()
