"""The tests phase: when pytest's exit 0 cannot be believed (os._exit(0), no report, counts that disagree)."""

from __future__ import annotations

import pytest

from testbed.core.junit import JUnitSummary
from testbed.phases.tests import untrusted_result


@pytest.mark.parametrize(("rc", "summary", "empty_group", "why"), [
    (0, None, False, "pytest exited 0 but wrote no JUnit report (a test or conftest called os._exit?)"),
    (0, JUnitSummary(problem="empty file"), False, "pytest exited 0 but its JUnit report is unreadable (empty file)"),
    (0, JUnitSummary(), False, "pytest exited 0 but its JUnit report lists no tests"),
    (0, JUnitSummary(passed=3, failed=1, errors=2), False,
     "pytest exited 0 but its JUnit report lists 1 failed and 2 errors"),
    (0, JUnitSummary(passed=1, errors=1), False, "pytest exited 0 but its JUnit report lists 0 failed and 1 errors"),
])
def test_an_exit_0_the_report_does_not_back_is_not_a_pass(
    rc: int, summary: JUnitSummary | None, empty_group: bool, why: str
) -> None:
    assert untrusted_result(rc, summary, empty_group=empty_group) == why


@pytest.mark.parametrize(("rc", "summary", "empty_group"), [
    (0, JUnitSummary(passed=4, skipped=1), False),
    (0, JUnitSummary(), True),  # a shard whose group is empty ran no test on purpose
    (1, None, False),  # a failure is believed as it is: pytest's own code stands
    (5, JUnitSummary(), False),
])
def test_a_report_that_agrees_or_a_failure_is_believed(
    rc: int, summary: JUnitSummary | None, empty_group: bool
) -> None:
    assert untrusted_result(rc, summary, empty_group=empty_group) is None
