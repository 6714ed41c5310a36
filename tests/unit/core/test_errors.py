"""The exit-code table is ExitCode: each code's meaning lives there, and the step summary says it."""

from __future__ import annotations

import pytest

from testbed.core import errors
from testbed.core.errors import ExitCode, worst
from testbed.report.github.summary import step_summary


@pytest.mark.parametrize("code", list(ExitCode))
def test_every_code_has_a_meaning_and_the_step_summary_says_it(code: ExitCode) -> None:
    report = {"service": "svc", "exit_code": int(code), "result": "passed" if code == 0 else "failed",
              "phases": [], "tests": None, "coverage": None}
    text = step_summary(report)
    assert code.meaning
    if code:
        assert f"(exit {int(code)}: {code.meaning})" in text.splitlines()[0]


def test_the_summary_of_exit_15_explains_the_deadline() -> None:
    report = {"service": "svc", "exit_code": 15, "result": "failed", "phases": [], "tests": None, "coverage": None}
    assert "(exit 15: the tests phase outlived tests.deadline" in step_summary(report)


@pytest.mark.parametrize(("codes", "expected"), [
    ([0, 1, 5], 5), ([1, 12], 12), ([14, 130], 130), ([143, 130], 143), ([], 0),
])
def test_worst_ranks_signals_over_testbed_over_pytest(codes: list[int], expected: int) -> None:
    assert worst(codes) == expected


@pytest.mark.parametrize(("codes", "expected"), [
    ([], 0),
    ([0, 1, 5], 5),  # among test outcomes, the larger code
    ([1, 10], 10),  # a setup failure (10 and up) over any test outcome
    ([14, 12, 1], 14),
    ([130, 15, 1], 130),  # an interrupted shard over everything
    ([143, 130], 143),
])
def test_merge_reports_the_worst_exit_code(codes: list[int], expected: int) -> None:
    assert errors.worst(codes) == expected
