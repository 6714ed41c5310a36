"""The SQL migration engine: apply a folder of numbered ``*.sql`` files to a PostgreSQL database.

Files
    ``<version>_<anything>.sql`` (``0001_create.sql``, ``2_add_index.sql``): the numeric prefix is the
    version; files are applied in numeric version order (``2_`` before ``10_``). Other files are ignored.
    Reading them is testbed.migrations.files (no psycopg), which preflight shares.

Tracking
    ``<schema>.testbed_schema_migrations(version, name, checksum, applied_at)``, created if missing, in a
    schema of testbed's own (``DEFAULT_SCHEMA`` unless the caller names another) so that a suite listing or
    reflecting its own schemas never sees it. That schema must not be on the connection's search_path
    (PostgreSQL's default path starts with ``"$user"``: a schema named like the database user is on it),
    else the service's unqualified ``CREATE TABLE`` would land there. A table left in the service's schema
    by an older testbed is moved into it, in the same transaction that creates it. ``checksum`` is
    the sha256 of the file's bytes; an applied file must never change (add a new file instead), and a new file
    must be numbered above every applied one. A tracked version whose file is gone is logged as a warning
    and otherwise ignored.

Transactions
    Each file runs in its own transaction together with its tracking row, so a failing file leaves the
    database as it was before that file. Files that start with the marker line::

        -- testbed:no-transaction

    (anywhere among the ``--`` comment lines and blank lines at the top) run statement by statement in
    autocommit mode instead (``CREATE INDEX CONCURRENTLY``, ``VACUUM``, ...; such a statement failing with
    "cannot run inside a transaction block" in an unmarked file is reported with the marker named); their
    tracking row is inserted after the last statement succeeded. If such a file fails half-way, the statements before
    the failing one stay committed and the file is not recorded: keep those files to one statement, or
    make them safe to re-run (``IF NOT EXISTS``).

Statements
    Every file is split into statements (testbed.migrations.sql), and each statement is sent on its own. A
    failing statement is reported with the file's line number: the server's error position (a 1-based
    character offset into the statement sent) plus the statement's offset in the file; errors without a
    position point at the statement's first line.

Concurrency
    A session-level advisory lock (``ADVISORY_LOCK_KEY``, derived from ``'testbed.migrations'``) serialises
    concurrent runs against the same database; it is waited for up to ``lock_timeout_s`` and released at
    the end, also on error."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.pq import TransactionStatus
from psycopg.rows import TupleRow

from testbed.migrations.files import (
    DEFAULT_SCHEMA,
    NO_TRANSACTION_MARKER,
    Migration,
    MigrationError,
    discover,
    one_line,
)
from testbed.migrations.sql import Statement, is_transaction_control, line_of, split_statements

_log = logging.getLogger(__name__)


TRACKING_TABLE = "testbed_schema_migrations"


#: Fixed signed 64-bit key for ``pg_advisory_lock``: the first 8 bytes of sha256('testbed.migrations').
ADVISORY_LOCK_KEY = int.from_bytes(hashlib.sha256(b"testbed.migrations").digest()[:8], "big", signed=True)


_CONNECT_TIMEOUT_S = 10


_ACTIVE_SQL_TRANSACTION = "25001"  # SQLSTATE of "... cannot run inside a transaction block"


@dataclass(frozen=True)
class MigrationResult:
    """File names applied by this run, and file names that were already applied (both in version order)."""

    applied: list[str]
    skipped: list[str]

    @property
    def changed(self) -> bool:
        return bool(self.applied)


def _secrets(conninfo: str) -> list[str]:
    """Every spelling of the password that the conninfo (valid or not) may contain."""
    found: set[str] = set()
    try:
        password = conninfo_to_dict(conninfo).get("password")
    except psycopg.Error:
        password = None
    if password:
        found.add(str(password))
    for m in re.finditer(r"password\s*=?\s*('(?:[^'\\]|\\.)*'|[^\s&'#]+)", conninfo, re.IGNORECASE):
        value = m.group(1)
        found.update({value, value.strip("'"), unquote(value)})
    uri = re.match(r"\s*[A-Za-z][A-Za-z0-9+.-]*://[^:@/?#]*:([^@/?#]*)@", conninfo)
    if uri is not None:
        found.update({uri.group(1), unquote(uri.group(1))})
    return sorted((s for s in found if s), key=len, reverse=True)


class _Redactor:
    def __init__(self, conninfo: str) -> None:
        self._secrets = _secrets(conninfo)

    def __call__(self, message: str) -> str:
        for secret in self._secrets:
            message = message.replace(secret, "***")
        return one_line(message)


def _server_message(e: psycopg.Error) -> str:
    diag = e.diag
    primary = diag.message_primary
    if not primary:
        return str(e) or type(e).__name__
    parts = [primary]
    if diag.message_detail:
        parts.append(diag.message_detail)
    if diag.message_hint:
        parts.append(f"hint: {diag.message_hint}")
    return "; ".join(parts)


def apply(
    conninfo: str, folder: Path, *, lock_timeout_s: float = 60.0, schema: str = DEFAULT_SCHEMA
) -> MigrationResult:
    """Apply the pending migrations of ``folder`` to the database at ``conninfo``, in version order,
    tracking them in ``schema`` (created if missing).

    Raises MigrationError (one line, naming the file and the cause, never the password) on any failure;
    files applied before a failing one stay applied.
    """
    migrations = discover(folder)
    redact = _Redactor(conninfo)
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.Error as e:
        raise MigrationError(f"invalid connection string: {redact(str(e))}") from None
    extra: dict[str, str | int] = {"client_encoding": "utf8"}
    if "connect_timeout" not in params:
        extra["connect_timeout"] = _CONNECT_TIMEOUT_S
    if "application_name" not in params:
        extra["application_name"] = "testbed-migrations"
    try:
        conn = psycopg.connect(make_conninfo(conninfo, **extra), autocommit=True)
    except psycopg.Error as e:
        raise MigrationError(f"cannot connect to the database: {redact(str(e))}") from None
    try:
        return _Run(conn, redact, schema).run(migrations, lock_timeout_s)
    finally:
        conn.close()


class _Run:
    def __init__(self, conn: psycopg.Connection[TupleRow], redact: _Redactor, schema: str) -> None:
        self.conn = conn
        self.redact = redact
        self.schema = schema
        self.table = sql.Identifier(schema, TRACKING_TABLE)
        self.table_name = f"{schema}.{TRACKING_TABLE}"

    def run(self, migrations: list[Migration], lock_timeout_s: float) -> MigrationResult:
        self._lock(lock_timeout_s)
        try:
            return self._migrate(migrations)
        finally:
            self._unlock()

    # -- lock

    def _lock(self, timeout_s: float) -> None:
        deadline = time.monotonic() + max(0.0, timeout_s)
        delay = 0.02
        while True:
            try:
                row = self.conn.execute("SELECT pg_try_advisory_lock(%s)", (ADVISORY_LOCK_KEY,)).fetchone()
            except psycopg.Error as e:
                raise MigrationError(f"cannot take the migration lock: {self.redact(str(e))}") from None
            if row is not None and row[0]:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise MigrationError(
                    f"timed out after {timeout_s:g}s waiting for the migration lock "
                    f"(held by {self._lock_holder()}): another migration run is still going on"
                )
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.5)

    def _lock_holder(self) -> str:
        key = ADVISORY_LOCK_KEY & 0xFFFFFFFFFFFFFFFF
        try:
            row = self.conn.execute(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                " AND classid::bigint = %s AND objid::bigint = %s AND objsubid = 1",
                (key >> 32, key & 0xFFFFFFFF),
            ).fetchone()
        except psycopg.Error:
            return "another session"
        return f"backend pid {row[0]}" if row is not None else "another session"

    def _unlock(self) -> None:
        conn = self.conn
        if conn.closed or conn.broken:
            return  # the server drops a session's advisory locks with the session
        try:
            if conn.info.transaction_status != TransactionStatus.IDLE:
                conn.execute("ROLLBACK")
            conn.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))
        except psycopg.Error as e:
            _log.warning("could not release the migration lock (closing the connection does): %s", e)

    # -- tracking table

    def _prepare_table(self) -> dict[int, tuple[str, str]]:
        """Create (or adopt) the tracking table in its own schema, in one transaction; return its rows."""
        try:
            with self.conn.transaction():
                self.conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
                self._refuse_schema_on_search_path()
                self._adopt_legacy_table()
                self.conn.execute(
                    sql.SQL(
                        "CREATE TABLE IF NOT EXISTS {} (version bigint PRIMARY KEY, name text NOT NULL,"
                        " checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
                    ).format(self.table)
                )
            rows = self.conn.execute(
                sql.SQL("SELECT version, name, checksum FROM {} ORDER BY version").format(self.table)
            ).fetchall()
        except psycopg.Error as e:
            raise MigrationError(f"cannot prepare {self.table_name}: {self.redact(_server_message(e))}") from None
        return {int(str(v)): (str(name), str(checksum)) for v, name, checksum in rows}

    def _refuse_schema_on_search_path(self) -> None:
        row = self.conn.execute("SELECT %s = ANY(current_schemas(false)), current_user", (self.schema,)).fetchone()
        if row is not None and row[0]:
            raise MigrationError(
                f"schema {self.schema!r} (testbed's migration bookkeeping) is on the search_path of user "
                f"{row[1]!r}, so the service would see it and create its tables there; name another schema "
                "in testbed.yml (migrations: {folder: ..., schema: ...})"
            )

    def _adopt_legacy_table(self) -> None:
        """An older testbed kept the table on the search_path (``public``): move it, rows and all."""
        row = self.conn.execute(
            "SELECT n.nspname, to_regclass(format('%%I.%%I', %s::text, %s::text)) IS NOT NULL FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass(%s)",
            (self.schema, TRACKING_TABLE, TRACKING_TABLE),
        ).fetchone()
        if row is None or row[0] == self.schema:
            return
        legacy = sql.Identifier(str(row[0]), TRACKING_TABLE)
        if row[1]:
            _log.warning("both %s.%s and %s exist; using %s", row[0], TRACKING_TABLE, self.table_name, self.table_name)
            return
        self.conn.execute(sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(legacy, sql.Identifier(self.schema)))
        _log.info("moved %s.%s into schema %s", row[0], TRACKING_TABLE, self.schema)

    # -- migrate

    def _migrate(self, migrations: list[Migration]) -> MigrationResult:
        applied = self._prepare_table()
        files = {m.version for m in migrations}
        for version, (name, _) in applied.items():
            if version not in files:
                _log.warning("%s (version %d) is recorded as applied but its file is gone", name, version)

        pending: list[Migration] = []
        skipped: list[str] = []
        for m in migrations:
            recorded = applied.get(m.version)
            if recorded is None:
                pending.append(m)
                continue
            recorded_name, recorded_checksum = recorded
            if recorded_checksum != m.checksum:
                as_name = f" (as {recorded_name})" if recorded_name != m.name else ""
                raise MigrationError(
                    f"{m.name}: checksum changed since it was applied{as_name}; "
                    "add a new migration instead of editing an applied one"
                )
            skipped.append(m.name)

        if applied and pending:
            top = max(applied)
            late = [m.name for m in pending if m.version < top]
            if late:
                raise MigrationError(
                    f"{', '.join(late)}: numbered below the highest applied version {top} "
                    f"({applied[top][0]}); out-of-order migrations are refused, renumber above {top}"
                )

        plans = [(m, self._plan(m)) for m in pending]
        done: list[str] = []
        for m, statements in plans:
            if m.transactional:
                self._apply_transactional(m, statements)
            else:
                self._apply_autocommit(m, statements)
            _log.info("applied migration %s", m.name)
            done.append(m.name)
        return MigrationResult(applied=done, skipped=skipped)

    def _plan(self, m: Migration) -> list[Statement]:
        statements = split_statements(m.sql)
        if m.transactional:
            for st in statements:
                if is_transaction_control(st.words):
                    raise MigrationError(
                        f"{m.name} line {line_of(m.sql, st.first)}: {' '.join(st.words).upper()} in a file "
                        "that runs in its own transaction; remove it (or mark the file with "
                        f"{NO_TRANSACTION_MARKER!r} to manage transactions yourself)"
                    )
        return statements

    def _record(self, m: Migration) -> None:
        self.conn.execute(
            sql.SQL("INSERT INTO {} (version, name, checksum) VALUES (%s, %s, %s)").format(self.table),
            (m.version, m.name, m.checksum),
        )

    def _execute(self, m: Migration, st: Statement) -> None:
        try:
            self.conn.execute(m.sql[st.start : st.end].encode(), prepare=False)
        except psycopg.Error as e:
            raise self._failure(m, st, e) from None

    def _failure(self, m: Migration, st: Statement, e: psycopg.Error, note: str = "") -> MigrationError:
        position = e.diag.statement_position
        offset = st.start + int(position) - 1 if position and position.isdigit() else st.first
        line = line_of(m.sql, offset)
        if m.transactional and e.sqlstate == _ACTIVE_SQL_TRANSACTION:
            note += (
                f"; mark the file with a first line {NO_TRANSACTION_MARKER!r} to run it outside a transaction"
                " (keep such a file to that one statement)"
            )
        return MigrationError(f"{m.name} line {line}: {self.redact(_server_message(e))}{note}")

    def _apply_transactional(self, m: Migration, statements: list[Statement]) -> None:
        try:
            with self.conn.transaction():
                for st in statements:
                    self._execute(m, st)
                    if self.conn.info.transaction_status != TransactionStatus.INTRANS:
                        raise MigrationError(
                            f"{m.name} line {line_of(m.sql, st.first)}: the statement ended the file's transaction"
                        )
                self._record(m)
        except psycopg.Error as e:  # the tracking insert or the COMMIT itself (deferred constraints)
            raise MigrationError(
                f"{m.name}: {self.redact(_server_message(e))} (after its last statement, while recording "
                "and committing it)"
            ) from None

    def _apply_autocommit(self, m: Migration, statements: list[Statement]) -> None:
        for index, st in enumerate(statements):
            try:
                self.conn.execute(m.sql[st.start : st.end].encode(), prepare=False)
            except psycopg.Error as e:
                note = (
                    f" (no-transaction file: its statements before line {line_of(m.sql, st.first)} stayed"
                    " committed; the file is not recorded as applied)"
                    if index
                    else ""
                )
                raise self._failure(m, st, e, note) from None
        if self.conn.info.transaction_status != TransactionStatus.IDLE:
            with contextlib.suppress(psycopg.Error):
                self.conn.execute("ROLLBACK")
            raise MigrationError(f"{m.name}: leaves a transaction open (BEGIN without COMMIT); rolled it back")
        try:
            self._record(m)
        except psycopg.Error as e:
            raise MigrationError(
                f"{m.name}: applied, but recording it in {self.table_name} failed: {self.redact(_server_message(e))}"
            ) from None
