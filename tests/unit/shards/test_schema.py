"""What merge takes from a shard's report.json and state.json: typed, in range, or refused naming the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from testbed.core.errors import TestbedError
from testbed.run.record import ShardInfo
from testbed.shards.folder import REPORT, STATE, Fields
from testbed.shards.schema import Counts, ShardReport, ShardState

GOOD = {
    "run_id": "gh-1-1-it-ab12cd", "service": "agent_executor", "backend": "native", "exit_code": 1,
    "tests": {"passed": 3, "failed": 1, "errors": 0, "skipped": 2, "duration": 4.5}, "coverage": 87.5,
    "duration": 60.0, "phases": [{"name": "tests", "title": "Tests", "status": "failed", "started": 1.7e9,
                                  "duration": 4.5, "line": "❌ Tests: 3 passed, 1 failed"}],
}


def test_a_shard_s_report_is_read_typed(tmp_path: Path) -> None:
    report = ShardReport.parse(Fields(tmp_path, REPORT, GOOD))
    assert (report.run_id, report.service, report.backend, report.exit_code) == (
        "gh-1-1-it-ab12cd", "agent_executor", "native", 1)
    assert report.tests == Counts(passed=3, failed=1, errors=0, skipped=2, duration=4.5)
    assert [(p.name, p.started) for p in report.phases] == [("tests", 1.7e9)]
    assert report.tests.as_dict()["skipped"] == 2


def test_a_report_of_a_run_that_stopped_early_has_no_counts(tmp_path: Path) -> None:
    report = ShardReport.parse(Fields(tmp_path, REPORT, {"exit_code": 10, "service": "", "tests": None}))
    assert (report.tests, report.service, report.backend, report.phases) == (None, "", "?", ())


@pytest.mark.parametrize(("change", "key"), [
    ({"exit_code": 99}, '"exit_code" is 99'),
    ({"service": "../../etc"}, '"service" is'),
    ({"backend": "vm"}, '"backend" is'),
    ({"coverage": 101}, '"coverage" is 101'),
    ({"tests": {"passed": 10_000_001}}, '"tests.passed" is 10000001'),
    ({"phases": [{"name": "Tests!"}]}, '"phases[0].name" is'),
    ({"phases": [{}] * 65}, '"phases" is not a list of at most 64 entries'),
])
def test_an_impossible_value_is_refused_naming_its_key(tmp_path: Path, change: dict[str, Any], key: str) -> None:
    with pytest.raises(TestbedError) as caught:
        ShardReport.parse(Fields(tmp_path, REPORT, {**GOOD, **change}))
    assert f"{REPORT}: {key}" in str(caught.value)


def test_a_shard_s_state_gives_its_split(tmp_path: Path) -> None:
    state = ShardState.parse(Fields(tmp_path, STATE, {
        "run_id": "r-1-abc", "service": "svc", "backend": "docker", "torn_down": 1.7e9,
        "shard": {"index": 2, "count": 3, "durations": "durations.json"}}))
    assert state.split == ShardInfo(2, 3, "durations.json") and state.torn_down and state.backend == "docker"
    assert ShardState.parse(Fields(tmp_path, STATE, {"service": "svc"})).split is None


@pytest.mark.parametrize(("shard", "problem"), [
    ({"index": 4, "count": 3}, '"shard.index" is 4: expected a whole number from 1 to 3'),
    ({"count": 3}, '"shard.index" is missing'),
    ({"index": 1, "count": 0}, '"shard.count" is 0: expected a whole number from 1 to 1000'),
])
def test_an_impossible_split_is_refused(tmp_path: Path, shard: dict[str, int], problem: str) -> None:
    with pytest.raises(TestbedError) as caught:
        ShardState.parse(Fields(tmp_path, STATE, {"service": "svc", "shard": shard}))
    assert str(caught.value).endswith(f"{STATE}: {problem}")
