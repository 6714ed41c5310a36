"""The durable pull consumer: acknowledgement, and redelivery after a worker dies."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import psycopg
import pytest

from agent_executor.lease import lease_key
from agent_executor.worker import Worker
from tests.integration.fake_llm import FakeLLM, Reply
from tests.integration.harness import Harness, wait_for


async def test_nats_consumer_processing(harness: Harness, fake_llm: FakeLLM) -> None:
    settings = harness.settings

    # 1. A healthy worker acknowledges what it processed.
    first = harness.new_event_id()
    async with harness.worker():
        seq = await harness.publish(harness.request_event(first))
        await harness.wait_for_result(first)
        info = await harness.wait_until_settled()
    assert info.ack_floor is not None
    assert info.ack_floor.stream_seq >= seq
    assert info.num_redelivered == 0

    # 2. A worker dies after committing the row and publishing the result, before its ack.
    second = harness.new_event_id()
    await harness.publish(harness.request_event(second))
    doomed = await Worker.connect(settings)
    sub = await doomed.subscribe()
    [msg] = await sub.fetch(1, timeout=5)
    disposition = await doomed.process(msg)  # everything but the ack
    assert disposition.ack
    await doomed.nc.close()  # dies: the connection goes away, the message is never acked
    await doomed.llm.aclose()
    await doomed.redis.aclose()
    await doomed.store.close()

    row = await harness.row(second)
    assert row is not None
    assert row["status"] == "succeeded"
    assert (await harness.consumer()).num_ack_pending == 1

    # 3. JetStream redelivers after ack_wait; a new worker settles it without a second effect.
    async with harness.worker():
        info = await harness.wait_until_settled(timeout=15)
    assert info.delivered is not None
    assert info.delivered.consumer_seq == 3  # first, second, and the second's redelivery
    assert fake_llm.calls(second) == 1
    [row] = await harness.rows(second)
    assert row["status"] == "succeeded"
    assert row["attempts"] == 1
    # The re-published result was dropped by JetStream as a duplicate (same Nats-Msg-Id).
    assert len(await harness.results(second, settings.completed_subject)) == 1


async def test_worker_killed_mid_execution_is_redelivered_and_processed_once(
    harness: Harness, fake_llm: FakeLLM
) -> None:
    event_id = harness.new_event_id()
    # The first LLM call hangs, so the worker is mid-execution (row "running", lease held).
    fake_llm.script(event_id, Reply(delay_s=60))
    await harness.create_stream()
    await harness.publish(harness.request_event(event_id))

    proc = await harness.spawn_worker()

    async def running() -> bool:
        row = await harness.row(event_id)
        return row is not None and row["status"] == "running" and fake_llm.calls(event_id) == 1

    await wait_for(running, timeout=20, what="the worker process to start executing")
    assert await harness.redis.exists(lease_key(event_id))
    proc.send_signal(signal.SIGKILL)
    assert await proc.wait() == -signal.SIGKILL

    # Nothing was acknowledged; the lease expires on its own (no one is left to release it).
    assert (await harness.consumer()).num_ack_pending == 1
    async with harness.worker():
        result = await harness.wait_for_result(event_id, timeout=15)
        await harness.wait_until_settled()

    assert result["data"]["status"] == "succeeded"
    [row] = await harness.rows(event_id)
    assert row["status"] == "succeeded"
    assert row["attempts"] == 2  # the killed attempt, then the one that finished
    assert fake_llm.calls(event_id) == 2
    assert len(await harness.results(event_id, harness.settings.completed_subject)) == 1
    assert not await harness.redis.exists(lease_key(event_id))


async def test_worker_process_stops_gracefully_on_sigterm(
    harness: Harness, fake_llm: FakeLLM
) -> None:
    event_id = harness.new_event_id()
    proc = await harness.spawn_worker()
    await wait_for(harness.consumer_exists, timeout=20, what="the worker process to subscribe")
    await harness.publish(harness.request_event(event_id))
    await harness.wait_for_result(event_id)
    await harness.wait_until_settled()

    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), timeout=10) == 0


async def test_transient_failure_releases_the_lease_and_the_redelivery_completes(
    harness: Harness, fake_llm: FakeLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    event_id = harness.new_event_id()
    async with harness.worker() as worker:
        # The database drops the connection once, as the result is being written.
        succeed = worker.store.succeed
        failures = [psycopg.OperationalError("server closed the connection unexpectedly")]

        async def flaky_succeed(*args: Any, **kwargs: Any) -> Any:
            if failures:
                raise failures.pop()
            return await succeed(*args, **kwargs)

        monkeypatch.setattr(worker.store, "succeed", flaky_succeed)
        await harness.publish(harness.request_event(event_id))
        result = await harness.wait_for_result(event_id)
        await harness.wait_until_settled()

    assert not failures
    assert result["data"]["status"] == "succeeded"
    [row] = await harness.rows(event_id)
    assert row["status"] == "succeeded"
    assert row["attempts"] == 2  # the failed attempt was retried, not lost or doubled
    assert fake_llm.calls(event_id) == 2
    assert len(await harness.results(event_id, harness.settings.completed_subject)) == 1
    assert not await harness.redis.exists(lease_key(event_id))
