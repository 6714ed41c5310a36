"""One shard of a suite: which of N groups a run tests (pytest-split, by recorded durations), and the
durations it records for the next split.

The prior durations come from `--durations FILE` (`testbed_durations`), default `<service>/.test_durations`
(pytest-split's own default, so a team that already keeps one goes on using it). No file, or an empty one,
means no durations are known: pytest-split then gives every test the same weight, an even split by count.
The run folder keeps `durations-before.json` (what the split used) and `durations.json` (this shard's
measured timings only); `testbed merge` joins them into the next split's file.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from testbed.core import files
from testbed.core.errors import ExitCode, TestbedError
from testbed.run.record import ShardInfo
from testbed.run.store import RunState

DEFAULT_DURATIONS = ".test_durations"
BEFORE_FILE = "durations-before.json"
MEASURED_FILE = "durations.json"
MAX_SECONDS = 1e7  # one test's duration (about 16 weeks): more is not a measurement
MAX_SHARDS = 1000  # more groups than any split runs (`testbed merge` refuses more too)
_SHARD = re.compile(r"^(\d{1,9})/(\d{1,9})$")
# pytest's own summary: "collected 9 items / 9 deselected": a shard whose group is empty.
_ALL_DESELECTED = re.compile(r"collected (\d+) items? / (\d+) deselected")


def parse(text: str) -> tuple[int, int]:
    """`K/N` → (K, N), 1 <= K <= N; anything else is a one-line error."""
    match = _SHARD.fullmatch(text.strip())
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise TestbedError(f"--shard {text!r}: expected K/N with 1 <= K <= N, e.g. --shard 2/3")
    if int(match[2]) > MAX_SHARDS:
        raise TestbedError(f"--shard {text!r}: a split into at most {MAX_SHARDS} shards")
    return int(match[1]), int(match[2])


def read_durations(path: Path) -> dict[str, float]:
    """A pytest-split durations file: test id → seconds. Missing or empty: none known."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise TestbedError(f"durations file {path}: cannot be read ({exc.strerror or exc})") from exc
    try:
        return parse_durations(text)
    except (ValueError, RecursionError) as exc:
        raise TestbedError(f"durations file {path}: {exc or 'nested too deep'}; delete it to split evenly") from exc


def parse_durations(text: str) -> dict[str, float]:
    """The durations in a file's text (empty: none known); ValueError says what is wrong with it."""
    if not text.strip():
        return {}
    try:
        data = json.loads(text, parse_constant=_not_a_number)
    except ValueError as exc:
        raise ValueError(f"not JSON ({exc})") from exc
    if isinstance(data, list):  # pytest-split's older list-of-pairs format
        try:
            data = dict(data)
        except (TypeError, ValueError):
            data = None
    if not isinstance(data, dict) or not all(
        isinstance(k, str)
        and isinstance(v, int | float)
        and not isinstance(v, bool)
        and math.isfinite(v)
        and 0 <= v <= MAX_SECONDS
        for k, v in data.items()
    ):
        raise ValueError(f"expected a JSON object of test id → seconds (from 0 to {MAX_SECONDS:g})")
    return {k: float(v) for k, v in data.items()}


def _not_a_number(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def durations_path(service_dir: Path, durations: str) -> Path:
    """The prior durations a shard splits by: the given file (relative to the service), or the default."""
    return service_dir / (durations or DEFAULT_DURATIONS)


def check(shard: str, durations: str, service_dir: Path) -> None:
    """Everything about sharding that can be checked before anything starts."""
    if shard:
        parse(shard)
    if durations:
        path = durations_path(service_dir, durations)
        if not path.is_file():
            raise TestbedError(f"--durations {durations}: no such file (leave it out to split evenly at first)")
        read_durations(path)


def record(run_id: str, shard: str, durations: str) -> None:
    """Remember the run's shard in its state, where run_tests and `testbed merge` find it (a later unsharded
    `playbooks/test.yml` against the same environment tests the whole suite again)."""
    state = RunState.find(run_id)
    if not shard:
        if state.load().shard is not None:
            with state.update() as data:
                data.pop("shard", None)
        return
    k, n = parse(shard)
    with state.update() as data:
        data["shard"] = ShardInfo(k, n, durations).as_dict()


def pytest_args(shard: ShardInfo | None, run_folder: Path, service_dir: Path) -> list[str]:
    """pytest-split's arguments: the run's shard, and the durations it records in the run folder
    (MEASURED_FILE). Before pytest writes it, that file holds the prior durations the run's xdist workers
    order their tests by (see testbed_workers)."""
    measured = run_folder / MEASURED_FILE
    if shard is None:
        # Not a shard: durations are only recorded, merged into this environment's earlier ones (a dev-loop
        # run of one file keeps the others'), for the next run's workers; first from `.test_durations`.
        if not measured.is_file():
            try:
                prior = read_durations(service_dir / DEFAULT_DURATIONS)
            except TestbedError:
                prior = {}  # a split would refuse it (shard.check); an order does without
            files.write(measured, json.dumps(prior), root=run_folder)
        return [f"--durations-path={measured}", "--store-durations"]
    prior = read_durations(durations_path(service_dir, shard.durations))
    files.write(run_folder / BEFORE_FILE, json.dumps(prior, indent=2, sort_keys=True), root=run_folder)
    # pytest-split reads and writes one path: it splits by the prior timings written here, then
    # (--clean-durations) replaces them with this shard's own measurements.
    files.write(measured, json.dumps(prior), root=run_folder)
    return [
        f"--splits={shard.count}",
        f"--group={shard.index}",
        # Balanced groups (the longest test first into the lightest group), not pytest-split's default of
        # contiguous chunks, which puts a slow test last in the file into an already full group.
        "--splitting-algorithm=least_duration",
        f"--durations-path={measured}",
        "--store-durations",
        "--clean-durations",
    ]


def keep_coverage_data(data_file: Path, run_folder: Path) -> None:
    """A copy of the run's coverage data in its run folder, for `testbed merge` (named without a leading dot:
    upload-artifact skips hidden files). It holds paths and line numbers, never values."""
    if data_file.is_file():
        files.write(run_folder / "coverage.data", data_file.read_bytes(), root=run_folder)


def exit_code(shard: ShardInfo | None, rc: int, log: Path) -> int:
    """A shard whose group is empty (more shards than tests) passed: pytest says 'no tests' (5) only
    because every collected test went to other groups."""
    if shard is None or rc != ExitCode.NO_TESTS:
        return rc
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return rc
    match = _ALL_DESELECTED.search(text)
    return 0 if match and int(match[1]) > 0 and match[1] == match[2] else rc
