"""`testbed merge`: the run folders of a suite's shards joined into one report, as if one run had tested it
all: junit.xml, combined coverage (data, XML, HTML), report.json, the next split's durations, and under
GitHub Actions one step summary with at most 10 annotations.

The exit code is the worst shard's (`worst`): a cancelled shard (130/143) beats everything, then testbed's
own failures (10-14: a shard that could not provision, migrate or clean up, whose tests did not all run),
then pytest's (1-5), then 0; within a class the higher code. A shard folder that is missing or unreadable,
or a test reported by two shards, is an error naming it (exit 10), before anything is written.
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from testbed import github, junit, shard
from testbed.errors import ExitCode, TestbedError
from testbed.run_record import ShardInfo

_SIGNALS = (ExitCode.SIGINT, ExitCode.SIGTERM)


def rank(code: int) -> tuple[int, int]:
    """How bad an exit code is, for `worst`."""
    if code == 0:
        return (0, 0)
    if code in _SIGNALS:
        return (3, code)
    if code >= ExitCode.CONFIG:
        return (2, code)
    return (1, code)


def worst(codes: Sequence[int]) -> int:
    return max(codes, key=rank, default=0)


@dataclass(frozen=True)
class Shard:
    """One shard's run folder, as `testbed run` left it."""

    folder: Path
    report: dict[str, Any]
    split: ShardInfo | None  # from the run's state.json: which group of how many it tested

    @property
    def label(self) -> str:
        return f"shard {self.split.index}/{self.split.count}" if self.split else self.folder.name

    @property
    def service_dir(self) -> Path | None:
        try:
            config = json.loads((self.folder / "diagnostics" / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return Path(config["directory"]) if isinstance(config, dict) and config.get("directory") else None

    def durations(self, name: str) -> dict[str, float]:
        return shard.read_durations(self.folder / name)


def load(folder: Path) -> Shard:
    report_path = folder / "report.json"
    if not folder.is_dir():
        raise TestbedError(f"merge: shard folder {folder} does not exist; pass the run folders `testbed run` left")
    state_path = folder / "state.json"
    reading = state_path  # the file named when one cannot be read
    try:
        state = json.loads(state_path.read_text(encoding="utf-8")) if state_path.is_file() else {}
        reading = report_path
        if not report_path.exists() and isinstance(state, dict) and state.get("shard"):
            report = _report_of_playbook_run(folder, state)
        else:
            report = json.loads(report_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TestbedError(f"merge: shard folder {folder} is unreadable: {reading}: {exc}") from exc
    for path, document in ((state_path, state), (report_path, report)):
        if not isinstance(document, dict):
            raise TestbedError(f"merge: shard folder {folder} is unreadable: {path} is not a JSON object")
    try:
        split = ShardInfo.from_dict(state.get("shard"))
    except (KeyError, TypeError, ValueError) as exc:
        raise TestbedError(f"merge: shard folder {folder} is unreadable: {state_path}: shard {exc!r}") from exc
    return Shard(folder, report, split)


def _report_of_playbook_run(folder: Path, state: dict[str, Any]) -> dict[str, Any]:
    """A shard that plain ansible-playbook ran (no wrapper, so no report.json): what its folder shows. Its tests
    passed when its JUnit report says so and it was torn down; no JUnit report: it stopped before its tests."""
    summary = junit.parse(folder / "junit.xml")
    if summary is None or summary.problem:
        code = ExitCode.CONFIG
    else:
        code = ExitCode.TESTS_FAILED if summary.failed or summary.errors else ExitCode.PASSED
    if not state.get("torn_down"):
        code = ExitCode(worst([int(code), int(ExitCode.TEARDOWN)]))
    return {
        "run_id": state.get("run_id"),
        "service": state.get("service", ""),
        "backend": state.get("backend", "?"),
        "exit_code": int(code),
        "result": "passed" if code == ExitCode.PASSED else "failed",
        "tests": summary.counts() if summary and not summary.problem else None,
        "coverage": None,
        "duration": None,
        "phases": [],
    }


def one_split(shards: Sequence[Shard]) -> None:
    """The folders are every shard of one split of one service: a missing shard would merge into a green
    report of part of the suite, another service's run into a report of neither."""
    services = sorted({str(s.report.get("service", "")) for s in shards})
    if len(services) > 1:
        raise TestbedError(
            f"merge: the folders are runs of different services ({', '.join(services)}); "
            "merge the shards of one split only"
        )
    if all(s.split is None for s in shards):
        return  # plain runs of one service: nothing says how the suite was split
    plain = next((s.folder for s in shards if s.split is None), None)
    if plain is not None:
        raise TestbedError(f"merge: {plain} is not a shard (no --shard K/N); merge the shards of one split only")
    splits = [s.split for s in shards if s.split is not None]
    counts = sorted({info.count for info in splits})
    if len(counts) > 1:
        raise TestbedError(
            f"merge: the folders come from splits into {' and '.join(map(str, counts))} shards; "
            "merge the shards of one split only"
        )
    indices = sorted(info.index for info in splits)
    if len(indices) != len(set(indices)):
        raise TestbedError("merge: a shard given twice (two runs of the same group); pass each shard's folder once")
    missing = sorted(set(range(1, counts[0] + 1)) - set(indices))
    if missing:
        raise TestbedError(
            f"merge: shard {', '.join(f'{k}/{counts[0]}' for k in missing)} missing; "
            "pass the run folder of every shard of the split"
        )


def _order(item: Shard) -> tuple[int, int, str]:
    info = item.split
    return (info.count if info else 0, info.index if info else 0, str(item.folder))


def _merge_junit(shards: Sequence[Shard], out: Path) -> None:
    """One junit.xml of every shard's test cases; a test reported by two shards is an error."""
    from junitparser import JUnitXml, TestSuite  # noqa: PLC0415

    merged = JUnitXml()
    seen: dict[tuple[str, str], Path] = {}
    for item in shards:
        path = item.folder / "junit.xml"
        if not path.is_file():
            continue  # the shard stopped before its tests (its exit code says why)
        try:
            xml = JUnitXml.fromfile(str(path))
        except (OSError, ET.ParseError) as exc:
            raise TestbedError(f"merge: shard folder {item.folder} is unreadable: {path}: {exc}") from exc
        suites = [xml] if isinstance(xml, TestSuite) else list(xml)
        for suite in suites:
            for case in suite:
                key = (case.classname or "", case.name or "")
                if key in seen:
                    raise TestbedError(
                        f"merge: test {key[0]}::{key[1]} is reported by two shards, {seen[key]} and {item.folder}; "
                        "merge the shards of one split only"
                    )
                seen[key] = item.folder
            suite.name = f"{suite.name or 'pytest'} ({item.label})"
            merged.add_testsuite(suite)
    merged.update_statistics()  # type: ignore[no-untyped-call]
    merged.write(str(out / "junit.xml"))


def _coverage(shards: Sequence[Shard], out: Path, service_dir: Path | None) -> float | None:
    """`coverage combine` of every shard's data file, then XML and HTML from the service's own config.
    Each shard measured its service folder where it ran (another machine, a runner host's workspace):
    a `[paths]` rcfile maps those folders onto this one's."""
    data_files = [s.folder / "coverage.data" for s in shards if (s.folder / "coverage.data").is_file()]
    if not data_files:
        return None
    if service_dir is None or not service_dir.is_dir():
        raise TestbedError(
            f"merge: the service's folder {service_dir or '(unknown)'} is not here, and coverage reports need "
            "its sources; pass --service DIR"
        )
    remote = sorted({str(d) for s in shards if (d := s.service_dir) and d != service_dir})
    rcfile = out / "coverage-paths.ini"
    rcfile.write_text(
        "[paths]\nsource =\n" + "".join(f"    {p}/\n" for p in [str(service_dir), *remote]), encoding="utf-8"
    )
    data = out / "coverage.data"
    data.unlink(missing_ok=True)
    coverage = [sys.executable, "-m", "coverage"]
    steps = [
        [*coverage, "combine", "--keep", f"--rcfile={rcfile}", f"--data-file={data}", *map(str, data_files)],
        [*coverage, "xml", "-i", f"--data-file={data}", "-o", str(out / "coverage.xml")],
        [*coverage, "html", "-i", f"--data-file={data}", "-d", str(out / "htmlcov")],
    ]
    for argv in steps:
        result = subprocess.run(argv, cwd=service_dir, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            last = (result.stderr.strip() or result.stdout.strip()).splitlines() or ["no output"]
            raise TestbedError(f"merge: coverage {argv[3]} failed (exit {result.returncode}): {last[-1]}")
    try:
        root = ET.parse(out / "coverage.xml").getroot()  # noqa: S314 - written just now by coverage.py
    except (OSError, ET.ParseError):
        return None
    return round(float(root.get("line-rate", "0")) * 100, 1)


def _durations(shards: Sequence[Shard], out: Path) -> int:
    """The next split's durations: every timing the shards split by, overlaid with what they measured."""
    merged: dict[str, float] = {}
    for item in shards:
        merged |= item.durations(shard.BEFORE_FILE)
    measured = 0
    for item in shards:
        fresh = item.durations(shard.MEASURED_FILE) if (item.folder / shard.BEFORE_FILE).is_file() else {}
        merged |= fresh
        measured += len(fresh)
    (out / "durations.json").write_text(json.dumps(merged, indent=4, sort_keys=True), encoding="utf-8")
    return measured


def _shard_entry(item: Shard) -> dict[str, Any]:
    report = item.report
    tests = report.get("tests") or {}
    return {
        "shard": item.label,
        "run_id": report.get("run_id"),
        "run_folder": str(item.folder),
        "exit_code": report.get("exit_code"),
        "result": report.get("result"),
        "tests": tests,
        "coverage": report.get("coverage"),
        "duration": report.get("duration"),
        "phases": report.get("phases") or [],
    }


def merge(folders: Sequence[Path], out: Path, service_dir: Path | None = None) -> dict[str, Any]:
    """Merge the shards' run folders into `out`; returns the merged report (also `out/report.json`)."""
    if not folders:
        raise TestbedError("merge: no run folders given; pass the shards' run folders")
    resolved = [f.resolve() for f in folders]
    if len(set(resolved)) != len(resolved):
        raise TestbedError("merge: a run folder is given twice; each shard's folder once")
    shards = sorted((load(f) for f in resolved), key=_order)
    one_split(shards)
    out = out.resolve()
    if out in resolved:
        raise TestbedError(f"merge: --out {out} is one of the shard folders; merge into a folder of its own")
    out.mkdir(parents=True, exist_ok=True)
    _merge_junit(shards, out)
    summary = junit.parse(out / "junit.xml") or junit.JUnitSummary()
    counts = summary.counts()
    entries = [_shard_entry(s) for s in shards]
    slowest = max(entries, key=lambda e: e["duration"] or 0)
    counts["duration"] = max((e["tests"] or {}).get("duration") or 0 for e in entries)
    service_dir = service_dir or next((d for s in shards if (d := s.service_dir) and d.is_dir()), None)
    coverage = _coverage(shards, out, service_dir)
    measured = _durations(shards, out)
    code = worst([int(e["exit_code"]) if isinstance(e["exit_code"], int) else int(ExitCode.CONFIG) for e in entries])
    report = {
        "run_id": out.name,
        "service": shards[0].report.get("service", "service"),
        "backend": ", ".join(sorted({str(s.report.get("backend", "?")) for s in shards})),
        "exit_code": code,
        "result": "passed" if code == 0 else "failed",
        "tests": counts,
        "coverage": coverage,
        # One bar per shard in the step summary's chart: they ran side by side.
        "phases": [
            {
                "name": e["shard"],
                "title": e["shard"].capitalize(),
                "status": "ok" if e["exit_code"] == 0 else "failed",
                "started": min((p.get("started") or 0 for p in e["phases"]), default=0) or None,
                "duration": e["duration"] or 0,
            }
            for e in entries
        ],
        "shards": entries,
        "slowest_shard": {
            "shard": slowest["shard"],
            "run_folder": slowest["run_folder"],
            "duration": slowest["duration"],
        },
        "durations_measured": measured,
        "run_folder": str(out),
        "junit": str(out / "junit.xml"),
    }
    (out / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    return report


def show(report: dict[str, Any], stream: IO[str] = sys.stdout) -> None:
    """The merge in a few lines, then (under GitHub Actions) the summary and annotations."""
    from testbed.phase_results import tests_line  # noqa: PLC0415

    mark = "✅" if report["exit_code"] == 0 else "❌"
    lines = [f"{mark} Merged {len(report['shards'])} shards: {tests_line(report['tests'])} (slowest shard)"]
    for entry in report["shards"]:
        tests = tests_line(entry["tests"]) if entry["tests"] else "no tests ran"
        lines.append(f"   {entry['shard']}: exit {entry['exit_code']}, {tests}")
    if report["coverage"] is not None:
        lines.append(f"✅ Coverage: {report['coverage']:g}%")
    lines.append(
        f"ℹ️  Durations: {report['durations_measured']} measured; next split: {report['run_folder']}/durations.json"
    )
    lines.append(f"📁 Merged folder: {report['run_folder']}")
    stream.write("\n".join(lines) + "\n")
    publish(report, stream)


def publish(report: dict[str, Any], stream: IO[str] = sys.stdout) -> None:
    """Under GitHub Actions: at most 10 annotations, the one step summary, the step outputs."""
    if not github.is_github_actions():
        return
    summary = junit.parse(Path(report["junit"]))
    failures = summary.failures if summary else ()
    for line in github.annotations(failures):
        stream.write(line + "\n")
    github.write_summary(report, failures=failures)
    github.write_outputs(report)
