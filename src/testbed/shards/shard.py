"""One shard folder, read and checked as untrusted input: its report, split, JUnit report, durations and
coverage data, as merge uses them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import junitparser

from testbed.core import junit
from testbed.core.errors import ExitCode, TestbedError, worst
from testbed.parallel import split as parallel_split
from testbed.run.record import ShardInfo
from testbed.shards.coverage import copy_coverage
from testbed.shards.folder import (
    REPORT,
    STATE,
    Fields,
    load_junit,
    read_durations,
    read_json,
    recorded_service_dir,
    refusal,
)
from testbed.shards.schema import Counts, ShardReport, ShardState


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
        before=read_durations(folder, parallel_split.BEFORE_FILE),
        measured=read_durations(folder, parallel_split.MEASURED_FILE) or {},
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
