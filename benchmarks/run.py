"""testbed's cost over the physical limit, side by side in one run: medians of several repetitions and
their ratio. Not part of the default tests (timing belongs here, never in assertions).

    .venv/bin/python benchmarks/run.py [--repeat 5] [--only a,b,c,d]

(a) native `testbed up`           vs a shell script starting the same three servers in parallel, polling each
(b) Docker `testbed up`           vs `docker compose up --wait` with equivalent healthchecks, same images
(c) warm `testbed up` (already up) vs an empty `ansible-playbook` run
(d) `testbed down`                vs stopping the same servers by hand
(g) `testbed test FILE` (reset included) on the reference service, kept up, vs the same file run by hand with
    pytest in the service's virtualenv, with `testbed env`'s variables and the same pytest and coverage flags
and, beside (a), the floor under any playbook-driven command: a Python driving an empty playbook
through ansible-runner (benchmarks/runner_floor.py).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
BIN = Path(sys.executable).parent
SERVICE = PROJECT / "tests" / "fixtures" / "services" / "basic"
TARGETS = {"a": 2.0, "b": 1.0, "c": 1.2, "d": 2.0, "g": 1.1}
REFERENCE = PROJECT / "services" / "agent_executor"
ONE_FILE = "tests/integration/test_malformed.py"
# Not a target: what driving an empty playbook through ansible-runner costs, beside (a)'s baseline.
FLOOR = "floor"


def sh(*argv: str, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(argv, cwd=PROJECT, capture_output=True, text=True, check=False, env=env)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")


def timed(action: Callable[[], None]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def measure(repeat: int, setup: Callable[[], None], action: Callable[[], None], cleanup: Callable[[], None]) -> float:
    samples = []
    for _ in range(repeat):
        setup()
        samples.append(timed(action))
        cleanup()
    return statistics.median(samples)


def testbed(*args: str) -> Callable[[], None]:
    return lambda: sh(str(BIN / "testbed"), *args)


def nothing() -> None:
    return None


def native_pair(repeat: int, runs: Path) -> dict[str, tuple[float, float]]:
    base_dir = Path(tempfile.mkdtemp(prefix="bench-base-"))
    shutil.rmtree(base_dir)
    up = testbed("up", "--service", str(SERVICE), "--backend", "native", "--ports", "auto", "--run-folder", str(runs))
    down = testbed("down", "--service", str(SERVICE))
    script = str(HERE / "baseline_native.sh")

    def by_hand_up() -> None:
        sh(script, "up", str(base_dir))

    def by_hand_down() -> None:
        sh(script, "down", str(base_dir))

    def floor() -> None:
        sh(sys.executable, str(HERE / "runner_floor.py"))

    by_hand = measure(repeat, nothing, by_hand_up, by_hand_down)
    return {
        FLOOR: (measure(repeat, nothing, floor, nothing), by_hand),
        "a": (measure(repeat, nothing, up, down), by_hand),
        "c": (measure(repeat, up, up, down),
              measure(repeat, nothing, lambda: sh(str(BIN / "ansible-playbook"), str(HERE / "empty.yml")), nothing)),
        "d": (measure(repeat, up, down, nothing),
              measure(repeat, by_hand_up, by_hand_down, nothing)),
    }


def docker_pair(repeat: int, runs: Path) -> dict[str, tuple[float, float]]:
    sys.path.insert(0, str(PROJECT / "tests"))
    from images.build import ensure_images, image_args  # noqa: PLC0415

    images = ensure_images()
    sh(str(HERE / "get-compose-v2.sh"))
    compose = [str(HERE / ".tools" / "docker-compose"), "-f", str(HERE / "compose.yml"), "-p", "testbed-bench"]
    env = dict(os.environ, BENCH_POSTGRES_IMAGE=images["postgres"], BENCH_DRAGONFLY_IMAGE=images["dragonfly"],
               BENCH_NATS_IMAGE=images["nats"])
    overrides = image_args(images)
    up = testbed("up", "--service", str(SERVICE), "--backend", "docker", "--ports", "auto",
                 "--run-folder", str(runs), *overrides)
    down = testbed("down", "--service", str(SERVICE))
    return {"b": (measure(repeat, nothing, up, down),
                  measure(repeat, nothing, lambda: sh(*compose, "up", "-d", "--wait", env=env),
                          lambda: sh(*compose, "down", "-v", "--timeout", "5", env=env)))}


def inner_loop_pair(repeat: int) -> dict[str, tuple[float, float]]:
    """(g): `testbed test FILE` and pytest by hand, alternating, against one environment `testbed up` left."""
    folder = Path(tempfile.mkdtemp(prefix="bench-inner-"))
    service = folder / "agent_executor"
    shutil.copytree(REFERENCE, service, ignore=shutil.ignore_patterns("runs"))
    # A developer's shell writes bytecode; testbed's pytest always does (into its cache).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    testbed_test = [str(BIN / "testbed"), "test", "--service", str(service), "--", ONE_FILE]
    sh(str(BIN / "testbed"), "up", "--service", str(service), "--backend", "native", "--ports", "auto", env=env)
    try:
        sh(*testbed_test, env=env)  # installs (or finds) the service's virtualenv, records its Python
        state = json.loads(next((service / "runs").glob("*/state.json")).read_text())
        exports = subprocess.run([str(BIN / "testbed"), "env", "--service", str(service)], capture_output=True,
                                 text=True, check=True).stdout
        by_hand_env = env | dict(re.findall(r"^export (\w+)=(\S+)$", exports, re.MULTILINE))
        out = folder / "by-hand"
        config = state["config"]["tests"]
        by_hand = [state["python"], "-m", "pytest", ONE_FILE, *config["pytest_args"], f"--junitxml={out}/junit.xml",
                   "-o", "junit_family=xunit1", "--tb=short", f"--timeout={config['timeout']}", "-p",
                   "no:cacheprovider", *(f"--cov={target}" for target in config["coverage"]),
                   f"--cov-report=xml:{out}/coverage.xml", f"--cov-report=html:{out}/htmlcov", "--cov-report=term"]

        def pytest_by_hand() -> None:
            result = subprocess.run(by_hand, cwd=service, env=by_hand_env, capture_output=True, check=False)
            if result.returncode != 0:
                raise SystemExit(f"pytest by hand failed ({result.returncode}):\n{result.stdout.decode()}")

        ours, theirs = [], []
        for _ in range(repeat):  # alternating: load moves both sides alike
            ours.append(timed(lambda: sh(*testbed_test, env=env)))
            theirs.append(timed(pytest_by_hand))
    finally:
        sh(str(BIN / "testbed"), "down", "--service", str(service))
        shutil.rmtree(folder, ignore_errors=True)
    return {"g": (statistics.median(ours), statistics.median(theirs))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", default="a,b,c,d,g")
    args = parser.parse_args()
    wanted = set(args.only.split(","))
    runs = Path(tempfile.mkdtemp(prefix="bench-runs-"))
    results: dict[str, tuple[float, float]] = {}
    try:
        if wanted & {"a", "c", "d"}:
            results |= native_pair(args.repeat, runs)
        if "b" in wanted:
            results |= docker_pair(args.repeat, runs)
        if "g" in wanted:
            results |= inner_loop_pair(args.repeat)
    finally:
        shutil.rmtree(runs, ignore_errors=True)
    labels = {FLOOR: "ansible-runner, empty playbook", "a": "native up vs shell script",
              "b": "docker up vs compose --wait",
              "c": "warm up vs empty playbook", "d": "down vs stopping by hand",
              "g": "test FILE vs pytest by hand"}
    print(f"{'':4}{'comparison':30}{'testbed':>10}{'baseline':>10}{'ratio':>8}{'target':>8}")
    for key in sorted(k for k in results if k in wanted):
        ours, theirs = results[key]
        ratio = ours / theirs
        mark = "met" if ratio <= TARGETS[key] else "missed"
        print(f"({key}) {labels[key]:30}{ours:9.2f}s{theirs:9.2f}s{ratio:7.2f}x{TARGETS[key]:7.1f}x  {mark}")
    if FLOOR in results and "a" in wanted:
        ours, theirs = results[FLOOR]
        print(f"    {labels[FLOOR]:30}{ours:9.2f}s{theirs:9.2f}s{ours / theirs:7.2f}x  (the floor under (a))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
