"""A run's report: report.json in the run folder (scrubbed of secret values), and what GitHub Actions shows
of it (annotations, the step summary, outputs)."""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from testbed import __version__
from testbed.core import files, junit, redact
from testbed.core.errors import ExitCode, TestbedError
from testbed.report import github
from testbed.report.console import Renderer
from testbed.run.outcome import PHASES

if TYPE_CHECKING:
    from testbed.ansible.options import Options


def build_report(
    renderer: Renderer, run_id: str, run_folder: Path, code: ExitCode, started: float, options: Options
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "service": renderer.run.get("service", options.service.name),
        "backend": renderer.run.get("backend", options.backend),
        "exit_code": int(code),
        "result": "passed" if code == ExitCode.PASSED else "failed",
        "phases": [p.as_dict() for p in renderer.phases.values()],
        "tests": renderer.tests,
        "coverage": renderer.coverage,
        "run_folder": str(run_folder),
        "junit": str(run_folder / "junit.xml"),
        **(
            {"failure": {"phase": PHASES[f[0]], "message": f[2].removeprefix(f"{PHASES[f[0]]}: ")}}
            if (f := renderer.failure)
            else {}
        ),
        "duration": round(time.time() - started, 2),
        "testbed_version": __version__,
    }


def write_report(
    report: dict[str, Any],
    out: IO[str],
    gha: bool,
    redactor: redact.Redactor | None = None,
    said: Collection[str] = (),
) -> TestbedError | None:
    """report.json in the run folder, its path on screen, and GitHub's annotations, summary and outputs;
    the run folder scrubbed of every secret value first (server logs, coverage files, anything a test wrote).
    Nothing is written into a run folder that is gone or a link (teardown names a link); a full disk is
    said in one line (unless a phase said it already: `said` holds the kinds of failure said) and returned."""
    redactor = redactor or redact.Redactor()
    report = redactor.data(report)
    folder = Path(report["run_folder"])
    problem: TestbedError | None = None
    try:
        redactor.tree(folder, skip=("htmlcov",))  # htmlcov: scrubbed when pytest ended
        files.write(folder / "report.json", json.dumps(report, indent=2), root=folder)
        out.write(f"📁 Run folder: {folder}\n")
    except (FileNotFoundError, NotADirectoryError, files.LinkRefused):
        pass
    except files.DiskFull as full:
        problem = full
        if full.details["kind"] not in said:
            out.write(f"❌ Report: {full}\n")
    if gha:
        publish_to_github(report, out, redactor)
    out.flush()
    return problem


def report_run(
    renderer: Renderer,
    run_id: str,
    run_folder: Path,
    code: ExitCode,
    started: float,
    options: Options,
    *,
    out: IO[str],
    gha: bool,
    redactor: redact.Redactor,
) -> int:
    """The run's report written (build_report, write_report) and the code the command exits with: the run's
    own, unless it passed and the report could not be written (a full disk)."""
    report = build_report(renderer, run_id, run_folder, code, started, options)
    problem = write_report(report, out, gha, redactor, said=renderer.kinds_said)
    return int(problem.exit_code if problem is not None and code == ExitCode.PASSED else code)


def publish_to_github(report: Mapping[str, Any], out: IO[str], redactor: redact.Redactor | None = None) -> None:
    redactor = redactor or redact.Redactor()
    summary = junit.parse(Path(report["junit"])) if report.get("junit") else None
    failures = [junit.Failure(**redactor.data(vars(f))) for f in (summary.failures if summary else [])]
    for line in github.annotations(failures):
        out.write(redactor.text(line) + "\n")
    github.write_summary(report, failures=failures, redact=redactor.text)
    github.write_outputs(report, redact=redactor.text)


def publish_failure(command: str, service: str, error: TestbedError) -> None:
    """A run that failed before its playbook (config, secrets): the step summary still names the phase."""
    phase = "Secrets" if error.exit_code == ExitCode.SECRETS else "Preflight"
    report = {
        "run_id": "",
        "service": service,
        "backend": "",
        "exit_code": int(error.exit_code),
        "result": "failed",
        "phases": [{"name": phase.lower(), "title": phase, "status": "failed", "duration": 0, "line": str(error)}],
        "tests": None,
        "coverage": None,
        "failure": {"phase": phase, "message": f"{command}: {error}"},
        "testbed_version": __version__,
    }
    github.write_summary(report)
    github.write_outputs(report)
