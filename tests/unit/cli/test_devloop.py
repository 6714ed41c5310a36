"""The dev-loop commands where no environment is up: what they say and how they end, in process (against servers:
tests/e2e/test_dev_loop.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from testbed.cli import devloop
from testbed.core.errors import ExitCode, TestbedError

PROJECT = Path(__file__).resolve().parents[3]


@pytest.fixture
def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TESTBED_RUNTIME_DIR", str(tmp_path / "root"))
    folder = tmp_path / "svc"
    folder.mkdir()
    (folder / "testbed.yml").write_text("name: svc\nservers: [postgres]\ninstall: none\n")
    return folder


@pytest.mark.parametrize(("seconds", "shown"), [(0, "0s"), (119.9, "119s"), (120, "2m"), (7199, "119m"),
                                                (7200, "2.0h"), (90000, "25.0h")])
def test_an_environment_s_age_is_shown_in_its_largest_sensible_unit(seconds: float, shown: str) -> None:
    assert devloop._age(seconds) == shown


def test_status_with_nothing_up_says_so_for_the_service(service: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert devloop.cmd_status(argparse.Namespace(service=service), PROJECT) == 0
    assert capsys.readouterr().out == "no testbed environments on this host for svc\n"


@pytest.mark.parametrize("command", [devloop.cmd_env, devloop.cmd_logs])
def test_env_and_logs_without_an_environment_name_the_way_to_start_one(service: Path, command) -> None:
    with pytest.raises(TestbedError) as refused:
        command(argparse.Namespace(service=service, server=None), PROJECT)
    assert str(refused.value) == "no environment is up for svc; start one with `testbed up`"
    assert refused.value.exit_code == ExitCode.PROVISIONING
