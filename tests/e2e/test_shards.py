"""Shards (`testbed run --shard K/N`, pytest-split) run at once and merged (`testbed merge`) give the same
report as one run; durations recorded by one split change the next; merge refuses what is not one split."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from support import FIXTURES, PROJECT, clean_env, cli, leftovers, playbook, run_folder_of
from testbed.core.errors import ExitCode, TestbedError
from testbed.parallel import split as parallel_split
from testbed.shards import merge

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
    merged = cli("merge", *map(str, first), "--out", str(tmp_path / "merged"), cwd=suite)  # the service's merge
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
    merged = cli("merge", *map(str, folders), "--out", str(tmp_path / "merged"), "--service", str(reference))
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
        (folder / parallel_split.BEFORE_FILE).write_text(json.dumps({"tests/test_gone.py::test_old": 9.0, "t::a": 5.0}))
        (folder / parallel_split.MEASURED_FILE).write_text(json.dumps(durations))
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
    folders = [_fake_shard(tmp_path / f"shard{i}", [f"t::case{i}"], code) for i, code in enumerate(codes)]
    assert merge.merge(folders, tmp_path / "out")["exit_code"] == expected
    result = cli("merge", *map(str, folders), "--out", str(tmp_path / "out2"))
    assert result.returncode == expected


def test_merge_under_github_actions_writes_one_summary_and_at_most_10_annotations(tmp_path: Path) -> None:
    folders = []
    for index in range(2):
        folder = _fake_shard(tmp_path / f"shard{index}", [], 1)
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
    assert parallel_split.read_durations(tmp_path / "absent") == {}
    (tmp_path / "empty").write_text("")
    assert parallel_split.read_durations(tmp_path / "empty") == {}
    (tmp_path / "old").write_text('[["t::a", 1]]')  # pytest-split's older format
    assert parallel_split.read_durations(tmp_path / "old") == {"t::a": 1.0}
    (tmp_path / "bad").write_text('{"t::a": "slow"}')
    with pytest.raises(TestbedError, match="expected a JSON object"):
        parallel_split.read_durations(tmp_path / "bad")


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


# Shard folders are untrusted input: artifacts another job wrote (a fork's pull request, another host). Each
# test below takes two real shards (run once per module), copies them and tampers with the copy as such a job
# could; merge refuses in one line naming the folder and the file, or leaves out what is not the service's.


@pytest.fixture(scope="module")
def real_shards(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """The fixture suite in two real shards (`testbed run --shard K/2`), run folders outside the service."""
    base = tmp_path_factory.mktemp("real-shards")
    service = Path(shutil.copytree(FIXTURES / "services" / "shards", base / "shards"))
    return service, _run_shards(service, base / "runs", 2)


def _copies(real: tuple[Path, list[Path]], where: Path) -> list[Path]:
    return [Path(shutil.copytree(f, where / f.name, symlinks=True)) for f in real[1]]


def _one_line_refusal(result: subprocess.CompletedProcess[str], folder: Path, name: str, *words: str) -> None:
    assert result.returncode == ExitCode.CONFIG, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"shard folder {folder} is unreadable: {name}: " in result.stderr, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


def _plugin(marker: Path) -> str:
    """A coverage plugin (or any module) that leaves `marker` behind if it is ever imported."""
    return f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\ndef coverage_init(reg, options): pass\n"


@pytest.mark.parametrize("separator", ["\n", "\r"], ids=["newline", "carriage-return"])
def test_a_recorded_service_folder_cannot_add_coverage_settings(
    real_shards: tuple[Path, list[Path]], tmp_path: Path, separator: str
) -> None:
    """The shard's "directory" went into coverage's config unescaped: a line break added `[run] plugins =` and
    coverage imported the plugin from the shard folder (shards come back under the service's runs/)."""
    service = Path(shutil.copytree(real_shards[0], tmp_path / "service"))
    shards = _copies(real_shards, service / "runs")
    marker = tmp_path / "plugin-ran"
    (shards[0] / "evil.py").write_text(_plugin(marker))
    config = shards[0] / "diagnostics" / "config.json"
    clean = config.read_text()
    data = json.loads(clean)
    data["directory"] = separator.join([str(real_shards[0]), "[run]", f"plugins = runs.{shards[0].name}.evil", "#"])
    config.write_text(json.dumps(data))
    result = cli("merge", *map(str, shards), "--out", str(tmp_path / "out"), "--service", str(service))
    _one_line_refusal(result, shards[0], "diagnostics/config.json", '"directory"', "absolute path on one line")
    assert not marker.exists() and not (tmp_path / "out").exists()
    # The same shards as `testbed run` left them merge as before, measured elsewhere and mapped onto this folder.
    config.write_text(clean)
    result = cli("merge", *map(str, shards), "--out", str(tmp_path / "out"), "--service", str(service))
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["tests"]["passed"] == 10 and report["coverage"] == 100.0 and report["notices"] == []
    assert not marker.exists()


def test_coverage_of_files_that_are_not_the_service_s_sources_is_left_out(
    real_shards: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    from coverage import CoverageData  # noqa: PLC0415

    service = real_shards[0]
    shards = _copies(real_shards, tmp_path / "shards")
    outside = tmp_path / "x" / "credentials.py"
    outside.parent.mkdir()
    outside.write_text('password = "outside-hunter2"\n')
    (shards[0] / "stolen.py").write_text('token = "shard-folder-text"\n')
    data = CoverageData(basename=str(shards[0] / "coverage.data"))
    data.read()
    # A file outside the service, one in a shard folder, and one in the service that is no Python source.
    data.add_lines({str(outside): [1], str(shards[0] / "stolen.py"): [1], str(service / "testbed.yml"): [1, 2]})
    data.close()
    result = cli("merge", *map(str, shards), "--out", str(tmp_path / "out"), "--service", str(service))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "⚠️  Coverage: 3 measured file(s) that are not Python sources of" in result.stdout
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["coverage"] == 100.0
    texts = [(tmp_path / "out" / "coverage.xml").read_text()]
    texts += [page.read_text() for page in (tmp_path / "out" / "htmlcov").glob("*.html")]
    assert any("shards_app" in text for text in texts)
    for secret in ("outside-hunter2", "shard-folder-text", "coverage: [shards_app]", "credentials", "stolen"):
        assert not any(secret in text for text in texts), secret


def test_settings_and_modules_planted_beside_the_shards_never_run(
    real_shards: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    """A shard cannot name the folder coverage runs in: its recorded "directory" (here the artifact folder that
    holds it, full of planted configs and modules) only maps paths; merge runs in the folder the user is in."""
    artifact = tmp_path / "artifact"
    shards = _copies(real_shards, artifact)
    marker, secret = tmp_path / "planted-ran", tmp_path / "secret.css"
    secret.write_text("/* secret-css-text */")
    rc = f"[run]\nplugins = planted\n[html]\nextra_css = {secret}\n"
    for folder in [artifact, *shards]:
        (folder / "testbed.yml").write_text("name: shards\n")
        (folder / ".coveragerc").write_text(rc)
        (folder / "setup.cfg").write_text(rc.replace("[", "[coverage:"))
        (folder / "tox.ini").write_text(rc.replace("[", "[coverage:"))
        (folder / "pyproject.toml").write_text(f'[tool.coverage.run]\nplugins = ["planted"]\n'
                                               f'[tool.coverage.html]\nextra_css = "{secret}"\n')
        for module in ("planted.py", "sitecustomize.py", "usercustomize.py", "coverage/__init__.py"):
            (folder / module).parent.mkdir(exist_ok=True)
            (folder / module).write_text(_plugin(marker))
        if folder != artifact:
            config = folder / "diagnostics" / "config.json"
            config.write_text(json.dumps({**json.loads(config.read_text()), "directory": str(artifact)}))
    result = cli("merge", *map(str, shards), "--out", str(tmp_path / "out"), cwd=real_shards[0])
    assert result.returncode == 0, result.stdout + result.stderr
    assert not marker.exists()
    assert json.loads((tmp_path / "out" / "report.json").read_text())["coverage"] == 100.0
    assert not any(b"secret-css-text" in p.read_bytes() for p in (tmp_path / "out" / "htmlcov").iterdir())
    # Without --service, outside a service's folder: merge says what it needs instead of taking the shards' word.
    result = cli("merge", *map(str, shards), "--out", str(tmp_path / "out2"), cwd=tmp_path)
    assert result.returncode == ExitCode.CONFIG and "pass --service DIR" in result.stderr
    assert not marker.exists() and not (tmp_path / "out2").exists()


def _set(data: dict, path: str, value: object) -> None:
    *parents, last = path.split(".")
    for key in parents:
        data = data[key]
    data[last] = value


@pytest.mark.parametrize(("name", "path", "value", "words"), [
    ("report.json", "exit_code", 256, ['"exit_code" is 256', "exit codes"]),
    ("report.json", "exit_code", -255, ['"exit_code" is -255']),
    ("report.json", "exit_code", "0", ['"exit_code" is \'0\'']),
    ("report.json", "duration", "abc", ['"duration" is \'abc\'', "a number from 0"]),
    ("report.json", "tests.passed", -1, ['"tests.passed" is -1', "a whole number from 0"]),
    ("report.json", "coverage", 101, ['"coverage" is 101', "from 0 to 100"]),
    ("report.json", "run_id", "a\n::warning::x", ['"run_id" is \'a\\n::warning::x\'']),
    ("report.json", "phases", [{"name": "tests", "started": "yesterday"}], ['"phases[0].started"']),
    ("state.json", "shard.count", 5000, ['"shard.count" is 5000', "from 1 to 1000"]),
    ("state.json", "shard.index", 3, ['"shard.index" is 3', "from 1 to 2"]),
    ("durations.json", "t::a", -1.0, ["from 0 to"]),
], ids=["exit-256", "exit-minus-255", "exit-text", "duration-abc", "passed-negative", "coverage-101", "run-id-newline",
        "phase-started-text", "shard-count-5000", "shard-index-3-of-2", "duration-negative"])
def test_impossible_values_in_a_shard_are_refused(
    real_shards: tuple[Path, list[Path]], tmp_path: Path, name: str, path: str, value: object, words: list[str]
) -> None:
    shards = _copies(real_shards, tmp_path / "shards")
    target = shards[1] / name
    data = json.loads(target.read_text())
    _set(data, path, value)
    target.write_text(json.dumps(data))
    result = cli("merge", *map(str, shards), "--out", str(tmp_path / "out"), "--service", str(real_shards[0]))
    _one_line_refusal(result, shards[1], name, *words)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("name", "pattern", "new", "words"), [
    ("report.json", r'"duration": ', '"duration": NaN, "was": ', ["NaN is not a number JSON allows"]),
    ("junit.xml", r'(?<=<testcase )(.*?)time="[^"]*"', r'\1time="abc"', ["has time 'abc'", "expected seconds"]),
    ("junit.xml", r'(?<=<testcase )(.*?)time="[^"]*"', r'\1time="-1"', ["has time '-1'"]),
], ids=["nan", "time-abc", "time-negative"])
def test_impossible_text_in_a_shard_is_refused(
    real_shards: tuple[Path, list[Path]], tmp_path: Path, name: str, pattern: str, new: str, words: list[str]
) -> None:
    shards = _copies(real_shards, tmp_path / "shards")
    text, changes = re.subn(pattern, new, (shards[0] / name).read_text(), count=1)
    assert changes == 1
    (shards[0] / name).write_text(text)
    result = cli("merge", *map(str, shards), "--out", str(tmp_path / "out"), "--service", str(real_shards[0]))
    _one_line_refusal(result, shards[0], name, *words)


@pytest.mark.parametrize("name", ["report.json", "state.json", "junit.xml", "coverage.data", "durations.json",
                                  "diagnostics/config.json", "diagnostics"])
def test_a_symlink_in_a_shard_folder_is_refused(
    real_shards: tuple[Path, list[Path]], tmp_path: Path, name: str
) -> None:
    """Even to a valid copy of the same file: a run writes no symlink, and one could point anywhere (/dev/zero,
    another user's files)."""
    shards = _copies(real_shards, tmp_path / "shards")
    elsewhere = tmp_path / "elsewhere" / name.replace("/", "-")
    elsewhere.parent.mkdir()
    (shards[0] / name).rename(elsewhere)
    (shards[0] / name).symlink_to(elsewhere)
    result = cli("merge", *map(str, shards), "--out", str(tmp_path / "out"), "--service", str(real_shards[0]))
    _one_line_refusal(result, shards[0], name, "is a symlink")
    assert not (tmp_path / "out").exists()


def test_an_oversize_or_special_file_in_a_shard_folder_is_refused(
    real_shards: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    shards = _copies(real_shards, tmp_path / "shards")
    report = json.loads((shards[0] / "report.json").read_text())
    (shards[0] / "report.json").write_text(json.dumps({**report, "padding": "x" * (1 << 20)}))
    result = cli("merge", *map(str, shards), "--out", str(tmp_path / "out"), "--service", str(real_shards[0]))
    _one_line_refusal(result, shards[0], "report.json", "bytes; merge reads at most 1048576 of it")
    (shards[0] / "report.json").write_text(json.dumps(report))
    # A FIFO would block a plain read forever; merge refuses it without opening it for long.
    (shards[1] / "junit.xml").unlink()
    os.mkfifo(shards[1] / "junit.xml")
    result = cli("merge", *map(str, shards), "--out", str(tmp_path / "out"), "--service", str(real_shards[0]),
                 timeout=120)
    _one_line_refusal(result, shards[1], "junit.xml", "is not a regular file")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("sql", "words"), [
    (["ALTER TABLE file RENAME TO file_rows", "CREATE VIEW file AS SELECT * FROM file_rows"],
     "holds table 'file_rows', which coverage.py never writes"),
    (["CREATE TRIGGER t AFTER INSERT ON meta BEGIN DELETE FROM meta; END"], "holds trigger 't'"),
    (["ALTER TABLE file ADD COLUMN g GENERATED ALWAYS AS (length(path))"], "table file has generated columns"),
], ids=["view", "trigger", "generated-column"])
def test_coverage_data_with_code_in_its_schema_is_refused(
    real_shards: tuple[Path, list[Path]], tmp_path: Path, sql: list[str], words: str
) -> None:
    """A view, trigger or generated column is SQL of the shard's choosing, run when coverage.py uses the file."""
    shards = _copies(real_shards, tmp_path / "shards")
    with sqlite3.connect(shards[0] / "coverage.data") as db:
        for statement in sql:
            db.execute(statement)
    result = cli("merge", *map(str, shards), "--out", str(tmp_path / "out"), "--service", str(real_shards[0]))
    _one_line_refusal(result, shards[0], "coverage.data", words)
    assert not (tmp_path / "out").exists()


def test_merge_into_a_non_empty_folder_is_refused_and_touches_nothing(tmp_path: Path) -> None:
    """An earlier merge's coverage.xml and htmlcov would sit beside a report without coverage."""
    out = tmp_path / "out"
    (out / "htmlcov").mkdir(parents=True)
    (out / "coverage.xml").write_text("<coverage line-rate='0.99'/>")
    (out / "htmlcov" / "index.html").write_text("earlier")
    folders = [_fake_shard(tmp_path / f"shard{k}", [f"t::case{k}"], split=(k, 2)) for k in (1, 2)]
    result = cli("merge", *map(str, folders), "--out", str(out))
    assert result.returncode == ExitCode.CONFIG and result.stderr.count("\n") == 1
    assert f"--out {out} is not empty (it holds coverage.xml, htmlcov)" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["coverage.xml", "htmlcov"]
    assert (out / "htmlcov" / "index.html").read_text() == "earlier"
    assert cli("merge", *map(str, folders), "--out", str(tmp_path / "empty")).returncode == 0


@pytest.mark.parametrize(("name", "text", "words"), [
    ("junit.xml", "<foo/>", ["not valid JUnit XML"]),
    ("junit.xml", '<testsuites><testsuite name="x"><testcase ***="1"/></testsuite></testsuites>',
     ["not valid JUnit XML"]),
    ("junit.xml", '<?xml version="1.0"?><!DOCTYPE t [<!ENTITY a "aaaaaaaa">]><testsuites><testsuite name="&a;">'
                  "</testsuite></testsuites>", ["document type declaration"]),
    ("junit.xml", '<?xml version="1.0" encoding="cp037"?><testsuites/>', ["declares encoding 'cp037'"]),
    ("state.json", '{"shard": {"index": 1, "count": 2}, "boo***cc": 1', ["not valid JSON"]),
    ("durations.json", '{"t::a": ', ["not JSON"]),
], ids=["another-root", "redacted-attribute", "doctype", "encoding", "redacted-state", "durations"])
def test_the_file_that_is_unreadable_is_the_one_named(tmp_path: Path, name: str, text: str,
                                                      words: list[str]) -> None:
    """A redacted state.json made merge blame report.json, which was valid; a junit.xml of another root was a
    traceback."""
    folders = [_fake_shard(tmp_path / f"shard{k}", [f"t::case{k}"], split=(k, 2), durations={})
               for k in (1, 2)]
    (folders[1] / name).write_text(text)
    result = cli("merge", *map(str, folders), "--out", str(tmp_path / "out"))
    _one_line_refusal(result, folders[1], name, *words)
    assert not (tmp_path / "out").exists()
