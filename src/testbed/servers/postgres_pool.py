"""PostgreSQL's per-test reset (tests.isolation: test): a pool of ready clones of the migrated template,
filled in the background, and a swap before each test that puts one in place of the worker's database by two
renames in one transaction (0.5 ms, against 20-90 ms for a clone and 5-100 ms for a DROP, which forces a
checkpoint and waits in 100 ms steps for sessions to go). The database a test left is dropped off the
critical path. The template (`<database>_testbed_fresh`, the dev loop's kept state) is locked while the tests
run (IS_TEMPLATE, no connections), so nothing a test does reaches it."""

from __future__ import annotations

import contextlib
import itertools
import queue
import re
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from testbed.core.errors import ExitCode, TestbedError
from testbed.servers.base_reset import TestReset
from testbed.servers.postgres_admin import (
    CLONE_STRATEGY,
    admin_connection,
    exists,
    first_line,
    fresh_name,
    identifier,
    lock_template,
)

if TYPE_CHECKING:
    import psycopg

POOL, TRASH, COPY, FAILED = "_testbed_pool_", "_testbed_trash_", "_testbed_copy_", "_testbed_failed_"
PER_WORKER = 2  # ready clones per worker: a test of 50 ms or more finds one waiting (benchmarks/per_test.py)
FILLERS = 2  # clones made at once: CREATE DATABASE mostly waits on its checkpoints, so two overlap well
WAIT = 120.0  # seconds a hand-over waits for a clone before the run fails: a clone takes 20-100 ms here
SESSIONS_GONE_MS = 5000  # pg_terminate_backend waits this long for a session of the old database to end

LEAVING = 0.05  # seconds a closed session's server process is given to go by itself before it is ended
# The sessions on a database (%s) other than the asking one's; _SWAP's check is the same, with a literal name.
_OTHER_SESSIONS = (
    "FROM pg_stat_get_activity(NULL) a JOIN pg_database d ON d.oid = a.datid WHERE d.datname = %s "
    "AND a.pid <> pg_backend_pid()"
)
_ANY_SESSION = "SELECT EXISTS (SELECT 1 " + _OTHER_SESSIONS + ")"
_END_SESSIONS = "SELECT pg_terminate_backend(pid, %s) " + _OTHER_SESSIONS  # waits that many ms for each

# Two renames in one transaction, in one round trip: the worker's database goes (when a test did not drop it),
# a pooled clone takes its name. Refused while anyone is connected (the caller then ends the sessions):
# PostgreSQL itself would wait up to 5 s in 100 ms steps before refusing a rename of a database in use.
_SWAP = """DO $swap$ BEGIN
IF EXISTS (SELECT 1 FROM pg_stat_get_activity(NULL) a JOIN pg_database d ON d.oid = a.datid
           WHERE d.datname = {db} AND a.pid <> pg_backend_pid()) THEN
  RAISE EXCEPTION 'database % has sessions', {db} USING ERRCODE = 'object_in_use';
END IF;
IF EXISTS (SELECT 1 FROM pg_database WHERE datname = {db}) THEN
  EXECUTE format('ALTER DATABASE %I RENAME TO %I', {db}, {away});
END IF;
EXECUTE format('ALTER DATABASE %I RENAME TO %I', {pooled}, {db});
END $swap$"""


def _slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")[:40] or "test"


