"""Execution rows in PostgreSQL (schema from ../migrations)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from psycopg.rows import class_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from agent_executor.events import ExecutionRequest
from agent_executor.llm import Completion

QUEUED = "queued"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
TERMINAL = frozenset({SUCCEEDED, FAILED})

_COLUMNS = """
    event_id, status, model, output, error, prompt_tokens, completion_tokens, total_tokens,
    attempts, llm_latency_ms, created_at, started_at, finished_at
"""


@dataclass(frozen=True)
class Execution:
    event_id: str
    status: str
    model: str
    output: str | None
    error: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None
    attempts: int
    llm_latency_ms: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


class ExecutionStore:
    """Every statement runs in its own committed transaction (autocommit connections)."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, conninfo: str, max_size: int = 4, wait_s: float = 10.0) -> ExecutionStore:
        pool = AsyncConnectionPool(
            conninfo,
            min_size=1,
            max_size=max_size,
            kwargs={"autocommit": True},
            open=False,
        )
        await pool.open(wait=True, timeout=wait_s)
        return cls(pool)

    async def close(self) -> None:
        await self._pool.close()

    async def create(self, request: ExecutionRequest, model: str) -> bool:
        """Record a queued execution; return False when the event id is already known."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                """
                INSERT INTO executions (event_id, event_source, event_type, model, input)
                VALUES (%s, %s, %s, %s, %s)
                ON CONFLICT (event_id) DO NOTHING
                """,
                (request.id, request.source, request.type, model, Jsonb(request.data)),
            )
            return cur.rowcount == 1

    async def get(self, event_id: str) -> Execution | None:
        return await self._one(f"SELECT {_COLUMNS} FROM executions WHERE event_id = %s", event_id)

    async def start(self, event_id: str) -> Execution | None:
        """Move a non-terminal execution to running; None when it has already finished."""
        return await self._one(
            f"""
            UPDATE executions
               SET status = 'running', attempts = attempts + 1,
                   started_at = now(), updated_at = now()
             WHERE event_id = %s AND status IN ('queued', 'running')
            RETURNING {_COLUMNS}
            """,
            event_id,
        )

    async def succeed(self, event_id: str, completion: Completion, latency_ms: int) -> Execution:
        row = await self._one(
            f"""
            UPDATE executions
               SET status = 'succeeded', output = %s, model = %s,
                   prompt_tokens = %s, completion_tokens = %s, total_tokens = %s,
                   llm_latency_ms = %s, error = NULL, finished_at = now(), updated_at = now()
             WHERE event_id = %s AND status = 'running'
            RETURNING {_COLUMNS}
            """,
            completion.content,
            completion.model,
            completion.prompt_tokens,
            completion.completion_tokens,
            completion.total_tokens,
            latency_ms,
            event_id,
        )
        return row or await self._existing(event_id)

    async def fail(self, event_id: str, error: str, latency_ms: int | None) -> Execution:
        row = await self._one(
            f"""
            UPDATE executions
               SET status = 'failed', error = %s, llm_latency_ms = %s,
                   finished_at = now(), updated_at = now()
             WHERE event_id = %s AND status = 'running'
            RETURNING {_COLUMNS}
            """,
            error,
            latency_ms,
            event_id,
        )
        return row or await self._existing(event_id)

    async def _existing(self, event_id: str) -> Execution:
        # Another worker finished first (e.g. after our lease lapsed): its outcome stands.
        row = await self.get(event_id)
        if row is None:
            raise LookupError(f"execution {event_id!r} disappeared")
        return row

    async def _one(self, query: str, *params: object) -> Execution | None:
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(Execution))
            await cur.execute(query, params)  # type: ignore[arg-type]
            return await cur.fetchone()
