"""The hand-over before each test (tests.isolation: test) and the fixtures' fresh servers, served to the pytest
plugin over a Unix socket in the run's runtime folder by the process that runs pytest (the tests phase). Here,
not in the suite's processes: the servers' credentials, psycopg, redis, nats-py and the pool's threads stay
out of the service's environment (where testbed is not installed), and one pool serves every worker.

One request a line, one JSON answer a line; `worker` is pytest-xdist's name (gw0 without workers):
    reset <worker>                 the worker's share of every server back to the migrated state
    failed <worker> <test id>      keep the worker's database as this test leaves it (--keep-failed)
    database <worker>              {"url", "name", ...}: a fresh database of the test's own (testbed_database)
    release <name>                 that database's test is over
    clean <worker> <fixture>       the server that fixture hands out (testbed_redis, testbed_nats), reset now
Every answer is {"ok": ...} or {"error": one line}; after the first error every request gets it: no test runs
on a half-reset server, and the tests phase fails with that line (exit 12)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from testbed.core import unix_socket
from testbed.core.concurrency import each_at_once
from testbed.core.errors import ExitCode, TestbedError
from testbed.core.paths import HANDOVER_NAME
from testbed.run.record import RunRecord
from testbed.run.store import RunState
from testbed.servers import kind_of
from testbed.servers.base_reset import TestReset

HANDOVER_VARIABLE = "TESTBED_HANDOVER"  # the plugin's socket; unset: nothing to ask
ISOLATION_VARIABLE = "TESTBED_ISOLATION"  # `test`: the plugin asks for a reset before each test
KEEP_FAILED_VARIABLE = "TESTBED_KEEP_FAILED"  # "1": the plugin reports each failing test


class Handover:
    """Listens at once (its path goes into pytest's environment); `start` makes each server's TestReset once the
    servers are ready (in the gate's thread, before any test); `close` gives everything back."""

    def __init__(self, runtime_dir: Path, isolation: str, *, keep_failed: bool) -> None:
        self.path = runtime_dir / HANDOVER_NAME
        self.isolation = isolation
        self.keep_failed = keep_failed
        self.kept: list[str] = []  # the failing tests' databases, kept
        self.error: str | None = None
        self._resets: dict[str, TestReset] = {}
        self._shares: dict[str, dict[str, Mapping[str, Any]]] = {}  # worker -> server -> its fact
        self._make: dict[str, Callable[..., TestReset | None]] = {}
        self._servers: Mapping[str, Mapping[str, Any]] = {}
        self._untouched: set[str] = set()  # workers whose share is as prepare left it: the first test needs none
        self._failed: dict[str, str] = {}  # worker -> the failing test whose database is kept at its next reset
        self._lock = threading.Lock()
        self._started = threading.Event()
        self._closing = threading.Event()
        self._listener = unix_socket.listen(self.path, 64)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def start(
        self,
        servers: Mapping[str, Mapping[str, Any]],
        own_facts: Mapping[str, Any],
        shares: Mapping[str, Mapping[str, Mapping[str, Any]]],
    ) -> None:
        """Each worker's `shares` (server -> fact; gw0's are the run's own); with isolation `test`, each
        server's TestReset now (the pool starts filling), else on a fixture's first request."""
        self._servers = servers
        self._shares = {worker: dict(share) for worker, share in shares.items()}
        self._untouched = set(shares)
        workers = len(shares)
        for name in own_facts:

            def make(name: str = name, *, eager: bool = False) -> TestReset | None:
                return kind_of(name, servers[name]).test_reset(servers[name], own_facts[name], workers, eager=eager)

            self._make[name] = make
        try:
            if self.isolation == "test":
                each_at_once(self._prepare, list(self._make))
        finally:
            self._started.set()

    def _prepare(self, name: str) -> None:
        self._reset_of(name, eager=True)

    def _reset_of(self, name: str, *, eager: bool = False) -> TestReset | None:
        with self._lock:
            if name not in self._resets:
                made = self._make[name](eager=eager)
                if made is None:
                    return None
                self._resets[name] = made
            return self._resets[name]

    # -- requests ---------------------------------------------------------------------------------------------

    def _serve(self) -> None:
        for connection in unix_socket.connections(self._listener, self._closing):
            threading.Thread(target=self._converse, args=(connection,), daemon=True).start()

    def _converse(self, connection: socket.socket) -> None:
        with connection, contextlib.suppress(OSError), connection.makefile("rwb") as stream:
            for line in stream:
                stream.write((json.dumps(self.answer(line.decode(errors="replace").split())) + "\n").encode())
                stream.flush()

    def answer(self, words: list[str]) -> dict[str, Any]:
        """One request's answer (see the module's docstring)."""
        self._started.wait()
        if self.error is None:
            try:
                return {"ok": self._act(words)}
            except TestbedError as exc:
                if exc.exit_code == ExitCode.CONFIG:  # a fixture asked for what this run cannot give: its test fails
                    return {"error": str(exc)}
                with self._lock:
                    self.error = self.error or str(exc)
            except Exception as exc:  # any failure must reach the test as an answer, never hang it
                with self._lock:
                    self.error = self.error or f"per-test reset failed: {type(exc).__name__}: {exc}"
        return {"error": self.error}

    def _act(self, words: list[str]) -> object:
        verb, *rest = words or [""]
        if verb == "reset" and len(rest) == 1:
            self._reset_worker(rest[0])
            return True
        if verb == "failed" and len(rest) == 2 and rest[0] in self._shares:
            if self.keep_failed:
                self._failed.setdefault(rest[0], rest[1])
            return True
        if verb == "database" and len(rest) == 1:
            return self._fresh_database()
        if verb == "release" and len(rest) == 1:
            reset = self._postgres()
            if reset is not None:
                reset.release(rest[0])
            return True
        if verb == "clean" and len(rest) == 2:
            name = self._served_by(rest[1])
            if name is None:  # the fixture's test fails; the run goes on
                raise TestbedError(f"{rest[1][:40]}: the service has no such server in 'servers'", ExitCode.CONFIG)
            reset = self._reset_of(name)
            if reset is not None:
                reset.reset(self._share(rest[0])[name])
            return dict(self._share(rest[0])[name]).get("url")
        raise TestbedError(f"per-test reset: unknown request {' '.join(words)[:80]!r}", ExitCode.INTERNAL_ERROR)

    def _share(self, worker: str) -> dict[str, Mapping[str, Any]]:
        if worker not in self._shares:
            raise TestbedError(f"per-test reset: no worker {worker[:20]!r} in this run", ExitCode.INTERNAL_ERROR)
        return self._shares[worker]

    def _reset_worker(self, worker: str) -> None:
        share = self._share(worker)
        with self._lock:
            if worker in self._untouched:  # its first test: the share is as fresh as prepare made it
                self._untouched.discard(worker)
                return
            failed = self._failed.pop(worker, None)
        # Every server of the share at once: the test waits for the slowest reset, not for their sum.
        each_at_once(lambda name: self._reset_one(name, share[name], failed), list(share))

    def _reset_one(self, name: str, fact: Mapping[str, Any], failed: str | None) -> None:
        try:
            reset = self._reset_of(name)
            if reset is None:
                return
            kept = reset.keep(fact, failed) if failed is not None else None
            if kept is not None:
                with self._lock:
                    self.kept.append(kept)
            else:
                reset.reset(fact)
            problem = reset.failure()
        except TestbedError:
            raise
        except Exception as exc:  # in a thread of its own: it must come back as the one error, never be lost
            raise TestbedError(
                f"per-test reset of {name} failed: {type(exc).__name__}: {exc}", ExitCode.PROVISIONING
            ) from exc
        if problem is not None:
            raise TestbedError(problem, ExitCode.PROVISIONING)

    def _served_by(self, fixture: str) -> str | None:
        """The run's server that `fixture` (testbed_redis, testbed_nats) hands out, by its kind."""
        return next((name for name in self._make if kind_of(name, self._servers[name]).fixture == fixture), None)

    def _postgres(self) -> TestReset | None:
        name = next((name for name in self._make if kind_of(name, self._servers[name]).runs_migrations), None)
        return self._reset_of(name) if name is not None else None

    def _fresh_database(self) -> dict[str, Any]:
        reset = self._postgres()
        copy = reset.fresh_copy() if reset is not None else None
        if copy is None:
            raise TestbedError("testbed_database: the service has no PostgreSQL in 'servers'", ExitCode.CONFIG)
        return {key: copy[key] for key in ("url", "database", "host", "port", "user", "password")}

    def close(self) -> None:
        """Keep the databases of tests that failed last on their worker, give back every pool and connection, and
        stop listening. Raises the first error a request met."""
        unix_socket.stop(self._listener, self.path, self._closing)
        self._thread.join(timeout=2)
        for worker, test in list(self._failed.items()):
            with contextlib.suppress(TestbedError):
                for name, fact in self._share(worker).items():
                    reset = self._resets.get(name)
                    kept = reset.keep(fact, test) if reset is not None else None
                    if kept is not None:
                        self.kept.append(kept)
        each_at_once(lambda reset: reset.close(), list(self._resets.values()))
        if self.error is not None:
            raise TestbedError(self.error, ExitCode.PROVISIONING)


def give_back(record: RunRecord) -> None:
    """After the tests phase was killed (an interrupt): what each server's per-test reset left, removed."""
    for name, fact in record.own_facts().items():
        kind_of(name, record.servers[name]).give_back(record.servers[name], fact)


def keep_databases(state: RunState, names: list[str]) -> None:
    """Note the databases kept for debugging in the run's state file, where `testbed env` finds them."""
    if names:
        with state.update() as current:
            current["kept_databases"] = sorted({*current.get("kept_databases", []), *names})
