"""The pytest plugin testbed loads into the service's tests (`-p testbed_workers`). At import, before the
service's conftest: it waits at testbed's gate until the dev loop's reset (and each worker's database) is
ready (testbed.parallel.reset_gate), then, in a pytest-xdist worker gwN, takes that worker's own share of every
server (its database, its Redis, its NATS) through the very variables the service reads anyway, and through
its own rendering of `tests.pytest_args`, put in place of the controller's before the options are parsed.
With durations recorded by earlier runs, each worker collects the tests in a balanced, longest-first order.
With tests.isolation: test it asks testbed, before each test, to bring the worker's servers back to the migrated
state (testbed.parallel.handover), and it serves the fixtures testbed_database, testbed_redis and testbed_nats.
Standard library and pytest only: it runs in the service's environment, where testbed is not installed
(testbed renders every worker's values into the shares file; nothing is rendered here)."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import socket
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

GATE_VARIABLE = "TESTBED_RESET_GATE"
SHARES_VARIABLE = "TESTBED_WORKER_SHARES"
DURATIONS_VARIABLE = "TESTBED_DURATIONS"  # pytest-split's durations file, test id -> seconds
ARGUMENTS_KEY = "pytest_args"  # in the shares file: each worker's rendering of tests.pytest_args, gw0's first
HANDOVER_VARIABLE = "TESTBED_HANDOVER"  # testbed's per-test reset (testbed.parallel.handover): its socket
ISOLATION_VARIABLE = "TESTBED_ISOLATION"  # `test`: ask for a reset before each test
KEEP_FAILED_VARIABLE = "TESTBED_KEEP_FAILED"  # "1": report each failing test, whose database testbed keeps

_arguments: dict[str, list[str]] = {}  # the shares file's ARGUMENTS_KEY, read at import


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
    shares = json.loads(Path(path).read_text(encoding="utf-8"))
    os.environ.update(shares.get(worker, {}))
    _arguments.update(shares.get(ARGUMENTS_KEY, {}))


def own_arguments(args: list[str], worker: str, arguments: dict[str, list[str]]) -> bool:
    """Put `worker`'s rendering of tests.pytest_args in place of gw0's (the controller's, which pytest-xdist
    passes every worker) in `args`, in place; False when they are the same. Every run of gw0's list is
    replaced: PYTEST_ADDOPTS or the ini's addopts may repeat it before the command line, and the last wins."""
    theirs, mine = arguments.get("gw0", []), arguments.get(worker)
    if mine is None or mine == theirs or not theirs:
        return False
    found, start = False, 0
    while start <= len(args) - len(theirs):
        if args[start : start + len(theirs)] == theirs:
            args[start : start + len(theirs)] = mine
            found, start = True, start + len(mine)
        else:
            start += 1
    if not found:  # stop before the suite's code talks to gw0's servers; pytest-xdist names the worker down
        raise pytest.UsageError(f"testbed: worker {worker} did not get tests.pytest_args from pytest-xdist")
    return True


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> Generator[None, None, None]:
    # Before any conftest is imported, and before pytest parses the options for good (Config.parse reads this
    # very list next): the suite's conftest and plugins see only this worker's values. The early parse that
    # plugins may read in this hook is redone the way pytest does it, over what it already holds.
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker and own_arguments(args, worker, _arguments):
        early_config.known_args_namespace = parser.parse_known_args(
            args, namespace=copy.copy(early_config.known_args_namespace)
        )
    return (yield)


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


class _Handover:
    """This process's line to testbed's per-test reset: one connection, kept, one request at a time."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stream: Any = None

    def ask(self, *words: str) -> Any:  # noqa: ANN401 - the JSON answer's "ok" value
        if self._stream is None:
            connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            connection.connect(self.path)
            self._stream = connection.makefile("rwb")
        self._stream.write((" ".join(words) + "\n").encode())
        self._stream.flush()
        line = self._stream.readline()
        answer = json.loads(line) if line else {"error": "testbed went away"}
        if "error" in answer:
            raise _HandoverError(str(answer["error"]))
        return answer["ok"]


class _HandoverError(Exception):
    pass


_handover = _Handover(os.environ[HANDOVER_VARIABLE]) if os.environ.get(HANDOVER_VARIABLE) else None


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "gw0")


def _stop(item: pytest.Item, problem: str) -> None:
    # No test runs on a half-reset server: this one errors in its setup, before any fixture, and the session
    # stops (pytest.exit in an xdist worker would crash it); testbed fails the run with the same line.
    item.session.shouldstop = f"testbed: {problem}"
    pytest.fail(f"testbed: {problem}", pytrace=False)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # Before every fixture of the test, the session's included: each test starts from the migrated state.
    if _handover is None or os.environ.get(ISOLATION_VARIABLE) != "test":
        return
    try:
        _handover.ask("reset", _worker())
    except (OSError, _HandoverError) as exc:
        _stop(item, str(exc))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    if _handover is not None and report.failed and os.environ.get(KEEP_FAILED_VARIABLE) == "1":
        # One word: the test's name without spaces (testbed names the kept database after it). A problem here is
        # named by the next reset.
        with contextlib.suppress(OSError, _HandoverError):
            _handover.ask("failed", _worker(), re.sub(r"\s+", "_", item.name) or "test")
    return report


@dataclass(frozen=True)
class TestbedDatabase:
    """A fresh database of one test's own, cloned from the migrated state (testbed_database)."""

    __test__ = False
    url: str
    database: str
    host: str
    port: int
    user: str
    password: str


def _ask_for_fixture(*words: str) -> Any:  # noqa: ANN401 - the answer's "ok" value
    if _handover is None:
        pytest.fail("testbed's fixtures need the tests to run under testbed (testbed run, testbed test)", pytrace=False)
    try:
        return _handover.ask(*words)
    except (OSError, _HandoverError) as exc:
        pytest.fail(f"testbed: {exc}", pytrace=False)


@pytest.fixture
def testbed_database() -> Iterator[TestbedDatabase]:
    """A fresh PostgreSQL database of this test's own, from testbed's pool of clones of the migrated state; nothing
    of the worker's is renamed, so connections held across tests stay. Dropped after the test."""
    answer = _ask_for_fixture("database", _worker())
    database = TestbedDatabase(**answer)
    yield database
    _ask_for_fixture("release", database.database)


@pytest.fixture
def testbed_redis() -> str:
    """The worker's Redis slot (the `dragonfly` server), emptied now: its URL."""
    return str(_ask_for_fixture("clean", _worker(), "testbed_redis"))


@pytest.fixture
def testbed_nats() -> str:
    """The worker's NATS, with every JetStream stream deleted now: its URL."""
    return str(_ask_for_fixture("clean", _worker(), "testbed_nats"))


_wait_at_gate()  # at import: `-p` plugins are imported before any conftest
_take_share()
