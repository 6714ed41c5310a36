"""Against the real OpenAI API; opt-in only."""

from __future__ import annotations

import os

import pytest

from tests.integration.conftest import LIVE_LLM
from tests.integration.harness import Harness

pytestmark = [
    pytest.mark.live_llm,
    pytest.mark.skipif(
        not (LIVE_LLM and os.environ.get("OPENAI_API_KEY")),
        reason="needs a real OPENAI_API_KEY and AGENT_EXECUTOR_LIVE_LLM=1 "
        "(which switches the local LLM endpoint off)",
    ),
]


async def test_live_llm_execution(harness: Harness) -> None:
    event_id = harness.new_event_id()
    data = {"prompt": "Reply with the single word: pong", "max_tokens": 5, "temperature": 0}

    async with harness.worker():
        await harness.publish(harness.request_event(event_id, data=data))
        await harness.wait_until_settled(timeout=120)

    row = await harness.row(event_id)
    assert row is not None
    assert row["status"] == "succeeded", row["error"]
    assert "pong" in row["output"].lower()
    assert row["total_tokens"] > 0
    [result] = await harness.results(event_id, harness.settings.completed_subject)
    assert result["data"]["output"] == row["output"]
