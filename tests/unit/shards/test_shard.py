"""One shard folder as merge reads it: a folder `testbed run` left, one plain ansible-playbook left (no report.json:
what its state file and JUnit report show), and what is not a shard folder at all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testbed.core.errors import ExitCode, TestbedError
from testbed.shards import shard

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="2" failures="{failures}" errors="0" skipped="0" time="1.5">
<testcase classname="tests.test_a" name="test_one" time="0.5"/>
<testcase classname="tests.test_a" name="test_two" time="1.0">{failure}</testcase>
</testsuite></testsuites>
"""


def _playbook_shard(folder: Path, *, failed: bool, torn_down: bool) -> Path:
    folder.mkdir()
    state = {"run_id": "local-20261207-120000-abc123", "service": "svc", "backend": "native",
             "shard": {"index": 2, "count": 3}}
    if torn_down:
        state["torn_down"] = 1765108800.0
    (folder / "state.json").write_text(json.dumps(state))
    (folder / "junit.xml").write_text(JUNIT.format(failures=int(failed),
                                                   failure='<failure message="boom">boom</failure>' if failed else ""))
    return folder


@pytest.mark.parametrize(("failed", "torn_down", "code"), [
    (False, True, ExitCode.PASSED),
    (True, True, ExitCode.TESTS_FAILED),
    (False, False, ExitCode.TEARDOWN),
])
def test_a_shard_plain_ansible_playbook_ran_is_judged_by_its_junit_and_its_teardown(
    tmp_path: Path, failed: bool, torn_down: bool, code: ExitCode
) -> None:
    loaded = shard.load(_playbook_shard(tmp_path / "s2", failed=failed, torn_down=torn_down), tmp_path / "cov")
    assert loaded.label == "shard 2/3" and loaded.report.exit_code == code
    assert loaded.report.tests is not None and loaded.report.tests.failed == int(failed)
    assert loaded.report.tests.passed == 2 - int(failed) and loaded.coverage is None


def test_a_playbook_shard_that_stopped_before_its_tests_is_a_config_failure(tmp_path: Path) -> None:
    folder = _playbook_shard(tmp_path / "s1", failed=False, torn_down=True)
    (folder / "junit.xml").unlink()
    loaded = shard.load(folder, tmp_path / "cov")
    assert (loaded.report.exit_code, loaded.report.tests) == (ExitCode.CONFIG, None)


@pytest.mark.parametrize(("make", "problem"), [
    (lambda p: None, "does not exist"),
    (lambda p: p.write_text("x"), "is not a folder"),
    (lambda p: p.mkdir(), "report.json"),
])
def test_what_is_not_a_shard_folder_is_named_in_one_line(tmp_path: Path, make, problem: str) -> None:
    folder = tmp_path / "s"
    make(folder)
    with pytest.raises(TestbedError) as refused:
        shard.load(folder, tmp_path / "cov")
    assert problem in str(refused.value) and "\n" not in str(refused.value)
