"""PostgreSQL administration shared by the kind (the dev loop's snapshot and reset, the workers' databases) and
the per-test pool: names, the superuser connection outside the databases it acts on, clones."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from testbed.core.errors import ExitCode, TestbedError

if TYPE_CHECKING:
    import psycopg

# How a database is cloned from its template (PostgreSQL 15 offers both): FILE_COPY copies the files after a
# checkpoint, WAL_LOG copies block by block through the WAL. benchmarks/isolation.py measures both.
CLONE_STRATEGY = "FILE_COPY"


def identifier(name: str) -> str:
    """PostgreSQL truncates names to 63 bytes: a longer one keeps its start and a digest of the whole."""
    if len(name.encode()) <= 63:
        return name
    return name.encode()[:50].decode(errors="ignore") + "_" + hashlib.sha256(name.encode()).hexdigest()[:12]


def fresh_name(database: str) -> str:
    """The template database that keeps `database` as migrations left it (the dev loop's reset)."""
    return identifier(f"{database}_testbed_fresh")


def admin_connection(fact: Mapping[str, Any], timeout: int = 5) -> psycopg.Connection[Any]:
    """A connection outside the databases it creates and drops, as the configured (superuser) account."""
    import psycopg  # noqa: PLC0415 - loaded only where a database is cloned

    maintenance = "template1" if fact["database"] == "postgres" else "postgres"
    return psycopg.connect(
        host=fact["host"],
        port=fact["port"],
        user=fact["user"],
        password=fact["password"],
        dbname=maintenance,
        connect_timeout=timeout,
        autocommit=True,
    )


def first_line(exc: BaseException) -> str:
    """An error's first line (psycopg's carry PostgreSQL's detail and hint below it), or its type's name."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


@contextlib.contextmanager
def admin_session(fact: Mapping[str, Any], doing: str = "clone") -> Iterator[psycopg.Connection[Any]]:
    import psycopg  # noqa: PLC0415 - loaded only where a database is cloned

    try:
        with admin_connection(fact) as conn:
            yield conn
    except psycopg.Error as exc:
        what = f"PostgreSQL: cannot {doing} database {fact['database']!r}: {first_line(exc)}"
        raise TestbedError(what, ExitCode.PROVISIONING) from exc


def exists(admin: psycopg.Connection[Any], name: str) -> bool:
    return admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def clone(admin: psycopg.Connection[Any], source: str, target: str, *, force: bool) -> None:
    """`target` as a fresh copy of `source` (dropping an older `target` and, with force, its sessions)."""
    from psycopg import sql  # noqa: PLC0415

    drop = "DROP DATABASE IF EXISTS {} WITH (FORCE)" if force else "DROP DATABASE IF EXISTS {}"
    admin.execute(sql.SQL(drop).format(sql.Identifier(target)))
    admin.execute(
        sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY {}").format(
            sql.Identifier(target), sql.Identifier(source), sql.SQL(CLONE_STRATEGY)
        )
    )


def lock_template(admin: psycopg.Connection[Any], name: str, *, locked: bool) -> None:
    """Make `name` a template nobody connects to (the per-test pool's, while tests run), or an ordinary database
    again (migrations connect to the dev loop's kept state, snapshot drops it)."""
    from psycopg import sql  # noqa: PLC0415

    template, connections = ("true", "false") if locked else ("false", "true")
    admin.execute(
        sql.SQL("ALTER DATABASE {} IS_TEMPLATE {} ALLOW_CONNECTIONS {}").format(
            sql.Identifier(name), sql.SQL(template), sql.SQL(connections)
        )
    )
