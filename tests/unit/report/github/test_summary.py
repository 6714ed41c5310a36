"""The step summary: its table, the phases' Gantt chart, and the size GitHub allows."""


import re

from support.reports import REPORT, failures
from testbed.core.junit import Failure
from testbed.report import github

# ------------------------------------------------------------------ step summary



TASK_LINE = re.compile(r"^    [^:#;%\n]+ : (crit, |active, )?p\d+, (after p\d+|\d+), \d+ms$")


def _mermaid_block(markdown: str) -> list[str]:
    lines = markdown.splitlines()
    start = lines.index("```mermaid")
    end = lines.index("```", start)
    return lines[start + 1 : end]


def test_step_summary_content():
    text = github.step_summary(REPORT, failures(2))
    assert text.startswith("## ❌ agent_executor integration tests: failed (exit 1: tests failed)")
    assert "| Preflight | ✅ ok | 0.4s |" in text
    assert "| Tests: run | ❌ failed | 3.2s |" in text
    assert "| 1 | 1 | 0 | 0 | 3.2s |" in text
    assert "**Coverage:** 87.5%" in text
    assert "`/abs/path/runs/gh-123-1-integration-ab12`" in text
    assert "tests/test_x.py:1" in text


def test_step_summary_mermaid_gantt_uses_whole_second_starts():
    block = _mermaid_block(github.step_summary(REPORT))
    assert block[0] == "gantt"
    assert "    dateFormat X" in block
    assert "    axisFormat %s" in block
    sections = [line for line in block if line.startswith("    section ")]
    tasks = [line for line in block if " : " in line]
    assert sections == ["    section Preflight", "    section Servers", "    section Tests run"]
    assert len(tasks) == 3
    for task in tasks:
        assert TASK_LINE.match(task), task
    # Contiguous phases chain with `after` (exact), a gap falls back to whole seconds.
    assert tasks[0].endswith("p0, 0, 400ms")
    assert tasks[1].endswith("p1, after p0, 12250ms")
    assert tasks[2].endswith("crit, p2, 15, 3200ms")


def test_step_summary_when_tests_never_ran():
    report = {**REPORT, "tests": None, "coverage": None, "exit_code": 13, "result": "failed"}
    text = github.step_summary(report)
    assert "(exit 13: migrations failed)" in text
    assert "Tests did not run." in text
    assert "**Coverage:** n/a" in text


def test_step_summary_passed():
    text = github.step_summary({**REPORT, "exit_code": 0, "result": "passed", "phases": []})
    assert text.startswith("## ✅ agent_executor integration tests: passed\n")
    assert "```mermaid" not in text


def test_step_summary_stays_under_one_mib_for_a_huge_report():
    phases = [
        {
            "name": f"p{i}",
            "title": "Phase " + "x" * 500 + " | é",
            "status": "ok",
            "started": 1.0 * i,
            "duration": 1,
        }
        for i in range(20_000)
    ]
    failures = [Failure(f"t::test_{i}", "m" * 5000, "f.py", i) for i in range(50_000)]
    report = {**REPORT, "phases": phases, "run_folder": "/r/" + "d" * 100_000}
    text = github.step_summary(report, failures)
    assert len(text.encode()) < 1024 * 1024
    assert "19900 more phases not shown here" in text
    assert "```mermaid" in text
    assert len([line for line in _mermaid_block(text) if " : " in line]) <= 40
    assert "49950 more failures not shown here (see junit.xml)" in text.split("### Failures")[1]


def test_step_summary_respects_a_small_budget():
    text = github.step_summary(REPORT, failures(500), max_bytes=3000)
    assert len(text.encode()) <= 3000
    # The section fits its first rows and counts the rest: shown + not shown is every failure.
    section = text.split("### Failures\n", 1)[1] if "### Failures\n" in text else ""
    shown = [line for line in section.splitlines() if line.startswith("- `tests.test_x::test_")]
    not_shown = re.search(r"(\d+) more failures not shown here", section)
    assert shown and not_shown and len(shown) + int(not_shown[1]) == 500, text
    assert len(github.step_summary(REPORT, max_bytes=10).encode()) <= 10
