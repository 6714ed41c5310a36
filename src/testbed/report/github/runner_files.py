"""The files the runner reads after a step: the step summary ($GITHUB_STEP_SUMMARY) and the step outputs
($GITHUB_OUTPUT), written only inside GitHub Actions."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from testbed.core.environ import is_github_actions
from testbed.core.junit import Failure
from testbed.report.github.summary import SUMMARY_LIMIT_BYTES, count_of, finite_number, step_summary


def write_summary(
    report: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    failures: Sequence[Failure] | None = None,
    redact: Callable[[str], str] = str,
) -> bool:
    """Append the step summary to ``$GITHUB_STEP_SUMMARY``; False when not in GitHub Actions.
    ``redact`` replaces secret values in the final text (testbed.core.redact)."""
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
    """The step outputs: result, passed, failed, errors, skipped, coverage and run-folder (empty when unknown).
    The exit code is not among them: the caller has it (action.yml writes it, whatever testbed got to)."""
    tests = report.get("tests")
    tests = tests if isinstance(tests, Mapping) else {}
    coverage = finite_number(report.get("coverage"))
    return {
        "result": str(report.get("result") or "unknown"),
        "passed": str(count_of(tests, "passed")),
        "failed": str(count_of(tests, "failed")),
        "errors": str(count_of(tests, "errors")),
        "skipped": str(count_of(tests, "skipped")),
        "coverage": f"{coverage:g}" if coverage is not None else "",
        "run-folder": str(report.get("run_folder") or ""),
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
