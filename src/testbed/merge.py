"""`testbed merge`: the run folders of a suite's shards joined into one report, as if one run had tested it
all: junit.xml, combined coverage (data, XML, HTML), report.json, the next split's durations, and under
GitHub Actions one step summary with at most 10 annotations.

The exit code is the worst shard's (`worst`): a cancelled shard (130/143) beats everything, then testbed's
own failures (10-14: a shard that could not provision, migrate or clean up, whose tests did not all run),
then pytest's (1-5), then 0; within a class the higher code. A shard folder that is missing or unreadable,
or a test reported by two shards, is an error naming it (exit 10), before anything is written.

Shard folders are untrusted input (testbed.shard_folder reads them): every file and value is checked before
anything is written, and nothing in them chooses code, settings or files. Coverage is combined here, through
coverage.py's data API, from the shards' measurements of the service's own Python sources only (each shard's
recorded service folder, checked, maps its paths onto this one's); the XML and HTML reports then run in an
isolated interpreter (`python -I`: no folder of the service or a shard on sys.path) in the service folder,
which the user names (--service, or the folder merge runs in), never a shard.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import junitparser

from testbed import github, junit, shard
from testbed.config import nearest_service_dir
from testbed.errors import ExitCode, TestbedError
from testbed.run_record import ShardInfo
from testbed.shard_folder import (
    COVERAGE,
    REPORT,
    STATE,
    Counts,
    Fields,
    ShardReport,
    ShardState,
    check_path,
    copy_coverage,
    load_junit,
    read_durations,
    read_json,
    recorded_service_dir,
    refusal,
    shown,
)

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
    """One shard's run folder, as `testbed run` left it: everything merge uses of it, read and checked."""

    folder: Path
    report: ShardReport
    split: ShardInfo | None  # from the run's state.json: which group of how many it tested
    recorded_dir: str | None = None  # the service folder where it ran (diagnostics/config.json)
    junit: junitparser.JUnitXml | None = None
    before: dict[str, float] | None = None  # the durations it split by (None: not a shard's folder)
    measured: dict[str, float] = field(default_factory=dict)
    coverage: Path | None = None  # a copy of its coverage data, in merge's own folder

    @property
    def label(self) -> str:
        return f"shard {self.split.index}/{self.split.count}" if self.split else self.folder.name


def load(folder: Path, coverage_copy: Path) -> Shard:
    """A shard folder read and checked; its coverage data (if any) copied to `coverage_copy`."""
    if not folder.is_dir():
        problem = "is not a folder" if folder.exists() else "does not exist"
        raise TestbedError(f"merge: shard folder {folder} {problem}; pass the run folders `testbed run` left")
    found = read_json(folder, STATE)
    state = ShardState.parse(Fields(folder, STATE, found)) if found is not None else None
    xml = load_junit(folder)
    found = read_json(folder, REPORT)
    if found is not None:
        report = ShardReport.parse(Fields(folder, REPORT, found))
    elif state is not None and state.split is not None:
        report = _report_of_playbook_run(state, xml)
    else:
        raise refusal(folder, REPORT, "missing; pass the run folder `testbed run` (or the playbook) left")
    return Shard(
        folder=folder,
        report=report,
        split=state.split if state else None,
        recorded_dir=recorded_service_dir(folder),
        junit=xml,
        before=read_durations(folder, shard.BEFORE_FILE),
        measured=read_durations(folder, shard.MEASURED_FILE) or {},
        coverage=coverage_copy if copy_coverage(folder, coverage_copy) else None,
    )


def _report_of_playbook_run(state: ShardState, xml: junitparser.JUnitXml | None) -> ShardReport:
    """A shard that plain ansible-playbook ran (no wrapper, so no report.json): what its folder shows. Its tests
    passed when its JUnit report says so and it was torn down; no JUnit report: it stopped before its tests."""
    summary = junit.summarise(xml) if xml is not None else None
    if summary is None:
        code = ExitCode.CONFIG
    else:
        code = ExitCode.TESTS_FAILED if summary.failed or summary.errors else ExitCode.PASSED
    if not state.torn_down:
        code = ExitCode(worst([int(code), int(ExitCode.TEARDOWN)]))
    return ShardReport(
        run_id=state.run_id,
        service=state.service,
        backend=state.backend,
        exit_code=int(code),
        tests=Counts(**summary.counts()) if summary else None,
        coverage=None,
        duration=None,
    )


def _listed(items: Sequence[str], most: int = 5) -> str:
    return ", ".join(items[:most]) + (f" and {len(items) - most} more" if len(items) > most else "")


def one_split(shards: Sequence[Shard]) -> None:
    """The folders are every shard of one split of one service: a missing shard would merge into a green
    report of part of the suite, another service's run into a report of neither."""
    services = sorted({s.report.service for s in shards})
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
            f"merge: shard {_listed([f'{k}/{counts[0]}' for k in missing])} missing; "
            "pass the run folder of every shard of the split"
        )


