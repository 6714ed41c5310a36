"""LLM failures: bounded retries, then a failed row and an agent.execute.failed event."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.fake_llm import FakeLLM, Reply
from tests.integration.harness import Harness


async def run_one(harness: Harness, fake_llm: FakeLLM, *replies: Reply, **overrides: Any) -> str:
    event_id = harness.new_event_id()
    fake_llm.script(event_id, *replies)
    async with harness.worker(**overrides):
        await harness.publish(harness.request_event(event_id))
        await harness.wait_until_settled()
    return event_id


@pytest.mark.parametrize("status", [500, 429])
async def test_llm_error_gives_failed_row_and_failed_event(
    harness: Harness, fake_llm: FakeLLM, status: int
) -> None:
    # Every attempt fails: 1 try + 2 retries, then the execution is failed for good.
    event_id = await run_one(harness, fake_llm, *[Reply(status=status)] * 3)

    assert fake_llm.calls(event_id) == 3
    row = await harness.row(event_id)
    assert row is not None
    assert row["status"] == "failed"
    assert f"HTTP {status}" in row["error"]
    assert "gave up after 3 attempts" in row["error"]
    assert row["output"] is None
    assert row["total_tokens"] is None
    assert row["finished_at"] is not None

    [failed] = await harness.results(event_id, harness.settings.failed_subject)
    assert failed["type"] == "agent.execute.failed"
    assert failed["data"]["status"] == "failed"
    assert failed["data"]["error"] == row["error"]
    assert await harness.results(event_id, harness.settings.completed_subject) == []


async def test_non_retryable_error_fails_at_once(harness: Harness, fake_llm: FakeLLM) -> None:
    invalid = Reply(status=400, body={"error": {"message": "model does not exist"}})
    event_id = await run_one(harness, fake_llm, invalid)

    assert fake_llm.calls(event_id) == 1
    row = await harness.row(event_id)
    assert row is not None
    assert row["status"] == "failed"
    assert "HTTP 400: model does not exist" in row["error"]
    assert len(await harness.results(event_id, harness.settings.failed_subject)) == 1


async def test_malformed_llm_response_fails(harness: Harness, fake_llm: FakeLLM) -> None:
    event_id = await run_one(harness, fake_llm, Reply(body={"choices": []}))

    row = await harness.row(event_id)
    assert row is not None
    assert row["status"] == "failed"
    assert "malformed LLM response" in row["error"]


@pytest.mark.parametrize(
    "transient",
    [
        Reply(status=503, raw=b"upstream unavailable"),
        Reply(status=429, headers={"Retry-After": "0.05"}),
        Reply(delay_s=2.0),  # longer than the client timeout below
    ],
    ids=["503 with a text body", "429 with Retry-After", "timeout"],
)
async def test_transient_llm_error_is_retried(
    harness: Harness, fake_llm: FakeLLM, transient: Reply
) -> None:
    event_id = await run_one(harness, fake_llm, transient, llm_timeout_s=0.5)

    assert fake_llm.calls(event_id) == 2
    row = await harness.row(event_id)
    assert row is not None
    assert row["status"] == "succeeded"
    assert row["attempts"] == 1  # one execution; the retries are inside the LLM client
    assert len(await harness.results(event_id, harness.settings.completed_subject)) == 1


async def test_unreachable_llm_fails_after_retries(harness: Harness, fake_llm: FakeLLM) -> None:
    event_id = await run_one(
        harness, fake_llm, openai_base_url="http://127.0.0.1:9/v1", llm_max_retries=1
    )

    row = await harness.row(event_id)
    assert row is not None
    assert row["status"] == "failed"
    assert "transport error" in row["error"]
    assert "gave up after 2 attempts" in row["error"]
