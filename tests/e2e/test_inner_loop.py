"""`testbed test` runs the tests role's tasks in its own process; playbooks/test.yml (TESTBED_TEST_PLAYBOOK=1)
stays the other way to the same result: the same exit code, JUnit counts, report.json and phase lines."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from support import clean_env, cli, leftovers, run_folder_of
from testbed.core import junit

pytestmark = pytest.mark.slow

# A passing and a failing test beside the fixture's own; one notes who started the tests' supervisor (the
# testbed command itself, or an Ansible worker), so each way is known to have been taken.
MIXED = '''
import os
from pathlib import Path


def test_passes_and_notes_who_started_the_supervisor():
    supervisor = Path(f"/proc/{os.getppid()}/stat").read_text().rsplit(")", 1)[1].split()[1]
    command = Path(f"/proc/{supervisor}/cmdline").read_bytes().replace(b"\\0", b" ").decode()
    with open(os.environ["MIXED_NOTES"], "a") as notes:
        notes.write(command + "\\n")


def test_fails():
    assert 1 + 1 == 3
'''
SECONDS = re.compile(r"\d+(\.\d+)?s\b")  # times differ between any two runs


def _same_words(line: str) -> str:
    return SECONDS.sub("<t>s", line)


def _outcome(result: Any, notes: Path) -> dict[str, Any]:
    """What a `testbed test` gave: its exit code, phase lines, JUnit counts and report.json without times."""
    assert result.stderr == "", result.stderr
    folder = run_folder_of(result.stdout)
    report = json.loads((folder / "report.json").read_text())
    summary = junit.parse(folder / "junit.xml")
    assert summary is not None
    for phase in report["phases"]:
        assert phase.pop("duration") >= 0 and phase.pop("started") > 0
        phase["line"] = _same_words(phase["line"])
    assert report.pop("duration") > 0 and report["tests"].pop("duration") > 0
    if "failure" in report:
        report["failure"]["message"] = _same_words(report["failure"]["message"])
    counts = summary.counts()
    assert counts.pop("duration") > 0
    return {
        "exit code": result.returncode,
        "lines": [_same_words(line) for line in result.stdout.splitlines()],
        "junit": counts,
        "report": report,
        "started by": notes.read_text().splitlines()[-1],
    }


def test_testbed_test_gives_what_the_test_playbook_gives(service: Path, runs: Path) -> None:
    (service / "tests" / "test_mixed.py").write_text(MIXED)
    notes = service / "notes"
    up = cli("up", "--service", str(service), "--backend", "native", "--ports", "auto", "--run-folder", str(runs))
    assert up.returncode == 0, up.stdout + up.stderr
    run_id = run_folder_of(up.stdout).name
    try:
        outcomes = {}
        for way, variables in (("here", {}), ("playbook", {"TESTBED_TEST_PLAYBOOK": "1"})):
            env = clean_env(MIXED_NOTES=str(notes), **variables)
            for selection in ("", "not fails"):
                result = cli("test", "--service", str(service), "--", "-k", selection, env=env)
                outcomes[way, selection] = _outcome(result, notes)
    finally:
        down = cli("down", "--service", str(service))
    assert down.returncode == 0, down.stdout + down.stderr
    assert leftovers(run_id) == []

    for way in ("here", "playbook"):  # each way was taken
        started_by = {outcomes[way, selection].pop("started by") for selection in ("", "not fails")}
        assert {"ansible-playbook" in command for command in started_by} == {way == "playbook"}, started_by
        assert {"-m testbed test" in command for command in started_by} == {way == "here"}, started_by
    for selection in ("", "not fails"):
        assert outcomes["here", selection] == outcomes["playbook", selection]
    failed, passed = outcomes["here", ""], outcomes["here", "not fails"]
    assert (failed["exit code"], passed["exit code"]) == (1, 0)
    assert (failed["junit"]["failed"], failed["junit"]["passed"], passed["junit"]["passed"]) == (1, 5, 5)
    assert failed["report"]["failure"]["phase"] == "Tests" and "failure" not in passed["report"]
    reset = "✅ Reset: back to the freshly migrated state in <t>s (the tests waited <t>s)"
    assert failed["lines"][0] == passed["lines"][0] == "✅ Dependencies: reused"
    assert failed["lines"][1].startswith("❌ Tests: 5 passed, 1 failed in <t>s (pytest exit 1; see ")
    assert failed["lines"][2] == passed["lines"][1] == reset
    assert passed["lines"][2] == "✅ Tests: 5 passed in <t>s"
