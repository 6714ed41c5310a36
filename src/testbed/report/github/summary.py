"""The job's step summary: the run's report as Markdown (tests, coverage, phases with a Mermaid gantt, failures),
cut to fit GitHub's size limit."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from testbed.core.errors import ExitCode
from testbed.core.junit import Failure

# GitHub drops a step summary over 1 MiB whole; stay well under it.
SUMMARY_LIMIT_BYTES = 1024 * 1024 - 16 * 1024
_CELL_MAX = 200
_FAILURES_SHOWN = 50
_PHASES_SHOWN = 100
_GANTT_PHASES = 40

_STATUS_EMOJI = {
    "ok": "✅",
    "passed": "✅",
    "failed": "❌",
    "error": "❌",
    "skipped": "⏭️",
    "running": "⏳",
    "interrupted": "⛔",
    "cancelled": "⛔",
}


def _cell(value: object, limit: int = _CELL_MAX) -> str:
    text = " ".join(str(value).split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _code(value: object, limit: int = 1000) -> str:
    text = " ".join(str(value).split()).replace("`", "'")
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return f"`{text}`"


def _seconds(value: object) -> str:
    number = finite_number(value)
    if number is None:
        return "n/a"
    if number < 60:
        return f"{number:.1f}s"
    minutes, seconds = divmod(number, 60)
    return f"{int(minutes)}m {seconds:04.1f}s"


def finite_number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def count_of(tests: Mapping[str, Any], key: str) -> int:
    value = finite_number(tests.get(key))
    return int(value) if value is not None else 0


def _mermaid_label(value: object) -> str:
    # ':' ends a task name, '#' and ';' end a line, '%%' starts a comment.
    text = " ".join(str(value).split())
    for char in ":#;%":
        text = text.replace(char, " ")
    text = " ".join(text.split())[:60]
    return text or "phase"


def _gantt(phases: Sequence[Mapping[str, Any]]) -> list[str]:
    """A Mermaid gantt of phase timings on a seconds axis.

    With ``dateFormat X`` a start is parsed strictly as whole Unix seconds (a fraction makes
    Mermaid fall back to ``new Date()`` and misplace the bar), so starts are whole seconds from
    the first phase; durations carry a unit (a bare number would be read as an end *date*) and
    are written in whole milliseconds. ``axisFormat %s`` then labels the axis in seconds.
    """
    starts = [s for p in phases if (s := finite_number(p.get("started"))) is not None]
    origin = min(starts) if starts else 0.0
    lines = [
        "```mermaid",
        "gantt",
        "    title Phase timings (seconds)",
        "    dateFormat X",
        "    axisFormat %s",
        "    todayMarker off",
    ]
    previous_end: float | None = None
    for index, phase in enumerate(phases[:_GANTT_PHASES]):
        started = finite_number(phase.get("started"))
        offset = started - origin if started is not None else (previous_end or 0.0)
        duration = max(finite_number(phase.get("duration")) or 0.0, 0.0)
        # A phase that starts where the previous one ended is chained with `after`, which keeps
        # its sub-second start exact; otherwise the start is rounded down to whole seconds.
        contiguous = previous_end is not None and abs(offset - previous_end) < 0.5
        start = f"after p{index - 1}" if contiguous else str(max(int(offset), 0))
        previous_end = offset + duration
        status = str(phase.get("status", ""))
        tag = {"failed": "crit, ", "error": "crit, ", "running": "active, "}.get(status, "")
        label = _mermaid_label(phase.get("title") or phase.get("name") or f"phase {index + 1}")
        lines += [
            f"    section {label}",
            f"    {label} : {tag}p{index}, {start}, {max(round(duration * 1000), 1)}ms",
        ]
    lines.append("```")
    if len(phases) > _GANTT_PHASES:
        lines.append(f"_Chart shows the first {_GANTT_PHASES} of {len(phases)} phases._")
    return lines


class _Budget:
    """Collects Markdown lines while the UTF-8 size stays under a byte budget."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.lines: list[str] = []

    def fits(self, lines: Sequence[str], reserve: int = 0) -> bool:
        size = sum(len(line.encode()) + 1 for line in lines)
        return self.used + size + reserve <= self.limit

    def add(self, lines: Sequence[str], reserve: int = 0) -> bool:
        if not self.fits(lines, reserve):
            return False
        self.lines.extend(lines)
        self.used += sum(len(line.encode()) + 1 for line in lines)
        return True

    def add_rows(self, header: Sequence[str], rows: Sequence[str], noun: str, total: int, where: str) -> None:
        """A list or table of the first of ``total`` items, cut to what fits, saying what was left out."""
        note_reserve = 200
        if not self.add(header, reserve=note_reserve):
            return
        shown = 0
        for row in rows:
            if not self.add([row], reserve=note_reserve):
                break
            shown += 1
        if shown < total:
            self.add(["", f"_… {total - shown} more {noun} not shown here ({where})._"])

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def step_summary(
    report: Mapping[str, Any],
    failures: Sequence[Failure] | None = None,
    *,
    max_bytes: int = SUMMARY_LIMIT_BYTES,
) -> str:
    """Markdown for the job's step summary; its UTF-8 size never exceeds ``max_bytes``."""
    budget = _Budget(max(max_bytes, 0))
    service = _cell(report.get("service") or "service", 100)
    result = str(report.get("result") or "unknown")
    exit_code = report.get("exit_code")
    icon = "✅" if result == "passed" else "❌"
    headline = f"## {icon} {service} integration tests: {_cell(result, 40)}"
    if isinstance(exit_code, int) and not isinstance(exit_code, bool) and exit_code != 0:
        meaning = ExitCode(exit_code).meaning if exit_code in set(ExitCode) else "error"
        headline += f" (exit {exit_code}: {meaning})"
    meta = f"Run `{_cell(report.get('run_id', '?'), 100)}`, backend `{_cell(report.get('backend', '?'), 40)}`"
    if not budget.add([headline, "", meta, ""]):
        return _hard_cut(headline + "\n", max_bytes)
    failure = report.get("failure")
    if isinstance(failure, Mapping):
        # The phase that failed and why, even when the run never reached its tests.
        phase = _cell(failure.get("phase") or "?", 40)
        budget.add([f"**Failed in {phase}:** {_cell(failure.get('message'), 1000)}", ""])

    # Tests and coverage first: the numbers people open the summary for.
    tests = report.get("tests")
    if isinstance(tests, Mapping):
        counts = [
            "### Tests",
            "",
            "| passed | failed | errors | skipped | duration |",
            "| ---: | ---: | ---: | ---: | ---: |",
            f"| {count_of(tests, 'passed')} | {count_of(tests, 'failed')} | {count_of(tests, 'errors')} "
            f"| {count_of(tests, 'skipped')} | {_seconds(tests.get('duration'))} |",
            "",
        ]
    else:
        counts = ["### Tests", "", "Tests did not run.", ""]
    coverage = finite_number(report.get("coverage"))
    counts += [f"**Coverage:** {coverage:.1f}%" if coverage is not None else "**Coverage:** n/a", ""]
    budget.add(counts)

    phases = [p for p in report.get("phases") or [] if isinstance(p, Mapping)]
    if phases:
        rows = [
            f"| {_cell(p.get('title') or p.get('name') or '?', 60)} "
            f"| {_STATUS_EMOJI.get(str(p.get('status')), '❔')} {_cell(p.get('status', '?'), 20)} "
            f"| {_seconds(p.get('duration'))} |"
            for p in phases[:_PHASES_SHOWN]
        ]
        budget.add_rows(
            ["### Phases", "", "| phase | status | duration |", "| --- | --- | ---: |"],
            rows,
            "phases",
            total=len(phases),
            where="see report.json in the run folder",
        )
        budget.add([""])
        budget.add([*_gantt(phases), ""])

    if failures:
        rows = [
            f"- {_code(f.test, 300)}"
            + (f" ({_cell(f.file, 200)}{f':{f.line}' if f.line is not None else ''})" if f.file else "")
            + f": {_cell(f.message, 300)}"
            for f in failures[:_FAILURES_SHOWN]
        ]
        budget.add_rows(["### Failures", ""], rows, "failures", total=len(failures), where="see junit.xml")
        budget.add([""])

    footer = []
    if report.get("run_folder"):
        footer.append(f"**Run folder:** {_code(report['run_folder'])}")
    if report.get("junit"):
        footer.append(f"**JUnit:** {_code(report['junit'])}")
    if footer:
        budget.add(["  \n".join(footer)])
    return budget.text()


def _hard_cut(text: str, max_bytes: int) -> str:
    data = text.encode()[: max(max_bytes, 0)]
    return data.decode(errors="ignore")