class DatabasePool(TestReset):
    """The pool of one PostgreSQL server, for every worker's database on it. `fact` is the run's own; the
    template is made from its database when the run kept none (a whole-pipeline run, before its tests)."""

    def __init__(self, settings: Mapping[str, Any], fact: Mapping[str, Any], workers: int, *, eager: bool) -> None:
        self.title = str(settings.get("title", "PostgreSQL"))
        self.fact = dict(fact)
        self.database = str(fact["database"])
        self.template = fresh_name(self.database)
        # Filled at once for the hand-over; for a fixture only (mid-run), from its first request on.
        self._wanted = PER_WORKER * max(1, workers)
        self.target = self._wanted if eager else 0
        self.kept: list[str] = []
        self._ready: list[str] = []
        self._making = 0
        self._numbers = itertools.count(1)
        self._condition = threading.Condition()
        self._closing = False
        self._error: str | None = None
        self._trash: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._connections: dict[str, psycopg.Connection[Any]] = {}
        self._admin = self._connect("lock the template of")
        self._sweep(self._admin)
        self._own_template = not exists(self._admin, self.template)
        if self._own_template and not eager:  # mid-run, the run's database is no longer as migrations left it
            self._admin.close()
            raise TestbedError(
                f"{self.title}: a fresh database mid-run needs the migrated state kept: set tests.isolation: test "
                "(or --isolation test), or use the dev loop (testbed up / testbed test)",
                ExitCode.CONFIG,
            )
        from psycopg import sql  # noqa: PLC0415 - start-up cost: psycopg only where PostgreSQL is isolated

        name = sql.Identifier(self.template)
        try:
            if self._own_template:  # the database is still as migrations left it: no test has run yet
                self._admin.execute(
                    sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY {}").format(
                        name, sql.Identifier(self.database), sql.SQL(CLONE_STRATEGY)
                    )
                )
            lock_template(self._admin, self.template, locked=True)
            self._end_sessions(self._admin, self.template)  # a session on a template refuses every clone
        except Exception as exc:
            self.close()
            raise self._failed("lock the template of", exc) from exc
        self._threads = [threading.Thread(target=self._fill, daemon=True) for _ in range(FILLERS)]
        self._threads.append(threading.Thread(target=self._drop, daemon=True))
        for thread in self._threads:
            thread.start()

    # -- connections ------------------------------------------------------------------------------------------

    def _connect(self, doing: str) -> psycopg.Connection[Any]:
        try:
            return admin_connection(self.fact, timeout=5)
        except Exception as exc:
            raise self._failed(doing, exc) from exc

    def _failed(self, doing: str, exc: BaseException) -> TestbedError:
        return TestbedError(
            f"{self.title}: cannot {doing} database {self.database!r}: {first_line(exc)}", ExitCode.PROVISIONING
        )

    def _sweep(self, admin: psycopg.Connection[Any]) -> None:
        _sweep(admin, self.database)

    @staticmethod
    def _end_sessions(admin: psycopg.Connection[Any], database: str) -> None:
        admin.execute(_END_SESSIONS, (SESSIONS_GONE_MS, database))

    # -- the pool ---------------------------------------------------------------------------------------------

    def _fill(self) -> None:
        try:
            admin = self._connect("clone")
        except TestbedError as exc:
            self._fail(str(exc))
            return
        from psycopg import errors, sql  # noqa: PLC0415 - start-up cost

        with admin:
            while True:
                with self._condition:
                    while not self._closing and self._error is None and len(self._ready) + self._making >= self.target:
                        self._condition.wait()
                    if self._closing or self._error is not None:
                        return
                    self._making += 1
                name = identifier(f"{self.database}{POOL}{next(self._numbers)}")
                try:
                    admin.execute(
                        sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY {}").format(
                            sql.Identifier(name), sql.Identifier(self.template), sql.SQL(CLONE_STRATEGY)
                        )
                    )
                except errors.DuplicateDatabase:  # a test took the name: the next number is as good
                    name = ""
                except Exception as exc:
                    self._fail(str(self._failed("clone", exc)))
                    return
                finally:
                    with self._condition:
                        self._making -= 1
                        if name:
                            self._ready.append(name)
                        self._condition.notify_all()

    def _fail(self, message: str) -> None:
        with self._condition:
            self._error = self._error or message
            self._condition.notify_all()

    def _take(self) -> str:
        with self._condition:
            if self.target < self._wanted:  # the first fixture's request of a pool made for fixtures only
                self.target = self._wanted
                self._condition.notify_all()
            if not self._condition.wait_for(lambda: self._ready or self._error or self._closing, timeout=WAIT):
                raise TestbedError(
                    f"{self.title}: no clone of {self.template!r} within {WAIT:g} s", ExitCode.PROVISIONING
                )
            if self._error is not None:
                raise TestbedError(self._error, ExitCode.PROVISIONING)
            if self._closing:
                raise TestbedError(f"{self.title}: the tests phase is over", ExitCode.PROVISIONING)
            name = self._ready.pop(0)
            self._condition.notify_all()
            return name

    def _drop(self) -> None:
        """Drop the databases tests left, one at a time, away from any hand-over (each forces a checkpoint)."""
        try:
            admin = self._connect("drop")
        except TestbedError:
            return
        with admin:
            while (name := self._trash.get()) is not None:
                with self._condition:  # the pool first: a drop's checkpoint slows the clones it runs beside
                    self._condition.wait_for(lambda: len(self._ready) >= self.target or self._closing, timeout=1)
                with contextlib.suppress(Exception):  # the server gone: the sweep or teardown has the rest
                    _drop(admin, name)

    # -- TestReset --------------------------------------------------------------------------------------------

    def _swap(self, database: str, away: str) -> None:
        from psycopg import errors, sql  # noqa: PLC0415 - start-up cost

        pooled = self._take()
        connection = self._connections.get(database)
        try:
            if connection is None:
                connection = self._connections[database] = admin_connection(self.fact, timeout=5)
            swap = sql.SQL(_SWAP).format(db=sql.Literal(database), away=sql.Literal(away), pooled=sql.Literal(pooled))
            for attempt in range(3):
                try:
                    connection.execute(swap)
                    break
                except errors.ObjectInUse:
                    if attempt == 2:
                        raise
                if attempt == 0 and sessions_leave(connection, database):
                    continue  # the last test closed its connection just now: its server process was still going
                # Sessions left from the last test: no new one, then end them (waiting for each to go).
                connection.execute(
                    sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(sql.Identifier(database))
                )
                self._end_sessions(connection, database)
        except Exception as exc:
            self._trash.put(pooled)
            self._connections.pop(database, None)
            error = self._failed("swap in a fresh", exc)
            self._fail(str(error))
            raise error from exc

    def reset(self, fact: Mapping[str, Any]) -> None:
        database = str(fact["database"])
        trash = identifier(f"{self.database}{TRASH}{next(self._numbers)}")
        self._swap(database, trash)
        self._trash.put(trash)

    def keep(self, fact: Mapping[str, Any], label: str) -> str | None:
        database = str(fact["database"])
        name = identifier(f"{database}{FAILED}{_slug(label)}")
        with self._condition:
            if name in self.kept:
                name = identifier(f"{name}_{next(self._numbers)}")
            self.kept.append(name)
        self._swap(database, name)
        from psycopg import sql  # noqa: PLC0415 - start-up cost

        with contextlib.suppress(Exception):  # the swap may have closed it to new sessions: open for debugging
            self._admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(name)))
        return name

    def fresh_copy(self) -> dict[str, Any]:
        # Renamed so the sweep finds it and no later hand-over does: it is the test's until release.
        pooled = self._take()
        name = identifier(f"{self.database}{COPY}{next(self._numbers)}")
        from psycopg import sql  # noqa: PLC0415 - start-up cost

        try:
            self._admin.execute(
                sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(pooled), sql.Identifier(name))
            )
        except Exception as exc:
            self._trash.put(pooled)
            raise self._failed("hand out a fresh", exc) from exc
        user, password, host, port = self.fact["user"], self.fact["password"], self.fact["host"], self.fact["port"]
        return {**self.fact, "database": name, "url": f"postgresql://{user}:{password}@{host}:{port}/{name}"}

    def release(self, name: str) -> None:
        self._trash.put(name)

    def failure(self) -> str | None:
        with self._condition:
            return self._error

    def close(self) -> None:
        with self._condition:
            self._closing = True
            self._condition.notify_all()
        self._trash.put(None)
        for thread in getattr(self, "_threads", []):
            thread.join(timeout=WAIT)
        for connection in self._connections.values():
            with contextlib.suppress(Exception):
                connection.close()
        with contextlib.suppress(Exception), self._admin:
            self._sweep(self._admin)
            lock_template(self._admin, self.template, locked=False)
            if self._own_template:  # the run's, not the dev loop's kept state: it goes with the run's tests
                _drop(self._admin, self.template)


