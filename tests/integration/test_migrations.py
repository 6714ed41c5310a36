"""Tests of testbed.migrations against a real, throwaway PostgreSQL 15 cluster (no mocks)."""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from support import write_lines
from testbed.core.ports import free_port
from testbed.migrations import engine
from testbed.migrations.engine import ADVISORY_LOCK_KEY, apply
from testbed.migrations.files import DEFAULT_SCHEMA, MigrationError

TRACKED = f"{DEFAULT_SCHEMA}.{engine.TRACKING_TABLE}"
PG_USER = "testbed"  # the unprivileged system user that owns the cluster when the tests run as root


# ----------------------------------------------------------------------------------------------- the server


def _pg_bindir() -> Path:
    env = os.environ.get("TESTBED_PG_BINDIR")
    if env:
        return Path(env)
    debian = Path("/usr/lib/postgresql/15/bin")
    if (debian / "initdb").exists():
        return debian
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0 and (Path(out.stdout.strip()) / "initdb").exists():
            return Path(out.stdout.strip())
    pytest.fail(
        "PostgreSQL 15 server binaries not found (apt-get install postgresql-15); set TESTBED_PG_BINDIR"
    )


def _owner_prefix() -> list[str]:
    """Postgres refuses to run as root: run its binaries as the system user PG_USER then."""
    if os.geteuid() != 0:
        return []
    if subprocess.run(["id", "-u", PG_USER], capture_output=True, check=False).returncode != 0:
        done = subprocess.run(
            ["useradd", "--system", "--no-create-home", PG_USER], capture_output=True, text=True, check=False
        )
        if done.returncode not in (0, 9):  # 9: created meanwhile by someone else
            pytest.fail(f"useradd {PG_USER} failed: {done.stderr.strip()}")
    return ["runuser", "-u", PG_USER, "--"]


