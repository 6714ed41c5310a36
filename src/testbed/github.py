"""GitHub Actions integration: masks, log groups, annotations, the step summary and step outputs.

Everything here is for a run inside GitHub Actions (``GITHUB_ACTIONS=true``); ``CI=true`` alone
(other CI systems, our own CI) does not enable it. Workflow commands follow the runner's rules:
data is escaped ``%``/CR/LF, property values also ``:`` and ``,``.
"""

# No `from __future__ import annotations`: it would clash with the public `annotations()`.
import contextlib
import io
import math
import os
import stat
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from testbed.junit import Failure

__all__ = [
    "ANNOTATION_LIMIT",
    "SUMMARY_LIMIT_BYTES",
    "annotations",
    "begin_group",
    "end_group",
    "escape_data",
    "escape_property",
    "group",
    "is_github_actions",
    "mask",
    "outputs",
    "step_summary",
    "write_outputs",
    "write_summary",
]

ANNOTATION_LIMIT = 10  # GitHub shows at most 10 error annotations per step
# GitHub drops a step summary over 1 MiB whole; stay well under it.
SUMMARY_LIMIT_BYTES = 1024 * 1024 - 16 * 1024
_CELL_MAX = 200
_FAILURES_SHOWN = 50
_PHASES_SHOWN = 100
_GANTT_PHASES = 40

_EXIT_MEANINGS = {
    0: "passed",
    1: "tests failed",
    2: "pytest was interrupted",
    3: "pytest internal error",
    4: "pytest usage error",
    5: "no tests collected",
    10: "configuration error",
    11: "secrets error",
    12: "provisioning/readiness failed",
    13: "migrations failed",
    14: "teardown failed",
    130: "interrupted (SIGINT)",
    143: "terminated (SIGTERM)",
}
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


def is_github_actions(environ: Mapping[str, str] | None = None) -> bool:
    """True only inside a GitHub Actions job."""
    env = os.environ if environ is None else environ
    return env.get("GITHUB_ACTIONS") == "true"


def escape_data(value: str) -> str:
    """Escape a workflow command's message."""
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: str) -> str:
    """Escape a workflow command's property value."""
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


def _refuse_regular_file(stream: IO[str]) -> None:
    try:
        mode = os.fstat(stream.fileno()).st_mode
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return  # in-memory or closed-fd streams are not files on disk
    if stat.S_ISREG(mode):
        raise ValueError("mask commands carry secret values: write them to the job's stdout, not to a file")


def mask(values: Iterable[str | None], stream: IO[str] | None = None) -> int:
    """Tell the runner to mask each secret value in the log; returns how many masks were written.

    Multi-line values are masked line by line (the runner matches per line). Empty values are
    skipped: masking "" is an error for the runner. ``stream`` must be the job's real stdout.
    """
    out = sys.stdout if stream is None else stream
    _refuse_regular_file(out)
    seen: set[str] = set()
    for value in values:
        if not value:
            continue
        lines = value.splitlines() if ("\n" in value or "\r" in value) else [value]
        for line in lines:
            piece = line.strip()
            if piece and piece not in seen:
                seen.add(piece)
                out.write(f"::add-mask::{escape_data(piece)}\n")
    out.flush()
    return len(seen)


def begin_group(title: str, stream: IO[str] | None = None) -> None:
    out = sys.stdout if stream is None else stream
    out.write(f"::group::{escape_data(title)}\n")
    out.flush()


def end_group(stream: IO[str] | None = None) -> None:
    out = sys.stdout if stream is None else stream
    out.write("::endgroup::\n")
    out.flush()


@contextlib.contextmanager
def group(title: str, stream: IO[str] | None = None) -> Iterator[None]:
    """Fold everything written inside the block into one collapsible log group."""
    begin_group(title, stream)
    try:
        yield
    finally:
        end_group(stream)


def annotations(failures: Sequence[Failure], limit: int = ANNOTATION_LIMIT, *, path_prefix: str = "") -> list[str]:
    """``::error`` lines for the first ``limit`` failures, and a ``::notice`` for the rest.

    ``path_prefix`` turns pytest's paths (relative to the service) into repository paths.
    """
    limit = max(0, limit)
    lines: list[str] = []
    for failure in failures[:limit]:
        props: list[str] = []
        if failure.file:
            file = failure.file
            if path_prefix and not Path(file).is_absolute():
                file = f"{path_prefix.rstrip('/')}/{file}"
            props.append(f"file={escape_property(file)}")
            if failure.line is not None:
                props.append(f"line={failure.line}")
        props.append(f"title={escape_property(failure.test)}")
        lines.append(f"::error {','.join(props)}::{escape_data(failure.message)}")
    more = len(failures) - limit
    if more > 0:
        noun = "failure" if more == 1 else "failures"
        lines.append(f"::notice::{more} more {noun} not annotated (see the step summary and junit.xml)")
    return lines