def sessions_leave(connection: psycopg.Connection[Any], database: str) -> bool:
    """Whether the database's sessions end by themselves within LEAVING seconds, asked every millisecond: a suite
    closes its connections at a test's end, just before the next test's hand-over, and a server process takes a
    moment to go. Ending them instead waits in PostgreSQL's 100 ms steps (pg_terminate_backend's timeout)."""
    deadline = time.monotonic() + LEAVING
    while True:
        if not connection.execute(_ANY_SESSION, (database,)).fetchone()[0]:  # type: ignore[index]
            # Gone from the statistics, a process is still in PostgreSQL's list of backends for a few microseconds
            # more, where a rename would find it and wait 100 ms.
            time.sleep(0.0005)
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)


def _sweep(admin: psycopg.Connection[Any], database: str) -> None:
    """Drop the pool's databases (pooled clones, trash, fixtures' copies; a test may have taken their names too)."""
    starts = tuple(f"{database}{prefix}" for prefix in (POOL, TRASH, COPY))
    for (name,) in admin.execute("SELECT datname FROM pg_database").fetchall():
        if str(name).startswith(starts):
            _drop(admin, str(name))


def give_back(fact: Mapping[str, Any]) -> None:
    """What a pool whose tests phase was killed left: its databases dropped, the template unlocked. Best effort."""
    with contextlib.suppress(Exception), admin_connection(fact, timeout=5) as admin:
        _sweep(admin, str(fact["database"]))
        if exists(admin, fresh_name(str(fact["database"]))):
            lock_template(admin, fresh_name(str(fact["database"])), locked=False)


def _drop(admin: psycopg.Connection[Any], name: str) -> None:
    from psycopg import sql  # noqa: PLC0415 - start-up cost

    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
