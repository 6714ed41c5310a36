"""Parallel workers and the dev loop's reset, side by side in one run, on the reference service
(services/agent_executor) kept up by `testbed up --workers 2`; medians of several repetitions. Not part of
the default tests (timing belongs here, never in assertions).

    .venv/bin/python benchmarks/workers.py [--repeat 3] [--backend native|docker]  (docker: the local images)

(e) the tests phase as users wait for it (report.json's phase duration: install check, reset, pytest with its
    workers' start, coverage reports) of `testbed test --workers 1` vs `--workers 2`, alternating; beside it
    pytest's own time (its JUnit report), which leaves out pytest's start and the coverage reports
(f) the reset's own time and what it added to the tests phase (pytest starts meanwhile), and the wall time of
    `testbed test` with the reset vs `testbed test --no-reset`, alternating, on a one-test selection
Clone strategies and instance start-up are in benchmarks/isolation.py.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
TESTBED = Path(sys.executable).parent / "testbed"
TESTS_LINE = re.compile(r"✅ Tests: .* in ([\d.]+)s")
RESET_LINE = re.compile(r"✅ Reset: back to the freshly migrated state in ([\d.]+)s \(the tests waited ([\d.]+)s\)")
ONE_TEST = "tests/integration/test_startup.py"
RUN_FOLDER = re.compile(r"📁 Run folder: (\S+)")


def testbed(service: Path, *args: str) -> tuple[str, float]:
    started = time.perf_counter()
    result = subprocess.run(
        [str(TESTBED), *args[:1], "--service", str(service), *args[1:]],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"testbed {' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result.stdout, wall


def found(pattern: re.Pattern[str], text: str) -> tuple[float, ...]:
    match = pattern.search(text)
    if match is None:
        raise SystemExit(f"no {pattern.pattern!r} in:\n{text}")
    return tuple(float(group) for group in match.groups())


def tests_phase(out: str) -> tuple[float, float]:
    """The tests phase's duration in the run's report.json, and pytest's own time (its phase line)."""
    report = json.loads((Path(found_text(RUN_FOLDER, out)) / "report.json").read_text())
    phase = next(phase for phase in report["phases"] if phase["name"] == "tests")
    return float(phase["duration"]), found(TESTS_LINE, out)[0]


def found_text(pattern: re.Pattern[str], text: str) -> str:
    match = pattern.search(text)
    if match is None:
        raise SystemExit(f"no {pattern.pattern!r} in:\n{text}")
    return match.group(1)


def local_images(backend: str) -> list[str]:
    """No registry answers here: the Docker backend runs the images tests/images/build.py builds."""
    if backend != "docker":
        return []
    sys.path.insert(0, str(PROJECT / "tests"))
    from images.build import ensure_images, image_args  # noqa: PLC0415

    return image_args(ensure_images())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--backend", default="native", choices=("native", "docker"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="testbed-bench-") as folder:
        service = Path(folder) / "agent_executor"
        shutil.copytree(PROJECT / "services" / "agent_executor", service, ignore=shutil.ignore_patterns("runs"))
        images = local_images(args.backend)
        testbed(service, "up", "--backend", args.backend, "--ports", "auto", "--workers", "2", *images)
        try:
            serial: list[tuple[float, float]] = []
            parallel: list[tuple[float, float]] = []
            for _ in range(args.repeat):
                serial.append(tests_phase(testbed(service, "test", "--workers", "1")[0]))
                parallel.append(tests_phase(testbed(service, "test", "--workers", "2")[0]))
            reset_own: list[float] = []
            reset_waited: list[float] = []
            with_reset: list[float] = []
            without_reset: list[float] = []
            for _ in range(args.repeat * 2):
                out, wall = testbed(service, "test", "--workers", "1", "--", ONE_TEST)
                own, waited = found(RESET_LINE, out)
                reset_own.append(own)
                reset_waited.append(waited)
                with_reset.append(wall)
                without_reset.append(testbed(service, "test", "--workers", "1", "--no-reset", "--", ONE_TEST)[1])
        finally:
            subprocess.run([str(TESTBED), "down", "--service", str(service)], capture_output=True, check=False)
    median = statistics.median
    print(f"backend: {args.backend}; medians of {args.repeat} (reset: {args.repeat * 2})")
    print("| | measured | beside | ratio |")
    print("| --- | --- | --- | --- |")
    for place, what in ((0, "the tests phase (report.json)"), (1, "pytest's own time (JUnit)")):
        ours, theirs = median(p[place] for p in parallel), median(s[place] for s in serial)
        ratio = ours / theirs
        print(f"| (e) {what}, reference service: 2 workers vs 1 | {ours:.2f} s | {theirs:.2f} s | {ratio:.2f}× |")
    print(f"| (f) reset, its own time | {median(reset_own):.3f} s | | |")
    print(f"| (f) reset, what the tests waited for it | {median(reset_waited):.3f} s | | |")
    print(
        f"| (f) `testbed test` (one test file): reset vs --no-reset | {median(with_reset):.2f} s "
        f"| {median(without_reset):.2f} s | {median(with_reset) / median(without_reset):.2f}× |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