# ---------------------------------------------------------------- step summary


def _cell(value: object, limit: int = _CELL_MAX) -> str:
    text = " ".join(str(value).split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _code(value: object, limit: int = 1000) -> str:
    text = " ".join(str(value).split()).replace("`", "'")
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return f"`{text}`"


def _seconds(value: object) -> str:
    number = _number(value)
    if number is None:
        return "n/a"
    if number < 60:
        return f"{number:.1f}s"
    minutes, seconds = divmod(number, 60)
    return f"{int(minutes)}m {seconds:04.1f}s"


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _count(tests: Mapping[str, Any], key: str) -> int:
    value = _number(tests.get(key))
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
    starts = [s for p in phases if (s := _number(p.get("started"))) is not None]
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
        started = _number(phase.get("started"))
        offset = started - origin if started is not None else (previous_end or 0.0)
        duration = max(_number(phase.get("duration")) or 0.0, 0.0)
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
        headline += f" (exit {exit_code}: {_EXIT_MEANINGS.get(exit_code, 'error')})"
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
            f"| {_count(tests, 'passed')} | {_count(tests, 'failed')} | {_count(tests, 'errors')} "
            f"| {_count(tests, 'skipped')} | {_seconds(tests.get('duration'))} |",
            "",
        ]
    else:
        counts = ["### Tests", "", "Tests did not run.", ""]
    coverage = _number(report.get("coverage"))
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


# ---------------------------------------------------------------- files the runner reads


def write_summary(
    report: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    failures: Sequence[Failure] | None = None,
    redact: Callable[[str], str] = str,
) -> bool:
    """Append the step summary to ``$GITHUB_STEP_SUMMARY``; False when not in GitHub Actions.
    ``redact`` replaces secret values in the final text (testbed.redact)."""
    env = os.environ if environ is None else environ
    target = env.get("GITHUB_STEP_SUMMARY")
    if not is_github_actions(env) or not target:
        return False
    path = Path(target)
    try:
        existing = path.stat().st_size
    except FileNotFoundError:
        existing = 0
    # The 1 MiB limit is for the step's whole summary file, whatever was written before us.
    budget = max(SUMMARY_LIMIT_BYTES - existing, 0)
    text = redact(step_summary(report, failures, max_bytes=budget))
    if text:
        with path.open("a", encoding="utf-8") as handle:
            handle.write(text)
    return True


def _output_lines(name: str, value: str) -> str:
    if "\n" not in value and "\r" not in value:
        return f"{name}={value}\n"
    delimiter = f"ghadelimiter_{uuid.uuid4().hex}"
    return f"{name}<<{delimiter}\n{value}\n{delimiter}\n"


def outputs(report: Mapping[str, Any]) -> dict[str, str]:
    """The step outputs: result, passed, failed, errors, skipped, coverage (empty when unknown)."""
    tests = report.get("tests")
    tests = tests if isinstance(tests, Mapping) else {}
    coverage = _number(report.get("coverage"))
    return {
        "result": str(report.get("result") or "unknown"),
        "passed": str(_count(tests, "passed")),
        "failed": str(_count(tests, "failed")),
        "errors": str(_count(tests, "errors")),
        "skipped": str(_count(tests, "skipped")),
        "coverage": f"{coverage:g}" if coverage is not None else "",
    }


def write_outputs(
    report: Mapping[str, Any], environ: Mapping[str, str] | None = None, redact: Callable[[str], str] = str
) -> bool:
    """Append step outputs to ``$GITHUB_OUTPUT``; False when not in GitHub Actions."""
    env = os.environ if environ is None else environ
    target = env.get("GITHUB_OUTPUT")
    if not is_github_actions(env) or not target:
        return False
    with Path(target).open("a", encoding="utf-8") as handle:
        handle.writelines(redact(_output_lines(name, value)) for name, value in outputs(report).items())
    return True
