"""The JetStream worker: one execution per CloudEvent id, whatever the redeliveries."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Self

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, Header, StreamConfig
from redis.asyncio import Redis

from agent_executor.config import Settings
from agent_executor.db import SUCCEEDED, Execution, ExecutionStore
from agent_executor.events import (
    COMPLETED_TYPE,
    CONTENT_TYPE,
    DEADLETTER_TYPE,
    FAILED_TYPE,
    ExecutionRequest,
    InvalidEvent,
    build_event,
    encode,
    parse_request,
    result_event_id,
)
from agent_executor.lease import LeaseManager
from agent_executor.llm import LLMClient, LLMError

log = logging.getLogger(__name__)

# How long one pull request waits for messages before the loop issues the next.
_FETCH_TIMEOUT_S = 0.5
# Deduplication window of the stream: a re-published result inside it is dropped.
_DUPLICATE_WINDOW_S = 120.0


@dataclass(frozen=True)
class Disposition:
    """What to tell JetStream about a message once processing returned."""

    ack: bool
    nak_delay_s: float | None = None


ACK = Disposition(ack=True)


class Worker:
    def __init__(
        self,
        settings: Settings,
        *,
        nc: NATS,
        store: ExecutionStore,
        redis: Redis,
        llm: LLMClient,
    ) -> None:
        self.settings = settings
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()
        self.store = store
        self.redis = redis
        self.leases = LeaseManager(redis, settings.lease_ttl_ms)
        self.llm = llm
        self._stopping = asyncio.Event()

    @classmethod
    async def connect(cls, settings: Settings) -> Self:
        """Connect to every backing service; fail fast if one is unreachable."""
        store = await ExecutionStore.open(
            settings.postgres_conninfo, max_size=settings.concurrency + 1
        )
        redis = Redis(host=settings.dragonfly_host, port=settings.dragonfly_port)
        llm = LLMClient(
            settings.openai_base_url,
            settings.openai_api_key,
            timeout_s=settings.llm_timeout_s,
            max_retries=settings.llm_max_retries,
            backoff_s=settings.llm_backoff_s,
        )
        try:
            await redis.ping()
            nc = await nats.connect(
                settings.nats_url,
                name="agent_executor",
                allow_reconnect=True,
                connect_timeout=5,
                max_reconnect_attempts=-1,
            )
        except BaseException:
            await store.close()
            await redis.aclose()
            await llm.aclose()
            raise
        return cls(settings, nc=nc, store=store, redis=redis, llm=llm)

    async def close(self) -> None:
        await self.nc.drain()
        await self.llm.aclose()
        await self.redis.aclose()
        await self.store.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def stop(self) -> None:
        self._stopping.set()

    async def ensure_stream(self) -> None:
        """Create the stream if missing; it captures requests, results and dead letters."""
        try:
            await self.js.stream_info(self.settings.stream)
        except nats.js.errors.NotFoundError:
            await self.js.add_stream(
                StreamConfig(
                    name=self.settings.stream,
                    subjects=[f"{self.settings.subject_prefix}.>"],
                    duplicate_window=_DUPLICATE_WINDOW_S,
                )
            )

    async def subscribe(self) -> JetStreamContext.PullSubscription:
        await self.ensure_stream()
        return await self.js.pull_subscribe(
            self.settings.requested_subject,
            durable=self.settings.durable,
            stream=self.settings.stream,
            config=ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=self.settings.ack_wait_s,
                max_deliver=self.settings.max_deliver,
            ),
        )

    async def run(self) -> None:
        """Fetch and handle messages until stop() is called."""
        sub = await self.subscribe()
        log.info(
            "consuming %s (stream %s, durable %s)",
            self.settings.requested_subject,
            self.settings.stream,
            self.settings.durable,
        )
        stopping = asyncio.create_task(self._stopping.wait())
        try:
            while not self._stopping.is_set():
                fetch = asyncio.create_task(
                    sub.fetch(self.settings.concurrency, timeout=_FETCH_TIMEOUT_S)
                )
                await asyncio.wait({fetch, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not fetch.done():
                    # Stop now rather than after the fetch expires; a message that this
                    # abandoned pull still draws is redelivered after ack_wait.
                    fetch.cancel()
                    with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                        await fetch
                    break
                try:
                    msgs = fetch.result()
                except TimeoutError:  # nats-py raises both its own and asyncio's
                    continue
                await asyncio.gather(*(self.handle(msg) for msg in msgs))
        finally:
            stopping.cancel()
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()

    async def handle(self, msg: Msg) -> None:
        disposition = await self.process(msg)
        try:
            if disposition.ack:
                # Wait for the server to confirm: the ack is the last step, after the commit.
                await msg.ack_sync()
            else:
                await msg.nak(delay=disposition.nak_delay_s)
        except (nats.errors.Error, TimeoutError):
            # An ack that got lost means a redelivery, which the database absorbs.
            log.warning("could not settle message", exc_info=True)

    async def process(self, msg: Msg) -> Disposition:
        """Apply the message's effect exactly once; return how to settle it. Never acks."""
        try:
            return await self._process(msg)
        except Exception:
            log.exception("processing failed; the message will be redelivered")
            return self._retry_later()

    async def _process(self, msg: Msg) -> Disposition:
        try:
            request = parse_request(msg.data)
        except InvalidEvent as exc:
            await self._dead_letter(msg, str(exc))
            return ACK

        await self.store.create(request, request.model or self.settings.default_model)
        execution = await self.store.get(request.id)
        if execution is None:
            raise LookupError(f"execution {request.id!r} missing right after insert")
        if execution.terminal:
            # Processed before but maybe not announced (died before ack): announce again,
            # JetStream drops the copy if the first one made it.
            await self._publish_result(execution)
            return ACK

        token = await self.leases.acquire(request.id)
        if token is None:
            log.info("event %s is in flight elsewhere; retrying later", request.id)
            return self._retry_later()
        try:
            async with self._keep_alive(msg, request.id, token):
                started = await self.store.start(request.id)
                if started is None:
                    execution = await self.store.get(request.id) or execution
                else:
                    execution = await self._execute(request)
                await self._publish_result(execution)
        finally:
            # Released on success and failure alike; the row now decides what happens next.
            with contextlib.suppress(Exception):
                await self.leases.release(request.id, token)
        return ACK

    async def _execute(self, request: ExecutionRequest) -> Execution:
        started = time.monotonic()
        try:
            completion = await self.llm.complete(
                request.prompt,
                model=request.model or self.settings.default_model,
                system=request.system,
                max_tokens=request.max_tokens,
                temperature=request.temperature,
            )
        except LLMError as exc:
            log.warning("execution %s failed: %s", request.id, exc)
            return await self.store.fail(request.id, str(exc), _elapsed_ms(started))
        return await self.store.succeed(request.id, completion, _elapsed_ms(started))

    @contextlib.asynccontextmanager
    async def _keep_alive(self, msg: Msg, event_id: str, token: str) -> AsyncIterator[None]:
        """While processing runs, hold off redelivery and keep the lease alive."""
        interval = min(self.settings.ack_wait_s, self.settings.lease_ttl_ms / 1000) / 3

        async def beat() -> None:
            while True:
                await asyncio.sleep(interval)
                try:
                    await msg.in_progress()
                    if not await self.leases.refresh(event_id, token):
                        log.warning("lease on %s lapsed while processing", event_id)
                except Exception:
                    log.warning("keep-alive for %s failed", event_id, exc_info=True)

        task = asyncio.create_task(beat())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _publish_result(self, execution: Execution) -> None:
        succeeded = execution.status == SUCCEEDED
        event_id = result_event_id(execution.event_id)
        event = build_event(
            event_type=COMPLETED_TYPE if succeeded else FAILED_TYPE,
            event_id=event_id,
            subject=execution.event_id,
            data={
                "request_id": execution.event_id,
                "status": execution.status,
                "model": execution.model,
                "output": execution.output,
                "error": execution.error,
                "usage": {
                    "prompt_tokens": execution.prompt_tokens,
                    "completion_tokens": execution.completion_tokens,
                    "total_tokens": execution.total_tokens,
                },
                "attempts": execution.attempts,
                "started_at": execution.started_at,
                "finished_at": execution.finished_at,
            },
        )
        subject = self.settings.completed_subject if succeeded else self.settings.failed_subject
        ack = await self.js.publish(
            subject,
            encode(event),
            headers={Header.MSG_ID.value: event_id, "Content-Type": CONTENT_TYPE},
        )
        if ack.duplicate:
            log.info("result for %s was already published", execution.event_id)

    async def _dead_letter(self, msg: Msg, reason: str) -> None:
        log.warning("dead-lettering message: %s", reason)
        seq = msg.metadata.sequence.stream
        # Keyed on the stream sequence: a redelivered invalid message dead-letters once.
        event_id = f"deadletter-{self.settings.stream}-{seq}"
        try:
            original: dict[str, Any] = {"text": msg.data.decode()}
        except UnicodeDecodeError:
            original = {"base64": base64.b64encode(msg.data).decode()}
        event = build_event(
            event_type=DEADLETTER_TYPE,
            event_id=event_id,
            subject=msg.subject,
            data={"reason": reason, "stream_sequence": seq, "original": original},
        )
        await self.js.publish(
            self.settings.deadletter_subject,
            encode(event),
            headers={
                Header.MSG_ID.value: event_id,
                "Content-Type": CONTENT_TYPE,
                "Dead-Letter-Reason": reason[:500],
            },
        )

    def _retry_later(self) -> Disposition:
        return Disposition(ack=False, nak_delay_s=self.settings.lease_ttl_ms / 2000)


def _elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