def _order(item: Shard) -> tuple[int, int, str]:
    info = item.split
    return (info.count if info else 0, info.index if info else 0, str(item.folder))


def _check_out(out: Path, shards: Sequence[Path], present: Collection[str]) -> None:
    """--out is a new or empty folder of its own: merge cannot tell its own earlier files from anyone else's,
    and an earlier merge's coverage.xml or htmlcov would sit beside a report without coverage."""
    if any(out == f or out.is_relative_to(f) for f in shards):
        raise TestbedError(f"merge: --out {out} is in a shard folder; merge into a folder of its own")
    if out.exists() and not out.is_dir():
        raise TestbedError(f"merge: --out {out} is not a folder; pass a new or empty folder")
    if out.is_dir():
        found = sorted(p.name for p in out.iterdir() if p.name not in present)
        if found:
            raise TestbedError(
                f"merge: --out {out} is not empty (it holds {_listed(found, 3)}); merge into a new or empty folder, "
                "or remove it first"
            )


def _merge_junit(shards: Sequence[Shard]) -> junitparser.JUnitXml:
    """One report of every shard's test cases; a test reported by two shards is an error."""
    merged = junitparser.JUnitXml()
    seen: dict[tuple[str, str], Path] = {}
    for item in shards:
        if item.junit is None:
            continue  # the shard stopped before its tests (its exit code says why)
        for suite in junit.suites(item.junit):
            for case in suite:
                key = (case.classname or "", case.name or "")
                if key in seen:
                    test = "::".join(shown(part, 200, quoted=False) for part in key)
                    raise TestbedError(
                        f"merge: test {test} is reported by two shards, {seen[key]} and {item.folder}; "
                        "merge the shards of one split only"
                    )
                seen[key] = item.folder
            suite.name = f"{suite.name or 'pytest'} ({item.label})"
            merged.add_testsuite(suite)
    merged.update_statistics()  # type: ignore[no-untyped-call]
    return merged


@dataclass
class _Combined:
    """The shards' coverage data combined in merge's own folder: what was kept and what was dropped."""

    data: Path
    service_dir: Path
    kept: int = 0
    dropped: list[str] = field(default_factory=list)


def _service_dir(given: Path | None, shards: Sequence[Path]) -> Path:
    """The service folder whose sources the coverage reports show: --service, else the one merge runs in (as
    for every command). Never a folder a shard records: that would let a shard choose settings and files."""
    if given is None:
        try:
            given = nearest_service_dir(Path.cwd())
        except TestbedError:
            raise TestbedError(
                "merge: the shards measured coverage, and its reports need the service's sources: pass --service "
                "DIR (or run merge in the service's folder)"
            ) from None
    service = given.resolve()
    if not service.is_dir():
        raise TestbedError(f"merge: --service {given} is not a folder; pass the service's folder")
    inside = next((f for f in shards if service == f or service.is_relative_to(f)), None)
    if inside is not None:
        raise TestbedError(f"merge: the service folder {service} is in shard folder {inside}; pass --service DIR")
    return service


def _source(name: str, recorded: str | None, service: Path, avoid: Sequence[Path]) -> str | None:
    """The service's own Python source a shard's measured file is, here; None for anything else (a file
    outside the service folder, in a shard or the merged folder, not Python)."""
    root = str(service)
    if not Path(name).is_absolute():
        path = str(Path(root, name))  # relative_files: relative to the service folder
    elif recorded is not None and (name + "/").startswith(recorded + "/"):
        path = root + name[len(recorded) :]  # measured where the shard ran: here, the same file in this folder
    else:
        path = name
    path = os.path.normpath(path)
    if not path.endswith(".py") or not path.startswith(root + os.sep):
        return None
    real = Path(os.path.realpath(path))
    if not real.is_relative_to(service) or any(real.is_relative_to(a) for a in avoid):
        return None
    return str(real)


def _combine(shards: Sequence[Shard], given: Path | None, scratch: Path, avoid: Sequence[Path]) -> _Combined | None:
    """The shards' coverage data as one data file in merge's folder: only the service's own Python sources, the
    shards' paths mapped onto this machine's service folder. None when no shard measured coverage."""
    from coverage import CoverageData  # noqa: PLC0415
    from coverage.exceptions import CoverageException  # noqa: PLC0415

    measured = [s for s in shards if s.coverage is not None]
    if not measured:
        return None
    service = _service_dir(given, [s.folder for s in shards])
    combined = _Combined(scratch / "combined.coverage", service)
    into = CoverageData(basename=str(combined.data))
    kept: set[str] = set()
    for item in measured:
        try:
            data = CoverageData(basename=str(item.coverage))
            data.read()
            lines: dict[str, set[int]] = {}
            arcs: dict[str, set[tuple[int, int]]] = {}
            for name in sorted(data.measured_files()):
                local = _source(check_path(item.folder, COVERAGE, name), item.recorded_dir, service, avoid)
                if local is None:
                    combined.dropped.append(name)
                elif data.has_arcs():
                    arcs.setdefault(local, set()).update(data.arcs(name) or ())
                else:
                    lines.setdefault(local, set()).update(data.lines(name) or ())
                if local is not None:
                    kept.add(local)
            if data.has_arcs():
                into.add_arcs(arcs)
            else:
                into.add_lines(lines)
        except (CoverageException, sqlite3.Error) as exc:
            raise refusal(item.folder, COVERAGE, f"coverage.py cannot combine it ({exc})") from exc
    combined.kept = len(kept)
    return combined


