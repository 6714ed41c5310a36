"""The same event id delivered more than once has one effect."""

from __future__ import annotations

from tests.integration.fake_llm import FakeLLM, Reply
from tests.integration.harness import Harness


async def test_duplicate_event_processed_once(harness: Harness, fake_llm: FakeLLM) -> None:
    event_id = harness.new_event_id()
    event = harness.request_event(event_id)

    async with harness.worker():
        await harness.publish(event)
        await harness.wait_for_result(event_id)
        await harness.wait_until_settled()
        # The producer sends it again, later (e.g. it retried after a lost publish ack).
        await harness.publish(event)
        info = await harness.wait_until_settled()

    assert info.delivered is not None
    assert info.delivered.stream_seq >= 2  # both copies reached the worker
    assert fake_llm.calls(event_id) == 1
    [row] = await harness.rows(event_id)
    assert row["status"] == "succeeded"
    assert row["attempts"] == 1
    assert len(await harness.results(event_id, harness.settings.completed_subject)) == 1


async def test_concurrent_duplicates_call_the_llm_once(harness: Harness, fake_llm: FakeLLM) -> None:
    event_id = harness.new_event_id()
    event = harness.request_event(event_id)
    # A slow answer keeps the first delivery in flight while the copy arrives.
    fake_llm.script(event_id, Reply(delay_s=0.5))
    await harness.create_stream()
    for _ in range(3):
        await harness.publish(event)

    # Two workers on the same durable consumer, each handling a batch concurrently.
    async with harness.worker(concurrency=4), harness.worker(concurrency=4):
        await harness.wait_for_result(event_id)
        info = await harness.wait_until_settled(timeout=15)

    assert info.delivered is not None
    assert info.delivered.consumer_seq > 3  # the copies were put back while the lease was held
    assert fake_llm.calls(event_id) == 1
    [row] = await harness.rows(event_id)
    assert row["status"] == "succeeded"
    assert row["attempts"] == 1
    assert len(await harness.results(event_id, harness.settings.completed_subject)) == 1
