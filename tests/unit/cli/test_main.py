"""`testbed`'s entry: each command's code returned, a TestbedError as its one line, and under GitHub Actions a
run that failed before its playbook still leaves a step summary."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.cli.main import main
from testbed.core.errors import ExitCode


@pytest.fixture(autouse=True)
def private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESTBED_RUNTIME_DIR", str(tmp_path / "root"))
    for name in ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT"):
        monkeypatch.delenv(name, raising=False)


def test_a_command_s_error_is_its_one_line_and_its_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", "--service", str(tmp_path)]) == ExitCode.CONFIG
    assert capsys.readouterr().err == (
        f"testbed: error: no testbed.yml in {tmp_path}: create one (see README 'Config file reference') or pass "
        "--service with the service's folder\n")
    (tmp_path / "testbed.yml").write_text("servers: [nats]\n")
    assert main(["test", "--service", str(tmp_path)]) == ExitCode.PROVISIONING
    err = capsys.readouterr().err
    assert err == f"testbed: error: no environment is up for {tmp_path.name}; start one with `testbed up`\n"


def test_a_run_refused_before_its_playbook_leaves_a_step_summary_under_github_actions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "output"))
    (tmp_path / "svc").mkdir()
    (tmp_path / "svc" / "testbed.yml").write_text("servers: [postgres]\nbogus: 1\n")
    assert main(["run", "--service", str(tmp_path / "svc")]) == ExitCode.CONFIG
    assert "unknown key 'bogus'" in capsys.readouterr().err
    assert "**Failed in Preflight:**" in summary.read_text() and "unknown key 'bogus'" in summary.read_text()


def test_status_without_runs_says_so_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status"]) == 0
    assert "no testbed environments" in capsys.readouterr().out