def _coverage_reports(combined: _Combined, out: Path) -> float | None:
    """The combined data into `out`, then its XML and HTML reports from the service's own coverage settings:
    run in the service folder (its relative omit patterns and file names mean what they mean in one run), in
    an isolated interpreter (-I: neither that folder nor PYTHONPATH on sys.path), over data merge wrote."""
    data = out / "coverage.data"
    shutil.copyfile(combined.data, data)
    if not combined.kept:
        return None
    coverage = [sys.executable, "-I", "-m", "coverage"]
    steps = [
        [*coverage, "xml", "-i", f"--data-file={data}", "-o", str(out / "coverage.xml")],
        [*coverage, "html", "-i", f"--data-file={data}", "-d", str(out / "htmlcov")],
    ]
    for argv in steps:
        result = subprocess.run(argv, cwd=combined.service_dir, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            last = (result.stderr.strip() or result.stdout.strip()).splitlines() or ["no output"]
            raise TestbedError(f"merge: coverage {argv[4]} failed (exit {result.returncode}): {last[-1]}")
    try:
        root = ET.parse(out / "coverage.xml").getroot()  # noqa: S314 - written just now by coverage.py
    except (OSError, ET.ParseError):
        return None
    return round(float(root.get("line-rate", "0")) * 100, 1)


def _durations(shards: Sequence[Shard]) -> tuple[dict[str, float], int]:
    """The next split's durations: every timing the shards split by, overlaid with what they measured."""
    merged: dict[str, float] = {}
    for item in shards:
        merged |= item.before or {}
    measured = 0
    for item in shards:
        fresh = item.measured if item.before is not None else {}
        merged |= fresh
        measured += len(fresh)
    return merged, measured


def _shard_entry(item: Shard) -> dict[str, Any]:
    report = item.report
    return {
        "shard": item.label,
        "run_id": report.run_id,
        "run_folder": str(item.folder),
        "exit_code": report.exit_code,
        "result": "passed" if report.exit_code == 0 else "failed",
        "tests": report.tests.as_dict() if report.tests else {},
        "coverage": report.coverage,
        "duration": report.duration,
        "phases": [p.as_dict() for p in report.phases],
    }


def merge(
    folders: Sequence[Path], out: Path, service_dir: Path | None = None, *, present: Collection[str] = ()
) -> dict[str, Any]:
    """Merge the shards' run folders into `out` (new or empty; `present`: names the caller put there first);
    returns the merged report (also `out/report.json`)."""
    if not folders:
        raise TestbedError("merge: no run folders given; pass the shards' run folders")
    resolved = [f.resolve() for f in folders]
    if len(set(resolved)) != len(resolved):
        raise TestbedError("merge: a run folder is given twice; each shard's folder once")
    out = out.resolve()
    if out in resolved:
        raise TestbedError(f"merge: --out {out} is one of the shard folders; merge into a folder of its own")
    with tempfile.TemporaryDirectory(prefix="testbed-merge-") as scratch:
        # Everything is read and checked first: a refusal leaves nothing written.
        shards = sorted((load(f, Path(scratch) / f"{n}.coverage") for n, f in enumerate(resolved)), key=_order)
        one_split(shards)
        _check_out(out, resolved, present)
        combined = _combine(shards, service_dir, Path(scratch), [*resolved, out])
        merged_junit = _merge_junit(shards)
        durations, measured = _durations(shards)
        out.mkdir(parents=True, exist_ok=True)
        merged_junit.write(str(out / "junit.xml"))
        (out / "durations.json").write_text(json.dumps(durations, indent=4, sort_keys=True), encoding="utf-8")
        coverage = _coverage_reports(combined, out) if combined else None
    summary = junit.parse(out / "junit.xml") or junit.JUnitSummary()
    counts = summary.counts()
    entries = [_shard_entry(s) for s in shards]
    slowest = max(entries, key=lambda e: e["duration"] or 0)
    counts["duration"] = max((e["tests"] or {}).get("duration") or 0 for e in entries)
    code = worst([e["exit_code"] for e in entries])
    notices = []
    if combined and combined.dropped:
        notices.append(
            f"Coverage: {len(combined.dropped)} measured file(s) that are not Python sources of "
            f"{combined.service_dir} left out (e.g. {shown(combined.dropped[0], 120)})"
        )
    report = {
        "run_id": out.name,
        "service": shards[0].report.service or "service",
        "backend": ", ".join(sorted({s.report.backend for s in shards})),
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
        "notices": notices,
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
    lines += [f"⚠️  {notice}" for notice in report.get("notices", [])]
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
