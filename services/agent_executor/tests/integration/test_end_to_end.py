"""Publish a request CloudEvent, get a result CloudEvent and an execution row."""

from __future__ import annotations

from agent_executor.events import result_event_id
from tests.integration.fake_llm import FakeLLM
from tests.integration.harness import Harness


async def test_cloudevent_processing_end_to_end_success(
    harness: Harness, fake_llm: FakeLLM
) -> None:
    event_id = harness.new_event_id()
    prompt = f"Summarise the release notes ({event_id})"
    request = harness.request_event(
        event_id,
        data={
            "prompt": prompt,
            "model": "gpt-4o-mini",
            "system": "Be terse.",
            "max_tokens": 64,
            "temperature": 0.2,
        },
    )

    async with harness.worker():
        await harness.publish(request)
        result = await harness.wait_for_result(event_id)
        await harness.wait_until_settled()

    # The result is a CloudEvent announcing the output, keyed to the request.
    assert result["specversion"] == "1.0"
    assert result["type"] == "agent.execute.completed"
    assert result["id"] == result_event_id(event_id)
    assert result["subject"] == event_id
    data = result["data"]
    assert data["status"] == "succeeded"
    assert data["output"] == f"Echo: {prompt}"
    assert data["usage"]["total_tokens"] == (
        data["usage"]["prompt_tokens"] + data["usage"]["completion_tokens"]
    )
    [(headers, _)] = await harness.messages(harness.settings.completed_subject)
    assert headers["Nats-Msg-Id"] == result["id"]

    # The row holds input, output, token usage and timings.
    row = await harness.row(event_id)
    assert row is not None
    assert row["status"] == "succeeded"
    assert row["input"]["prompt"] == prompt
    assert row["event_source"] == "/tests/agent-executor"
    assert row["output"] == f"Echo: {prompt}"
    assert row["model"].startswith("gpt-4o-mini")
    assert row["total_tokens"] == data["usage"]["total_tokens"] > 0
    assert row["attempts"] == 1
    assert row["error"] is None
    assert row["created_at"] <= row["started_at"] <= row["finished_at"]
    assert row["llm_latency_ms"] is not None

    assert fake_llm.calls(event_id) == 1
    assert await harness.results(event_id, harness.settings.failed_subject) == []


async def test_default_model_is_used_when_the_event_names_none(
    harness: Harness, fake_llm: FakeLLM
) -> None:
    event_id = harness.new_event_id()
    async with harness.worker(default_model="gpt-test-default"):
        await harness.publish(harness.request_event(event_id))
        result = await harness.wait_for_result(event_id)

    assert result["data"]["model"].startswith("gpt-test-default")
    row = await harness.row(event_id)
    assert row is not None
    assert row["input"] == {"prompt": f"Say hello ({event_id})"}


async def test_many_events_each_get_one_row_and_one_result(
    harness: Harness, fake_llm: FakeLLM
) -> None:
    event_ids = [harness.new_event_id() for _ in range(8)]
    async with harness.worker(concurrency=4):
        for event_id in event_ids:
            await harness.publish(harness.request_event(event_id))
        for event_id in event_ids:
            await harness.wait_for_result(event_id)
        await harness.wait_until_settled()

    completed = await harness.messages(harness.settings.completed_subject)
    assert sorted(e["data"]["request_id"] for _, e in completed) == sorted(event_ids)
    for event_id in event_ids:
        row = await harness.row(event_id)
        assert row is not None
        assert row["status"] == "succeeded"