@dataclass(frozen=True)
class Server:
    port: int
    password: str

    def conninfo(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres password={self.password} dbname={dbname}"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Server]:
    bindir = _pg_bindir()
    owner = _owner_prefix()
    root = Path(tempfile.mkdtemp(prefix="testbed-migrations-pg-", dir="/tmp"))
    data = root / "data"
    log = root / "server.log"
    password = "pw-" + secrets.token_hex(12)

    def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([*owner, *argv], cwd=root, capture_output=True, text=True, check=False)
        if check and done.returncode != 0:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            pytest.fail(f"{Path(argv[0]).name} failed: {done.stdout}{done.stderr}{tail}")
        return done

    try:
        pwfile = root / "pwfile"
        pwfile.write_text(password + "\n")
        if owner:
            shutil.chown(root, user=PG_USER)
            shutil.chown(pwfile, user=PG_USER)
        run(
            str(bindir / "initdb"), "-D", str(data), "-U", "postgres", f"--pwfile={pwfile}",
            "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync",
        )  # fmt: skip
        for attempt in range(3):
            port = free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root}"
                " -c fsync=off -c full_page_writes=off -c synchronous_commit=off"
            )
            done = run(
                str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60",
                "-o", options, "start",
                check=attempt == 2,
            )  # fmt: skip
            if done.returncode == 0:
                break
        yield Server(port=port, password=password)
    finally:
        if (data / "postmaster.pid").exists():
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop", check=False)
        shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class Db:
    conninfo: str
    name: str

    def rows(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            return conn.execute(query.encode(), params or None).fetchall()

    def value(self, query: str) -> Any:
        return self.rows(query)[0][0]

    def exists(self, relation: str) -> bool:
        return self.value(f"SELECT to_regclass('{relation}') IS NOT NULL") is True

    def tracked(self) -> list[tuple[int, str]]:
        if not self.exists(TRACKED):
            return []
        return [
            (v, n) for v, n in self.rows(f"SELECT version, name FROM {TRACKED} ORDER BY 1")
        ]


@pytest.fixture
def db(pg_server: Server) -> Iterator[Db]:
    name = "mig_" + uuid.uuid4().hex[:16]
    with psycopg.connect(pg_server.conninfo(), autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}".encode())
    try:
        yield Db(conninfo=pg_server.conninfo(name), name=name)
    finally:
        with psycopg.connect(pg_server.conninfo(), autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)".encode())


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "migrations"
    path.mkdir()
    return path


def error_of(conninfo: str, folder: Path, **kwargs: Any) -> str:
    with pytest.raises(MigrationError) as info:
        apply(conninfo, folder, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert "\r" not in message
    return message


# ------------------------------------------------------------------------------------------------ discovery










def test_duplicate_versions_name_both_files(folder: Path, db: Db) -> None:
    write_lines(folder, "1_first.sql", "CREATE TABLE first (id int);")
    write_lines(folder, "001_second.sql", "CREATE TABLE second (id int);")
    message = error_of(db.conninfo, folder)
    assert "duplicate migration version 1" in message
    assert "1_first.sql" in message
    assert "001_second.sql" in message
    assert db.tracked() == []
    assert not db.exists("first")


def test_missing_folder_is_named(tmp_path: Path, db: Db) -> None:
    missing = tmp_path / "no-such-migrations"
    message = error_of(db.conninfo, missing)
    assert message == f"migrations folder {missing} does not exist"


# ------------------------------------------------------------------------------------------------ splitting




# ------------------------------------------------------------------------------------------------ applying


def test_applies_in_numeric_version_order_not_lexical(folder: Path, db: Db) -> None:
    write_lines(folder, "1_create.sql", "CREATE TABLE log (id serial PRIMARY KEY, v text NOT NULL);")
    write_lines(folder, "10_ten.sql", "INSERT INTO log (v) VALUES ('ten');", "ALTER TABLE two ADD COLUMN ten int;")
    write_lines(folder, "2_two.sql", "INSERT INTO log (v) VALUES ('two');", "CREATE TABLE two (id int);")

    result = apply(db.conninfo, folder)

    assert result.applied == ["1_create.sql", "2_two.sql", "10_ten.sql"]
    assert result.skipped == []
    assert result.changed
    assert [v for (v,) in db.rows("SELECT v FROM log ORDER BY id")] == ["two", "ten"]
    assert db.tracked() == [(1, "1_create.sql"), (2, "2_two.sql"), (10, "10_ten.sql")]
    columns = db.rows(
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns"
        " WHERE table_name = 'testbed_schema_migrations' ORDER BY ordinal_position"
    )
    assert columns == [
        ("version", "bigint", "NO"),
        ("name", "text", "NO"),
        ("checksum", "text", "NO"),
        ("applied_at", "timestamp with time zone", "NO"),
    ]
    checksums = dict(db.rows(f"SELECT name, checksum FROM {TRACKED}"))
    assert checksums["2_two.sql"] == hashlib.sha256((folder / "2_two.sql").read_bytes()).hexdigest()


def test_empty_folder_applies_nothing(folder: Path, db: Db) -> None:
    result = apply(db.conninfo, folder)
    assert result.applied == []
    assert not result.changed
    assert db.exists(TRACKED)


def test_rerun_applies_nothing_then_only_new_files(folder: Path, db: Db) -> None:
    write_lines(folder, "1_a.sql", "CREATE TABLE a (id int);")
    write_lines(folder, "2_b.sql", "INSERT INTO a VALUES (1);")
    assert apply(db.conninfo, folder).applied == ["1_a.sql", "2_b.sql"]
    before = db.rows(f"SELECT version, applied_at FROM {TRACKED} ORDER BY 1")

    again = apply(db.conninfo, folder)

    assert not again.changed
    assert again.applied == []
    assert again.skipped == ["1_a.sql", "2_b.sql"]
    assert db.rows(f"SELECT version, applied_at FROM {TRACKED} ORDER BY 1") == before
    assert db.value("SELECT count(*) FROM a") == 1

    write_lines(folder, "3_c.sql", "INSERT INTO a VALUES (3);")
    third = apply(db.conninfo, folder)
    assert third.applied == ["3_c.sql"]
    assert third.skipped == ["1_a.sql", "2_b.sql"]
    assert db.value("SELECT count(*) FROM a") == 2


def test_changed_checksum_fails_naming_the_file(folder: Path, db: Db) -> None:
    write_lines(folder, "1_a.sql", "CREATE TABLE a (id int);")
    write_lines(folder, "2_b.sql", "INSERT INTO a VALUES (1);")
    apply(db.conninfo, folder)
    write_lines(folder, "2_b.sql", "INSERT INTO a VALUES (2);")
    write_lines(folder, "3_c.sql", "CREATE TABLE c (id int);")

    message = error_of(db.conninfo, folder)

    assert message == (
        "2_b.sql: checksum changed since it was applied; "
        "add a new migration instead of editing an applied one"
    )
    assert db.tracked() == [(1, "1_a.sql"), (2, "2_b.sql")]
    assert not db.exists("c")


def test_out_of_order_new_file_is_rejected(folder: Path, db: Db) -> None:
    write_lines(folder, "1_a.sql", "CREATE TABLE a (id int);")
    write_lines(folder, "3_c.sql", "CREATE TABLE c (id int);")
    apply(db.conninfo, folder)
    write_lines(folder, "2_b.sql", "CREATE TABLE b (id int);")
    write_lines(folder, "4_d.sql", "CREATE TABLE d (id int);")

    message = error_of(db.conninfo, folder)

    assert message.startswith("2_b.sql: numbered below the highest applied version 3 (3_c.sql)")
    assert "out-of-order" in message
    assert db.tracked() == [(1, "1_a.sql"), (3, "3_c.sql")]
    assert not db.exists("b")
    assert not db.exists("d")


def test_tracked_version_without_file_is_ignored_with_a_warning(
    folder: Path, db: Db, caplog: pytest.LogCaptureFixture
) -> None:
    write_lines(folder, "1_a.sql", "CREATE TABLE a (id int);")
    write_lines(folder, "2_b.sql", "CREATE TABLE b (id int);")
    apply(db.conninfo, folder)
    (folder / "1_a.sql").unlink()
    write_lines(folder, "3_c.sql", "CREATE TABLE c (id int);")

    with caplog.at_level(logging.WARNING, logger="testbed.migrations"):
        result = apply(db.conninfo, folder)

    assert result.applied == ["3_c.sql"]
    assert result.skipped == ["2_b.sql"]
    assert any("1_a.sql" in r.getMessage() and "file is gone" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------------------------------ broken files


def _prepare_ok_files(folder: Path) -> None:
    write_lines(folder, "0001_a.sql", "CREATE TABLE a (id int);")
    write_lines(folder, "0002_b.sql", "INSERT INTO a VALUES (1);")


def test_broken_file_reports_line_and_leaves_db_as_before_it(folder: Path, db: Db) -> None:
    _prepare_ok_files(folder)
    broken = write_lines(
        folder,
        "0003_broken.sql",
        "-- adds the broken table",  # 1
        "CREATE TABLE broken_t (id int,",  # 2
        "  note text);",  # 3
        "SELEC 1;",  # 4
        "INSERT INTO a VALUES (3);",  # 5
    )
    write_lines(folder, "0004_after.sql", "CREATE TABLE after_broken (id int);")

    message = error_of(db.conninfo, folder)

    assert message == '0003_broken.sql line 4: syntax error at or near "SELEC"'
    assert db.tracked() == [(1, "0001_a.sql"), (2, "0002_b.sql")]
    assert not db.exists("broken_t")
    assert not db.exists("after_broken")
    assert db.rows("SELECT id FROM a") == [(1,)]

    broken.write_text(broken.read_text().replace("SELEC 1", "SELECT 1"))
    assert apply(db.conninfo, folder).applied == ["0003_broken.sql", "0004_after.sql"]
    assert db.rows("SELECT id FROM a ORDER BY id") == [(1,), (3,)]


@pytest.mark.parametrize("transactional", [True, False], ids=["transaction", "no-transaction"])
def test_error_in_second_statement_reports_its_file_line(folder: Path, db: Db, transactional: bool) -> None:
    _prepare_ok_files(folder)
    header = [] if transactional else ["-- testbed:no-transaction"]
    write_lines(
        folder,
        "0003_second.sql",
        *header,
        "/* a block comment; with a semicolon",  # 1
        "   spanning two lines */",  # 2
        "INSERT INTO a VALUES (10), -- a trailing; comment",  # 3
        "  (length($$;$$ || ';'));",  # 4
        "INSERT INTO a",  # 5
        "  SELECT 1 FROM no_such_table;",  # 6
    )

    message = error_of(db.conninfo, folder)

    line = 6 + len(header)
    assert message.startswith(f'0003_second.sql line {line}: relation "no_such_table" does not exist')
    assert db.tracked() == [(1, "0001_a.sql"), (2, "0002_b.sql")]
    if transactional:
        assert message == f'0003_second.sql line {line}: relation "no_such_table" does not exist'
        assert db.rows("SELECT id FROM a ORDER BY id") == [(1,)]
    else:  # autocommit: the first statement stayed, and the message says so
        assert "stayed committed" in message
        assert db.rows("SELECT id FROM a ORDER BY id") == [(1,), (2,), (10,)]


def test_error_without_position_points_at_the_statement(folder: Path, db: Db) -> None:
    write_lines(folder, "1_div.sql", "SELECT 1;", "-- next one fails at run time", "SELECT", "  1 / 0;")
    assert error_of(db.conninfo, folder) == "1_div.sql line 3: division by zero"


def test_line_numbers_with_multibyte_text_and_crlf(folder: Path, db: Db) -> None:
    text = "-- ünïcödé ✓ comment\r\nSELECT 'ä€𝄞', $q$✓;$q$;\r\nSELECT 'ö' ||\r\n  nope;\r\n"
    (folder / "1_mb.sql").write_bytes(text.encode())
    assert error_of(db.conninfo, folder) == '1_mb.sql line 4: column "nope" does not exist'


def test_detail_is_kept_on_the_same_line(folder: Path, db: Db) -> None:
    write_lines(folder, "1_a.sql", "CREATE TABLE a (id int PRIMARY KEY);", "INSERT INTO a VALUES (1);")
    write_lines(folder, "2_dup.sql", "-- oops", "INSERT INTO a VALUES (1);")
    message = error_of(db.conninfo, folder)
    assert message.startswith('2_dup.sql line 2: duplicate key value violates unique constraint "a_pkey"; ')
    assert "Key (id)=(1) already exists." in message


def test_failure_at_commit_rolls_the_file_back(folder: Path, db: Db) -> None:
    write_lines(
        folder,
        "1_deferred.sql",
        "CREATE TABLE p (id int PRIMARY KEY);",
        "CREATE TABLE c (pid int REFERENCES p DEFERRABLE INITIALLY DEFERRED);",
        "INSERT INTO c VALUES (42);",
    )
    message = error_of(db.conninfo, folder)
    assert message.startswith('1_deferred.sql: insert or update on table "c" violates foreign key constraint')
    assert "Key (pid)=(42) is not present" in message
    assert db.tracked() == []
    assert not db.exists("p")


def test_transaction_control_in_a_transactional_file_is_refused(folder: Path, db: Db) -> None:
    write_lines(folder, "1_a.sql", "CREATE TABLE a (id int);")
    write_lines(folder, "2_commit.sql", "INSERT INTO a VALUES (1);", "COMMIT;", "INSERT INTO a VALUES (2);")
    message = error_of(db.conninfo, folder)
    assert message.startswith("2_commit.sql line 2: COMMIT in a file that runs in its own transaction")
    assert db.tracked() == []  # refused before anything ran
    assert not db.exists("a")


def test_tricky_but_valid_file_runs(folder: Path, db: Db) -> None:
    write_lines(
        folder,
        "1_tricky.sql",
        "CREATE TABLE t (id int, s text);",
        "CREATE TABLE audit (id int);",
        'CREATE TABLE "semi;colon" ("x;y" int);',
        "CREATE FUNCTION plus_one(x int) RETURNS int LANGUAGE plpgsql AS $body$",
        "BEGIN",
        "  RETURN x + 1; -- ';' inside a dollar quote",
        "END",
        "$body$;",
        "CREATE FUNCTION twice(x int) RETURNS int LANGUAGE sql",
        "BEGIN ATOMIC",
        "  SELECT CASE WHEN x IS NULL THEN NULL ELSE x * 2 END;",
        "END;",
        "CREATE RULE t_audit AS ON INSERT TO t",
        "  DO ALSO (INSERT INTO audit VALUES (NEW.id); NOTIFY t_changed);",
        r"INSERT INTO t VALUES (plus_one(1), E'it\'s; ok'), (twice(2), 'a;b'), (3, '100%');",
        '/* nested /* comment; */ still; */ INSERT INTO "semi;colon" ("x;y") VALUES (5);',
    )
    assert apply(db.conninfo, folder).applied == ["1_tricky.sql"]
    assert db.rows("SELECT id, s FROM t ORDER BY id") == [
        (2, "it's; ok"),
        (3, "100%"),
        (4, "a;b"),
    ]
    assert db.value("SELECT count(*) FROM audit") == 3
    assert db.value('SELECT "x;y" FROM "semi;colon"') == 5


# ----------------------------------------------------------------------------------------- no-transaction


def test_no_transaction_marker_allows_create_index_concurrently(folder: Path, db: Db) -> None:
    write_lines(
        folder,
        "1_t.sql",
        "CREATE TABLE t (id int, v int);",
        "INSERT INTO t SELECT g, g FROM generate_series(1, 100) g;",
    )
    write_lines(
        folder,
        "2_index.sql",
        "-- testbed:no-transaction",
        "-- two statements, each sent on its own in autocommit mode",
        "CREATE INDEX CONCURRENTLY t_id_idx ON t (id);",
        "CREATE INDEX CONCURRENTLY t_v_idx",
        "  ON t (v);",
    )

    result = apply(db.conninfo, folder)

    assert result.applied == ["1_t.sql", "2_index.sql"]
    assert db.rows(
        "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " WHERE i.indrelid = 't'::regclass ORDER BY 1"
    ) == [("t_id_idx", True), ("t_v_idx", True)]
    assert db.tracked() == [(1, "1_t.sql"), (2, "2_index.sql")]
    assert not apply(db.conninfo, folder).changed


def test_create_index_concurrently_without_marker_fails(folder: Path, db: Db) -> None:
    write_lines(folder, "1_t.sql", "CREATE TABLE t (id int);")
    write_lines(folder, "2_index.sql", "-- forgot the marker", "CREATE INDEX CONCURRENTLY t_id_idx ON t (id);")

    message = error_of(db.conninfo, folder)

    assert message == (
        "2_index.sql line 2: CREATE INDEX CONCURRENTLY cannot run inside a transaction block; mark the file with"
        " a first line '-- testbed:no-transaction' to run it outside a transaction (keep such a file to that one"
        " statement)"
    )
    assert db.tracked() == [(1, "1_t.sql")]
    assert not db.exists("t_id_idx")


def test_no_transaction_file_may_manage_its_own_transactions(folder: Path, db: Db) -> None:
    write_lines(folder, "1_t.sql", "CREATE TABLE t (id int);")
    write_lines(folder, "2_tx.sql", "-- testbed:no-transaction", "BEGIN;", "INSERT INTO t VALUES (1);", "COMMIT;")
    write_lines(folder, "3_open.sql", "-- testbed:no-transaction", "BEGIN;", "INSERT INTO t VALUES (2);")

    message = error_of(db.conninfo, folder)

    assert message.startswith("3_open.sql: leaves a transaction open")
    assert db.rows("SELECT id FROM t") == [(1,)]
    assert db.tracked() == [(1, "1_t.sql"), (2, "2_tx.sql")]


@pytest.mark.parametrize("statement", ["VACUUM t;", "ALTER SYSTEM SET work_mem = '5MB';"])
def test_other_statements_that_need_autocommit_name_the_marker(folder: Path, db: Db, statement: str) -> None:
    write_lines(folder, "1_t.sql", "CREATE TABLE t (id int);", statement)

    message = error_of(db.conninfo, folder)

    assert message.startswith("1_t.sql line 2: ")
    assert "cannot run inside a transaction block; mark the file with a first line '-- testbed:no-transaction'" in (
        message
    )


# ------------------------------------------------------------------------------------ invisible bookkeeping


def _service_tables(db: Db) -> list[tuple[str, str]]:
    """What a suite sees when it lists the tables of the schemas it works in."""
    return db.rows(
        "SELECT table_schema, table_name FROM information_schema.tables"
        " WHERE table_schema = ANY(current_schemas(false)) OR table_schema = 'public' ORDER BY 1, 2"
    )


def test_bookkeeping_lives_in_its_own_schema_off_the_search_path(folder: Path, db: Db) -> None:
    write_lines(folder, "1_a.sql", "CREATE TABLE a (id int);")
    write_lines(folder, "2_b.sql", "CREATE TABLE b (id int);")

    apply(db.conninfo, folder)

    assert _service_tables(db) == [("public", "a"), ("public", "b")]
    assert db.value("SELECT 'testbed_migrations' = ANY(current_schemas(false))") is False
    assert db.tracked() == [(1, "1_a.sql"), (2, "2_b.sql")]
    assert not db.exists("public.testbed_schema_migrations")


def test_bookkeeping_schema_is_configurable(folder: Path, db: Db) -> None:
    write_lines(folder, "1_a.sql", "CREATE TABLE a (id int);")

    assert apply(db.conninfo, folder, schema="ops bookkeeping").applied == ["1_a.sql"]
    assert apply(db.conninfo, folder, schema="ops bookkeeping").skipped == ["1_a.sql"]

    assert db.rows('SELECT version, name FROM "ops bookkeeping".testbed_schema_migrations') == [(1, "1_a.sql")]
    assert _service_tables(db) == [("public", "a")]
    assert not db.exists(TRACKED)


@pytest.mark.parametrize("schema", ["public", "postgres"], ids=["public", "named-like-the-user"])
def test_a_schema_on_the_search_path_is_refused_and_not_created(folder: Path, db: Db, schema: str) -> None:
    write_lines(folder, "1_a.sql", "CREATE TABLE a (id int);")

    message = error_of(db.conninfo, folder, schema=schema)

    assert message.startswith(
        f"schema '{schema}' (testbed's migration bookkeeping) is on the search_path of user 'postgres'"
    )
    assert db.value("SELECT count(*) FROM pg_namespace WHERE nspname = 'postgres'") == 0
    assert not db.exists("a")


def test_a_legacy_table_in_public_is_moved_with_its_rows(folder: Path, db: Db) -> None:
    """What testbed before the schema left: the table in public, the first file applied."""
    first = write_lines(folder, "1_a.sql", "CREATE TABLE a (id int);")
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        conn.execute("CREATE TABLE a (id int)")
        conn.execute(
            "CREATE TABLE testbed_schema_migrations (version bigint PRIMARY KEY, name text NOT NULL,"
            " checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        conn.execute(
            "INSERT INTO testbed_schema_migrations (version, name, checksum) VALUES (1, '1_a.sql', %s)",
            (hashlib.sha256(first.read_bytes()).hexdigest(),),
        )
    write_lines(folder, "2_b.sql", "CREATE TABLE b (id int);")

    result = apply(db.conninfo, folder)

    assert (result.applied, result.skipped) == (["2_b.sql"], ["1_a.sql"])
    assert db.tracked() == [(1, "1_a.sql"), (2, "2_b.sql")]
    assert _service_tables(db) == [("public", "a"), ("public", "b")]
    (folder / "1_a.sql").write_text("CREATE TABLE a (id bigint);\n")
    assert error_of(db.conninfo, folder).startswith("1_a.sql: checksum changed since it was applied")


# ------------------------------------------------------------------------------------------- concurrency


def test_concurrent_applies_apply_each_file_exactly_once(folder: Path, db: Db) -> None:
    write_lines(folder, "1_t.sql", "CREATE TABLE runs (file text);", "INSERT INTO runs VALUES ('1');")
    write_lines(folder, "2_slow.sql", "SELECT pg_sleep(0.3);", "INSERT INTO runs VALUES ('2');")
    write_lines(folder, "3_last.sql", "INSERT INTO runs VALUES ('3');")
    workers = 4
    barrier = threading.Barrier(workers)

    def run() -> engine.MigrationResult:
        barrier.wait()
        return apply(db.conninfo, folder, lock_timeout_s=30)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = [f.result() for f in [pool.submit(run) for _ in range(workers)]]

    applied = [name for r in results for name in r.applied]
    assert sorted(applied) == ["1_t.sql", "2_slow.sql", "3_last.sql"]
    assert sum(r.changed for r in results) == 1
    assert sorted(f for (f,) in db.rows("SELECT file FROM runs")) == ["1", "2", "3"]
    assert db.tracked() == [(1, "1_t.sql"), (2, "2_slow.sql"), (3, "3_last.sql")]


def test_lock_wait_times_out_and_lock_is_released_after_errors(folder: Path, db: Db) -> None:
    write_lines(folder, "1_a.sql", "CREATE TABLE a (id int);")
    with psycopg.connect(db.conninfo, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
        pid = holder.info.backend_pid
        started = time.monotonic()
        message = error_of(db.conninfo, folder, lock_timeout_s=0.5)
        elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 5
    assert message.startswith("timed out after 0.5s waiting for the migration lock")
    assert f"backend pid {pid}" in message
    assert db.tracked() == []

    write_lines(folder, "2_broken.sql", "SELEC 1;")
    assert error_of(db.conninfo, folder, lock_timeout_s=0).startswith("2_broken.sql line 1:")
    locks = db.value("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
    assert locks == 0
    (folder / "2_broken.sql").unlink()
    assert apply(db.conninfo, folder, lock_timeout_s=0).skipped == ["1_a.sql"]


# ---------------------------------------------------------------------------------------------- secrets


@pytest.mark.parametrize(
    "make_conninfo",
    [
        pytest.param(lambda s, db: s.conninfo(db.name + "_missing"), id="missing-database"),
        pytest.param(lambda s, db: db.conninfo.replace(s.password, s.password + "x"), id="wrong-password"),
        pytest.param(lambda s, db: f"host=127.0.0.1 port {s.port} password={s.password}", id="malformed"),
        pytest.param(
            lambda s, db: f"postgresql://postgres:{s.password}@127.0.0.1:{free_port()}/x?connect_timeout=3",
            id="refused-uri",
        ),
        pytest.param(
            lambda s, db: f"postgresql://postgres:{s.password}%zz@127.0.0.1:{s.port}/x", id="echoed-by-libpq"
        ),
    ],
)
def test_messages_never_include_the_password(
    folder: Path, db: Db, pg_server: Server, make_conninfo: Any
) -> None:
    write_lines(folder, "1_a.sql", "SELECT 1;")
    message = error_of(make_conninfo(pg_server, db), folder)
    assert pg_server.password not in message
    assert message.startswith(("cannot connect to the database: ", "invalid connection string: "))
