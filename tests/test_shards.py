"""Shards (`testbed run --shard K/N`, pytest-split) run at once and merged (`testbed merge`) give the same
report as one run; durations recorded by one split change the next; merge refuses what is not one split."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import FIXTURES, PROJECT, clean_env, cli, leftovers, playbook, run_folder_of
from testbed import merge, shard
from testbed.errors import ExitCode, TestbedError

SLOW = "tests/test_slow.py::test_slow"


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    target = tmp_path / "shards"
    shutil.copytree(FIXTURES / "services" / "shards", target)
    return target


def _run_shards(suite: Path, runs: Path, count: int, *extra: str) -> list[Path]:
    """`count` shards of the suite, each a `testbed run --shard K/N` subprocess, all at once."""
    argv = [sys.executable, "-m", "testbed", "run", "--service", str(suite), "--backend", "native",
            "--ports", "auto", "--run-folder", str(runs), *extra]
    procs = [subprocess.Popen([*argv, "--shard", f"{k}/{count}"], cwd=PROJECT, env=clean_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for k in range(1, count + 1)]
    folders = []
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out
        folders.append(run_folder_of(out))
    for folder in folders:
        assert leftovers(folder.name) == []
    return folders


def _cases(junit: Path) -> list[str]:
    root = ET.parse(junit).getroot()
    return sorted(f"{c.get('classname')}::{c.get('name')}" for c in root.iter("testcase"))


def _groups(folders: list[Path]) -> list[list[str]]:
    return sorted(_cases(f / "junit.xml") for f in folders if (f / "junit.xml").is_file())


@pytest.mark.slow
def test_three_shards_merged_equal_one_run_and_durations_change_the_split(suite: Path, tmp_path: Path) -> None:
    whole = cli("run", "--service", str(suite), "--backend", "native", "--ports", "auto",
                "--run-folder", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stdout + whole.stderr
    one_run = json.loads((run_folder_of(whole.stdout) / "report.json").read_text())

    # First split: no durations known, so pytest-split weighs every test the same (by count).
    first = _run_shards(suite, tmp_path / "first", 3)
    assert sorted(len(g) for g in _groups(first)) == [3, 3, 4]
    merged = cli("merge", *map(str, first), "--out", str(tmp_path / "merged"))
    assert merged.returncode == 0, merged.stdout + merged.stderr
    report = json.loads((tmp_path / "merged" / "report.json").read_text())
    every = _cases(tmp_path / "merged" / "junit.xml")
    assert len(every) == len(set(every)) == 10
    assert every == _cases(run_folder_of(whole.stdout) / "junit.xml")
    assert report["tests"]["passed"] == one_run["tests"]["passed"] == 10
    assert abs(report["coverage"] - one_run["coverage"]) <= 0.5
    assert report["exit_code"] == 0 and len(report["shards"]) == 3
    assert report["slowest_shard"]["run_folder"] in {str(f) for f in first}
    assert (tmp_path / "merged" / "htmlcov" / "index.html").is_file()
    durations = json.loads((tmp_path / "merged" / "durations.json").read_text())
    assert len(durations) == 10 and durations[SLOW] >= 2.0

    # Second split, by the merged durations: the slow test gets a group of its own.
    second = _run_shards(suite, tmp_path / "second", 3, "--durations", str(tmp_path / "merged" / "durations.json"))
    groups = _groups(second)
    assert ["tests.test_slow::test_slow"] in groups, groups
    assert sorted(c for g in groups for c in g) == every

    # Shards measured on another machine, at another path: merge maps their paths onto this one's sources.
    elsewhere = suite.rename(tmp_path / "elsewhere")
    moved = cli("merge", *map(str, first), "--out", str(tmp_path / "moved"), "--service", str(elsewhere))
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert json.loads((tmp_path / "moved" / "report.json").read_text())["coverage"] == report["coverage"]


@pytest.mark.slow
def test_plain_ansible_playbook_runs_one_shard(suite: Path, tmp_path: Path) -> None:
    result = playbook("integration.yml", {"testbed_service": str(suite), "testbed_backend": "native",
                                          "testbed_ports": "auto", "testbed_run_root": str(tmp_path / "runs"),
                                          "testbed_shard": "2/3"})
    assert result.returncode == 0, result.stdout[-3000:]
    folder = run_folder_of(result.stdout)
    assert len(_cases(folder / "junit.xml")) == 3
    assert json.loads((folder / "state.json").read_text())["shard"] == {"index": 2, "count": 3, "durations": ""}
    assert len(json.loads((folder / "durations.json").read_text())) == 3


@pytest.mark.slow
def test_the_reference_service_in_three_shards_equals_one_run(tmp_path: Path) -> None:
    reference = PROJECT / "services" / "agent_executor"
    whole = cli("run", "--service", str(reference), "--backend", "native", "--ports", "auto",
                "--run-folder", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stdout + whole.stderr
    one_run = json.loads((run_folder_of(whole.stdout) / "report.json").read_text())
    folders = _run_shards(reference, tmp_path / "shards", 3)
    merged = cli("merge", *map(str, folders), "--out", str(tmp_path / "merged"))
    assert merged.returncode == 0, merged.stdout + merged.stderr
    report = json.loads((tmp_path / "merged" / "report.json").read_text())
    every = _cases(tmp_path / "merged" / "junit.xml")
    assert len(every) == len(set(every)) == one_run["tests"]["passed"]
    assert report["tests"]["passed"] == one_run["tests"]["passed"]
    assert abs(report["coverage"] - one_run["coverage"]) <= 0.5
    assert [s["shard"] for s in report["shards"]] == ["shard 1/3", "shard 2/3", "shard 3/3"]


def _fake_shard(folder: Path, cases: list[str], code: int = 0, durations: dict[str, float] | None = None,
                split: tuple[int, int] | None = None, service: str = "shards") -> Path:
    """A run folder as `testbed run --shard` leaves it, without running anything."""
    folder.mkdir(parents=True)
    if split:
        (folder / "state.json").write_text(json.dumps({"shard": {"index": split[0], "count": split[1]}}))
    body = "".join(f'<testcase classname="{c.split("::")[0]}" name="{c.split("::")[1]}" time="0.1"/>' for c in cases)
    (folder / "junit.xml").write_text(f'<testsuites><testsuite name="pytest" tests="{len(cases)}">{body}'
                                      "</testsuite></testsuites>")
    (folder / "report.json").write_text(json.dumps({
        "run_id": folder.name, "service": service, "backend": "native", "exit_code": code,
        "tests": {"passed": len(cases), "duration": 0.1 * len(cases)}, "duration": 1.0, "phases": []}))
    if durations is not None:
        (folder / shard.BEFORE_FILE).write_text(json.dumps({"tests/test_gone.py::test_old": 9.0, "t::a": 5.0}))
        (folder / shard.MEASURED_FILE).write_text(json.dumps(durations))
    return folder


def test_merge_of_a_missing_shard_folder_exits_10_naming_it(tmp_path: Path) -> None:
    present = _fake_shard(tmp_path / "one", ["t::a"])
    result = cli("merge", str(present), str(tmp_path / "absent"), "--out", str(tmp_path / "out"))
    assert result.returncode == ExitCode.CONFIG
    assert result.stderr.strip().count("\n") == 0
    assert f"shard folder {tmp_path / 'absent'} does not exist" in result.stderr


def test_merge_of_an_unreadable_shard_folder_exits_10_naming_it(tmp_path: Path) -> None:
    broken = _fake_shard(tmp_path / "broken", ["t::a"])
    (broken / "report.json").write_text("{not json")
    result = cli("merge", str(broken), "--out", str(tmp_path / "out"))
    assert result.returncode == ExitCode.CONFIG
    assert result.stderr.strip().count("\n") == 0 and f"shard folder {broken} is unreadable" in result.stderr


def test_merge_of_a_test_reported_by_two_shards_exits_10_naming_it(tmp_path: Path) -> None:
    one = _fake_shard(tmp_path / "one", ["t::a", "t::b"])
    two = _fake_shard(tmp_path / "two", ["t::c", "t::b"])
    result = cli("merge", str(one), str(two), "--out", str(tmp_path / "out"))
    assert result.returncode == ExitCode.CONFIG
    assert result.stderr.strip().count("\n") == 0
    assert f"test t::b is reported by two shards, {one} and {two}" in result.stderr
    assert not (tmp_path / "out" / "report.json").exists()


def test_merged_durations_keep_old_timings_and_take_the_newest(tmp_path: Path) -> None:
    one = _fake_shard(tmp_path / "one", ["t::a"], durations={"t::a": 1.5})
    two = _fake_shard(tmp_path / "two", ["t::b"], durations={"t::b": 0.5})
    report = merge.merge([one, two], tmp_path / "out")
    durations = json.loads((tmp_path / "out" / "durations.json").read_text())
    assert durations == {"t::a": 1.5, "t::b": 0.5, "tests/test_gone.py::test_old": 9.0}
    assert report["durations_measured"] == 2
    assert report["tests"]["passed"] == 2 and report["coverage"] is None


@pytest.mark.parametrize(("codes", "expected"), [
    ([0, 0, 0], 0), ([0, 1, 0], 1), ([1, 5, 0], 5), ([1, 12, 0], 12), ([14, 1], 14), ([12, 143, 1], 143),
    ([4, 1], 4), ([10, 13], 13),
])
def test_merge_exit_code_is_the_worst_shards(tmp_path: Path, codes: list[int], expected: int) -> None:
    folders = [_fake_shard(tmp_path / f"s{i}", [f"t::case{i}"], code) for i, code in enumerate(codes)]
    assert merge.merge(folders, tmp_path / "out")["exit_code"] == expected
    result = cli("merge", *map(str, folders), "--out", str(tmp_path / "out2"))
    assert result.returncode == expected


def test_merge_under_github_actions_writes_one_summary_and_at_most_10_annotations(tmp_path: Path) -> None:
    folders = []
    for index in range(2):
        folder = _fake_shard(tmp_path / f"s{index}", [], 1)
        failing = "".join(f'<testcase classname="t{index}" name="f{n}" time="0.1"><failure message="boom {n}">'
                          f"x</failure></testcase>" for n in range(7))
        (folder / "junit.xml").write_text(f'<testsuites><testsuite name="pytest">{failing}</testsuite></testsuites>')
        folders.append(folder)
    summary, outputs = tmp_path / "summary.md", tmp_path / "outputs"
    env = clean_env(GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(summary), GITHUB_OUTPUT=str(outputs))
    result = cli("merge", *map(str, folders), "--out", str(tmp_path / "out"), env=env)
    assert result.returncode == 1
    assert result.stdout.count("::error ") == 10
    assert "::notice::4 more failures not annotated" in result.stdout
    text = summary.read_text()
    assert [line for line in text.splitlines() if line.startswith("## ")] == [text.splitlines()[0]]
    assert "| 0 | 14 | 0 | 0 |" in text
    assert "failed=14" in outputs.read_text()


@pytest.mark.parametrize("bad", ["0/3", "4/3", "3", "a/b", "1/0", "-1/2"])
def test_a_bad_shard_is_a_one_line_error_before_anything_starts(tmp_path: Path, bad: str) -> None:
    result = cli("run", "--service", str(FIXTURES / "services" / "shards"), "--backend", "native",
                 "--run-folder", str(tmp_path / "runs"), f"--shard={bad}")
    assert result.returncode == ExitCode.CONFIG
    assert result.stderr.strip() == f"testbed: error: --shard {bad!r}: expected K/N with 1 <= K <= N, e.g. --shard 2/3"
    assert not (tmp_path / "runs").exists()


def test_a_durations_file_that_is_not_durations_is_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "durations.json"
    bad.write_text('["not", "pairs"')
    result = cli("run", "--service", str(FIXTURES / "services" / "shards"), "--run-folder", str(tmp_path / "runs"),
                 "--shard", "1/2", "--durations", str(bad))
    assert result.returncode == ExitCode.CONFIG and "not JSON" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_missing_or_empty_durations_mean_an_even_split(tmp_path: Path) -> None:
    assert shard.read_durations(tmp_path / "absent") == {}
    (tmp_path / "empty").write_text("")
    assert shard.read_durations(tmp_path / "empty") == {}
    (tmp_path / "old").write_text('[["t::a", 1]]')  # pytest-split's older format
    assert shard.read_durations(tmp_path / "old") == {"t::a": 1.0}
    (tmp_path / "bad").write_text('{"t::a": "slow"}')
    with pytest.raises(TestbedError, match="expected a JSON object"):
        shard.read_durations(tmp_path / "bad")


@pytest.mark.slow
def test_run_with_shards_runs_them_at_once_and_merges(suite: Path, tmp_path: Path) -> None:
    result = cli("run", "--service", str(suite), "--backend", "native", "--run-folder", str(tmp_path / "runs"),
                 "--shards", "3")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ℹ️  Shards: 3 running at once" in result.stdout
    merged = Path(re.findall(r"Merged folder: (\S+)", result.stdout)[-1])
    report = json.loads((merged / "report.json").read_text())
    assert report["tests"]["passed"] == 10 and [s["shard"] for s in report["shards"]] == [
        "shard 1/3", "shard 2/3", "shard 3/3"]
    assert len(set(_cases(merged / "junit.xml"))) == 10
    for entry in report["shards"]:
        assert leftovers(Path(entry["run_folder"]).name) == []


@pytest.mark.parametrize(("args", "message"), [
    (["--shards", "0"], "--shards '0': expected a number from 1 to 99, or auto"),
    (["--shards", "auto"], "--shards auto needs --inventory FILE --limit GROUP"),
    (["--shards", "2", "--shard", "1/2"], "--shards gives each shard its own --shard K/N and run id"),
])
def test_bad_shards_are_one_line_errors(tmp_path: Path, args: list[str], message: str) -> None:
    result = cli("run", "--service", str(FIXTURES / "services" / "shards"), "--run-folder", str(tmp_path / "runs"),
                 *args)
    assert result.returncode == ExitCode.CONFIG
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_a_shard_whose_group_is_empty_passes(suite: Path, tmp_path: Path) -> None:
    """More shards than tests: the 11th of 11 gets no test (pytest-split hands out 10), and that is a pass."""
    result = cli("run", "--service", str(suite), "--backend", "native", "--ports", "auto",
                 "--run-folder", str(tmp_path / "runs"), "--shard", "11/11")
    assert result.returncode == 0, result.stdout + result.stderr
    folder = run_folder_of(result.stdout)
    assert _cases(folder / "junit.xml") == []
    assert leftovers(folder.name) == []


@pytest.mark.slow
def test_shards_run_at_once_land_beside_the_service(suite: Path) -> None:
    """With no --run-folder, the shards' and the merged folder go under <service>/runs, as one run's does."""
    result = cli("run", "--service", str(suite), "--backend", "native", "--shards", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    merged = Path(re.findall(r"Merged folder: (\S+)", result.stdout)[-1])
    assert merged.parent == suite / "runs"
    assert len([f for f in (suite / "runs").iterdir() if not f.name.startswith("merged-")]) == 2


@pytest.mark.parametrize(("folders", "message"), [
    ([("one", (1, 3), "shards"), ("three", (3, 3), "shards")], "shard 2/3 missing"),
    ([("one", (1, 2), "shards"), ("other", (2, 2), "basic")], "runs of different services (basic, shards)"),
    ([("one", (1, 2), "shards"), ("plain", None, "shards")], "is not a shard (no --shard K/N)"),
    ([("one", (1, 2), "shards"), ("again", (1, 2), "shards")], "a shard given twice"),
    ([("half", (1, 2), "shards"), ("third", (3, 3), "shards")], "splits into 2 and 3 shards"),
])
def test_merge_takes_every_shard_of_one_split_only(tmp_path: Path, folders: list, message: str) -> None:
    """A missing shard would merge into a green report of part of the suite; another service's run into a
    report of neither."""
    made = [_fake_shard(tmp_path / name, [f"t::{name}"], split=split, service=service)
            for name, split, service in folders]
    result = cli("merge", *map(str, made), "--out", str(tmp_path / "out"))
    assert result.returncode == ExitCode.CONFIG, result.stdout + result.stderr
    assert result.stderr.strip().count("\n") == 0 and message in result.stderr
    assert not (tmp_path / "out").exists()
