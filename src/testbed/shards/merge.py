"""`testbed merge`: the run folders of a suite's shards joined into one report, as if one run had tested it
all: junit.xml, combined coverage (data, XML, HTML), report.json, the next split's durations, and under
GitHub Actions one step summary with at most 10 annotations.

The exit code is the worst shard's (testbed.core.errors.worst). A shard folder that is missing or unreadable,
or a test reported by two shards, is an error naming it (exit 10), before anything is written. Shard folders
are untrusted input (testbed.shards.folder reads them): nothing in them chooses code, settings or files."""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import IO, Any

import junitparser

from testbed.core import junit
from testbed.core.errors import TestbedError, worst
from testbed.report import github
from testbed.run.outcome import tests_line
from testbed.shards.coverage import combine, coverage_reports
from testbed.shards.folder import (
    shown,
)
from testbed.shards.shard import Shard, load


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
        combined = combine(shards, service_dir, Path(scratch), [*resolved, out])
        merged_junit = _merge_junit(shards)
        durations, measured = _durations(shards)
        out.mkdir(parents=True, exist_ok=True)
        merged_junit.write(str(out / "junit.xml"))
        (out / "durations.json").write_text(json.dumps(durations, indent=4, sort_keys=True), encoding="utf-8")
        coverage = coverage_reports(combined, out) if combined else None
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
