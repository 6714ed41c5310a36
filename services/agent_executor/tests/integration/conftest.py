"""Fixtures for the integration suite.

The servers (PostgreSQL with the migrations applied, Dragonfly/Redis, NATS JetStream)
come from the environment, exactly as the worker reads it. Each test gets its own
stream, subjects and durable consumer, and removes its rows, leases and stream after
itself, so tests can run in any order and two runs can share the same servers.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import nats
import psycopg
import pytest
from psycopg.rows import dict_row
from redis.asyncio import Redis

from agent_executor.config import ConfigError, Settings
from tests.integration.fake_llm import PLACEHOLDER_API_KEY, FakeLLM
from tests.integration.harness import Harness

LIVE_LLM = os.environ.get("AGENT_EXECUTOR_LIVE_LLM") == "1"


@pytest.fixture(scope="session")
def fake_llm_server() -> Iterator[FakeLLM | None]:
    if LIVE_LLM:
        yield None
        return
    server = FakeLLM()
    yield server
    server.close()


@pytest.fixture
def fake_llm(fake_llm_server: FakeLLM | None) -> Iterator[FakeLLM]:
    if fake_llm_server is None:
        pytest.skip("the local LLM endpoint is switched off (AGENT_EXECUTOR_LIVE_LLM=1)")
    fake_llm_server.reset()
    yield fake_llm_server
    fake_llm_server.reset()


@pytest.fixture(scope="session")
def base_settings(fake_llm_server: FakeLLM | None) -> Settings:
    env = dict(os.environ)
    if fake_llm_server is None and not env.get("OPENAI_API_KEY"):
        pytest.skip("AGENT_EXECUTOR_LIVE_LLM=1 needs a real OPENAI_API_KEY")
    if fake_llm_server is not None:
        env["OPENAI_API_KEY"] = PLACEHOLDER_API_KEY
        env["OPENAI_BASE_URL"] = fake_llm_server.base_url
    try:
        return Settings.from_env(env)
    except ConfigError as exc:
        pytest.fail(f"the integration tests need the servers' environment: {exc}")


@pytest.fixture
def settings(base_settings: Settings) -> Settings:
    """Settings private to one test, with short timings so redelivery takes ~1 s."""
    suffix = uuid.uuid4().hex[:12]
    return replace(
        base_settings,
        stream=f"AE_TEST_{suffix}",
        subject_prefix=f"test.{suffix}.agent.execute",
        durable=f"ae-test-{suffix}",
        ack_wait_s=1.0,
        lease_ttl_ms=1500,
        llm_timeout_s=5.0 if not base_settings.openai_base_url.startswith("https") else 60.0,
        llm_max_retries=2,
        llm_backoff_s=0.01,
    )


@pytest.fixture
async def harness(settings: Settings, tmp_path: Path) -> AsyncIterator[Harness]:
    nc = await nats.connect(settings.nats_url, name="agent_executor-tests")
    db = await psycopg.AsyncConnection.connect(
        settings.postgres_conninfo, autocommit=True, row_factory=dict_row
    )
    redis = Redis(host=settings.dragonfly_host, port=settings.dragonfly_port)
    harness = Harness(settings=settings, js=nc.jetstream(), db=db, redis=redis, tmp_path=tmp_path)
    try:
        yield harness
    finally:
        try:
            await harness.cleanup()
        finally:
            await nc.close()
            await db.close()
            await redis.aclose()
