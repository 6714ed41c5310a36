"""Per-test view of the real servers: publish requests, read results, inspect rows."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import nats.js.errors
import psycopg
from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo, StreamConfig
from redis.asyncio import Redis

from agent_executor.config import Settings
from agent_executor.lease import lease_key
from agent_executor.worker import Worker

T = TypeVar("T")


async def wait_for(
    probe: Callable[[], Awaitable[T | None]], *, timeout: float = 10.0, what: str = "condition"
) -> T:
    """Poll `probe` until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await probe()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a worker process use `settings`."""
    return {
        "POSTGRES_HOST": settings.postgres_host,
        "POSTGRES_PORT": str(settings.postgres_port),
        "POSTGRES_USER": settings.postgres_user,
        "POSTGRES_PASSWORD": settings.postgres_password,
        "POSTGRES_DB": settings.postgres_db,
        "DRAGONFLY_HOST": settings.dragonfly_host,
        "DRAGONFLY_PORT": str(settings.dragonfly_port),
        "NATS_URL": settings.nats_url,
        "OPENAI_API_KEY": settings.openai_api_key,
        "OPENAI_BASE_URL": settings.openai_base_url,
        "AGENT_EXECUTOR_STREAM": settings.stream,
        "AGENT_EXECUTOR_SUBJECT_PREFIX": settings.subject_prefix,
        "AGENT_EXECUTOR_DURABLE": settings.durable,
        "AGENT_EXECUTOR_ACK_WAIT_S": str(settings.ack_wait_s),
        "AGENT_EXECUTOR_LEASE_TTL_MS": str(settings.lease_ttl_ms),
        "AGENT_EXECUTOR_LLM_TIMEOUT_S": str(settings.llm_timeout_s),
        "AGENT_EXECUTOR_LLM_MAX_RETRIES": str(settings.llm_max_retries),
        "AGENT_EXECUTOR_LLM_BACKOFF_S": str(settings.llm_backoff_s),
    }


@dataclass
class Harness:
    settings: Settings
    js: JetStreamContext
    db: psycopg.AsyncConnection[dict[str, Any]]
    redis: Redis
    tmp_path: Path
    event_ids: list[str] = field(default_factory=list)
    processes: list[asyncio.subprocess.Process] = field(default_factory=list)

    # -- setup / teardown -------------------------------------------------------------

    async def create_stream(self) -> None:
        # Same layout the worker creates, so requests can be published before it starts.
        await self.js.add_stream(
            StreamConfig(
                name=self.settings.stream,
                subjects=[f"{self.settings.subject_prefix}.>"],
                duplicate_window=120.0,
            )
        )

    async def cleanup(self) -> None:
        for proc in self.processes:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await self.js.delete_stream(self.settings.stream)
        if self.event_ids:
            await self.db.execute(
                "DELETE FROM executions WHERE event_id = ANY(%s)", (self.event_ids,)
            )
            await self.redis.delete(*(lease_key(e) for e in self.event_ids))

    # -- requests ---------------------------------------------------------------------

    def new_event_id(self) -> str:
        event_id = f"test-{uuid.uuid4()}"
        self.event_ids.append(event_id)
        return event_id

    def request_event(
        self, event_id: str | None = None, *, data: dict[str, Any] | None = None, **attrs: Any
    ) -> dict[str, Any]:
        event_id = event_id or self.new_event_id()
        event: dict[str, Any] = {
            "specversion": "1.0",
            "id": event_id,
            "source": "/tests/agent-executor",
            "type": "agent.execute.requested",
            "time": "2025-01-01T00:00:00Z",
            "datacontenttype": "application/json",
            "data": data if data is not None else {"prompt": f"Say hello ({event_id})"},
        }
        event.update(attrs)
        return event

    async def publish(self, event: dict[str, Any] | bytes) -> int:
        """Publish to the requested subject; return the stream sequence."""
        payload = event if isinstance(event, bytes) else json.dumps(event).encode()
        ack = await self.js.publish(self.settings.requested_subject, payload)
        return ack.seq

    # -- results ----------------------------------------------------------------------

    async def messages(self, subject: str) -> list[tuple[dict[str, str], dict[str, Any]]]:
        """Every message stored on `subject` in the test's stream: (headers, event)."""
        found: list[tuple[dict[str, str], dict[str, Any]]] = []
        seq = 1
        while True:
            try:
                msg = await self.js.get_msg(
                    self.settings.stream, seq=seq, subject=subject, next=True
                )
            except nats.js.errors.NotFoundError:
                return found
            found.append((msg.headers or {}, json.loads(msg.data or b"{}")))
            seq = (msg.seq or seq) + 1

    async def results(self, event_id: str, subject: str) -> list[dict[str, Any]]:
        return [e for _, e in await self.messages(subject) if e["data"]["request_id"] == event_id]

    async def wait_for_result(
        self, event_id: str, subject: str | None = None, timeout: float = 10.0
    ) -> dict[str, Any]:
        subject = subject or self.settings.completed_subject

        async def probe() -> dict[str, Any] | None:
            found = await self.results(event_id, subject)
            return found[0] if found else None

        return await wait_for(probe, timeout=timeout, what=f"{subject} for {event_id}")

    async def consumer(self) -> ConsumerInfo:
        return await self.js.consumer_info(self.settings.stream, self.settings.durable)

    async def wait_until_settled(self, timeout: float = 10.0) -> ConsumerInfo:
        """Wait until the consumer has nothing pending and nothing awaiting an ack."""

        async def probe() -> ConsumerInfo | None:
            info = await self.consumer()
            return info if info.num_pending == 0 and info.num_ack_pending == 0 else None

        return await wait_for(probe, timeout=timeout, what="every message acknowledged")

    # -- database ---------------------------------------------------------------------

    async def rows(self, event_id: str) -> list[dict[str, Any]]:
        cur = await self.db.execute("SELECT * FROM executions WHERE event_id = %s", (event_id,))
        return await cur.fetchall()

    async def row(self, event_id: str) -> dict[str, Any] | None:
        rows = await self.rows(event_id)
        assert len(rows) <= 1
        return rows[0] if rows else None

    # -- workers ----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def worker(self, **overrides: Any) -> AsyncIterator[Worker]:
        """Run an in-process worker for the duration of the block."""
        worker = await Worker.connect(replace(self.settings, **overrides))
        task = asyncio.create_task(worker.run())
        try:
            await wait_for(self.consumer_exists, what="worker subscribed")
            yield worker
        finally:
            worker.stop()
            await task
            await worker.close()

    async def consumer_exists(self) -> bool:
        try:
            await self.consumer()
        except nats.js.errors.NotFoundError:
            return False
        return True

    async def spawn_worker(self, **env: str) -> asyncio.subprocess.Process:
        """Start `python -m agent_executor` as a separate process, logging to worker.log."""
        with self.worker_log.open("ab") as log:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "agent_executor",
                env={**os.environ, **settings_env(self.settings), **env},
                stdout=log,
                stderr=log,
            )
        self.processes.append(proc)
        return proc

    @property
    def worker_log(self) -> Path:
        return self.tmp_path / "worker.log"
