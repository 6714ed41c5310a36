"""report.json in the run folder, scrubbed of every secret value with the folder, and what GitHub Actions shows."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from support.reports import REPORT
from testbed.core.errors import ExitCode, TestbedError
from testbed.core.redact import Redactor
from testbed.report import run_report

VALUE = "s3cr3t-value-of-the-run"


def _report(folder: Path, **extra: object) -> dict[str, object]:
    return {**REPORT, "run_folder": str(folder), "junit": str(folder / "junit.xml"), "note": f"said {VALUE}", **extra}


def test_the_report_and_the_folder_are_scrubbed_and_the_folder_named(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    (folder / "logs").mkdir(parents=True)
    (folder / "logs" / "postgres.log").write_text(f"password={VALUE}\n")
    (folder / "htmlcov").mkdir()
    (folder / "htmlcov" / "index.html").write_text(VALUE)  # scrubbed when pytest ended, not again here
    out = io.StringIO()
    problem = run_report.write_report(_report(folder), out, gha=False, redactor=Redactor([VALUE]))
    assert problem is None
    written = json.loads((folder / "report.json").read_text())
    assert written["note"] == "said ***" and written["exit_code"] == REPORT["exit_code"]
    assert VALUE not in (folder / "logs" / "postgres.log").read_text()
    assert (folder / "htmlcov" / "index.html").read_text() == VALUE
    assert out.getvalue() == f"📁 Run folder: {folder}\n"


def test_a_run_folder_that_is_gone_or_a_link_gets_nothing(tmp_path: Path) -> None:
    out = io.StringIO()
    assert run_report.write_report(_report(tmp_path / "gone"), out, gha=False) is None
    assert out.getvalue() == "" and not (tmp_path / "gone").exists()
    target = tmp_path / "elsewhere"
    target.mkdir()
    (tmp_path / "link").symlink_to(target)
    assert run_report.write_report(_report(tmp_path / "link"), out, gha=False) is None
    assert list(target.iterdir()) == []


def test_under_github_actions_the_summary_and_outputs_are_written_scrubbed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    summary, output = tmp_path / "summary.md", tmp_path / "output"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    run_report.write_report(_report(folder, service=f"svc-{VALUE}"), io.StringIO(), gha=True,
                            redactor=Redactor([VALUE]))
    assert "failed" in summary.read_text() and VALUE not in summary.read_text()
    assert "result=failed" in output.read_text() and VALUE not in output.read_text()


@pytest.mark.parametrize(("code", "phase"), [(ExitCode.SECRETS, "Secrets"), (ExitCode.CONFIG, "Preflight")])
def test_a_run_that_failed_before_its_playbook_still_names_its_phase(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: ExitCode, phase: str
) -> None:
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "output"))
    run_report.publish_failure("run", "basic", TestbedError("API_KEY not set", code))
    text = summary.read_text()
    assert f"**Failed in {phase}:**" in text and "run: API_KEY not set" in text and f"exit {int(code)}" in text
