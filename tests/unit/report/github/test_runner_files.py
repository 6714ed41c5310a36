"""GITHUB_STEP_SUMMARY and GITHUB_OUTPUT as the runner reads them; nothing written outside GitHub Actions."""


from pathlib import Path

import pytest

from support.gha_runner import read_file_commands
from support.reports import REPORT
from testbed.core.junit import Failure
from testbed.report import github

# ------------------------------------------------------------------ GITHUB_STEP_SUMMARY / GITHUB_OUTPUT


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "GITHUB_ACTIONS": "true",
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "GITHUB_OUTPUT": str(tmp_path / "output"),
        **extra,
    }


def test_write_summary_appends(tmp_path):
    env = _env(tmp_path)
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step output\n")
    assert github.write_summary(REPORT, env) is True
    text = summary.read_text()
    assert text.startswith("earlier step output\n## ❌ agent_executor")
    assert "```mermaid" in text


def test_write_summary_counts_what_is_already_in_the_file(tmp_path):
    env = _env(tmp_path)
    summary = tmp_path / "summary.md"
    summary.write_text("x" * (1024 * 1024 - 5000))
    failures = [Failure(f"t::test_{i}", "m" * 300) for i in range(1000)]
    assert github.write_summary(REPORT, env, failures) is True
    assert summary.stat().st_size < 1024 * 1024


def test_write_outputs(tmp_path):
    env = _env(tmp_path)
    (tmp_path / "output").write_text("earlier=1\n")
    assert github.write_outputs(REPORT, env) is True
    values = read_file_commands(tmp_path / "output")
    assert values == {
        "earlier": "1",
        "result": "failed",
        "passed": "1",
        "failed": "1",
        "errors": "0",
        "skipped": "0",
        "coverage": "87.5",
        "run-folder": "/abs/path/runs/gh-123-1-integration-ab12",  # action.yml's run-folder output
    }
    assert "<<" not in (tmp_path / "output").read_text()


def test_write_outputs_when_tests_never_ran_and_multiline_values(tmp_path):
    env = _env(tmp_path)
    report = {**REPORT, "tests": None, "coverage": None, "result": "failed\nfor real"}
    assert github.write_outputs(report, env) is True
    values = read_file_commands(tmp_path / "output")
    assert values["result"] == "failed\nfor real"
    assert values["passed"] == "0"
    assert values["coverage"] == ""
    assert github.outputs({**report, "run_folder": None})["run-folder"] == ""  # a run refused before its folder


@pytest.mark.parametrize(
    "environ",
    [
        {"CI": "true"},
        {"GITHUB_ACTIONS": "false"},
        {"GITHUB_ACTIONS": "true"},  # no file variables set
    ],
)
def test_nothing_is_written_outside_github_actions(tmp_path, environ):
    env = {
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "GITHUB_OUTPUT": str(tmp_path / "output"),
    }
    if environ.get("GITHUB_ACTIONS") == "true":
        env = {}
    env |= environ
    assert github.write_summary(REPORT, env) is False
    assert github.write_outputs(REPORT, env) is False
    assert list(tmp_path.iterdir()) == []
