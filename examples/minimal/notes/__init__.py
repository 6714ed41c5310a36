"""A tiny data layer over the notes table (migrations/0001_notes.sql)."""

import os

import psycopg


def connect() -> psycopg.Connection:
    """A connection to the PostgreSQL testbed started (it sets the POSTGRES_* variables)."""
    return psycopg.connect(
        host=os.environ["POSTGRES_HOST"],
        port=os.environ["POSTGRES_PORT"],
        user=os.environ["POSTGRES_USER"],
        password=os.environ["POSTGRES_PASSWORD"],
        dbname=os.environ["POSTGRES_DB"],
    )


def add(conn: psycopg.Connection, body: str) -> int:
    row = conn.execute("INSERT INTO notes (body) VALUES (%s) RETURNING id", (body,)).fetchone()
    assert row is not None
    return int(row[0])


def bodies(conn: psycopg.Connection) -> list[str]:
    return [row[0] for row in conn.execute("SELECT body FROM notes ORDER BY id")]
