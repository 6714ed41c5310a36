import asyncio
import os
import uuid

import nats
import psycopg
import redis
from basic_app import dsn


def test_postgres_migrated_and_configured():
    with psycopg.connect(dsn()) as conn:
        conn.execute("INSERT INTO items (name) VALUES ('a')")
        assert conn.execute("SHOW max_prepared_transactions").fetchone()[0] == "7"
        versions = [row[0] for row in conn.execute("SELECT version FROM testbed_schema_migrations ORDER BY 1")]
        assert versions == [1, 2]


def test_dragonfly_slot_answers():
    client = redis.Redis(host=os.environ["DRAGONFLY_HOST"], port=int(os.environ["DRAGONFLY_PORT"]))
    assert client.set("k", "v") and client.get("k") == b"v"


def test_nats_jetstream():
    name = f"BASIC_{uuid.uuid4().hex[:8]}"  # unique: the suite may re-run against the same servers

    async def check():
        nc = await nats.connect(os.environ["NATS_URL"])
        js = nc.jetstream()
        await js.add_stream(name=name, subjects=[f"{name}.>"])
        ack = await js.publish(f"{name}.one", b"x")
        await js.delete_stream(name)
        await nc.close()
        return ack.seq

    assert asyncio.run(check()) == 1


def test_environment_flags():
    assert os.environ["TESTING"] == "true" and os.environ["DISABLE_VAULT_AUTH"] == "true"
    if os.environ.get("BASIC_FAIL") == "1":
        raise AssertionError("failing on purpose")
