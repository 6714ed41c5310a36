"""Per-test isolation (tests.isolation: test, issue #26), side by side in one run, medians. Not part of the tests
(timing belongs here, never in assertions).

    .venv/bin/python benchmarks/per_test.py [--repeat 5] [--only handover,wall,reference]

handover   the hand-over as the pytest plugin sees it (a request on its kept Unix socket until the answer) on 2
           workers of a `testbed up --workers 2` of tests/fixtures/services/isolation, each test writing a row
           then taking 50 ms: of a fresh database alone (the issue's figure), then of the whole reset (database,
           Redis slot and JetStream at once), and again taking no time (the pool's refill then bounds the rate);
           the Redis FLUSHALL and JetStream stream deletion on kept connections, and JetStream's purge beside the
           delete. TESTBED_RUNTIME_DIR decides where the servers' data lives (a tmpfs: /dev/shm/...)
wall       40 tests of 0.1 s on 2 workers: `testbed test --isolation worker` vs `--isolation test`, alternating,
           pytest's own time (its JUnit report)
reference  services/agent_executor: `testbed test --isolation worker` vs `--isolation test`, alternating (its
           suite must pass with both), pytest's time
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import multiprocessing
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nats
import psycopg
import redis

from testbed.config.workers import worker_name
from testbed.parallel import workers
from testbed.parallel.handover import Handover
from testbed.run.store import RunState

PROJECT = Path(__file__).resolve().parent.parent
TESTBED = Path(sys.executable).parent / "testbed"
FIXTURE = PROJECT / "tests" / "fixtures" / "services" / "isolation"
REFERENCE = PROJECT / "services" / "agent_executor"
TESTS_LINE = re.compile(r"✅ Tests: (\d+) passed in ([\d.]+)s")
RUN_FOLDER = re.compile(r"Run folder: (\S+)")
SECTIONS = ("handover", "wall", "reference")


def run_testbed(service: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(TESTBED), args[0], "--service", str(service), *args[1:]],
        capture_output=True, text=True, check=False, env={**os.environ, **(env or {})},
    )  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"testbed {' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result.stdout


@contextmanager
def environment(service: Path, *args: str) -> Iterator[RunState]:
    up = run_testbed(service, "up", "--backend", "native", "--ports", "auto", *args)
    try:
        yield RunState.find(Path(RUN_FOLDER.findall(up)[-1]).name)
    finally:
        run_testbed(service, "down")


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def handover_figures(
    state: RunState, tests: int, seconds: float, *, database_only: bool = False, workers_asking: int = 2
) -> dict[str, float]:
    """Two workers' plugins asking for a reset before each of `tests` tests that write a row and take `seconds`;
    with `database_only`, the hand-over of a fresh database alone (the Redis slot and JetStream left as they are)."""
    record = state.load()
    facts = {worker_name(0): record.own_facts()}
    facts[worker_name(1)] = workers.worker_facts(record.servers, record.facts, 1)
    kept = {"postgres"} if database_only else set(record.servers)
    servers = {name: settings for name, settings in record.servers.items() if name in kept}
    facts = {worker: {name: fact for name, fact in share.items() if name in kept} for worker, share in facts.items()}
    facts = dict(list(facts.items())[:workers_asking])
    handover = Handover(Path(tempfile.mkdtemp(dir=state.runtime_dir)), "test", keep_failed=False)
    handover.start(servers, {name: fact for name, fact in record.own_facts().items() if name in kept}, facts)
    # Each worker a process of its own, as pytest-xdist's are: the hand-over is served by this process alone.
    with concurrent.futures.ProcessPoolExecutor(len(facts), mp_context=multiprocessing.get_context("spawn")) as pool:
        asked = [
            pool.submit(plugin_side, str(handover.path), name, facts[name]["postgres"]["url"], tests, seconds)
            for name in facts
        ]
        answers = [future.result() for future in asked]
    handover.close()
    times = [seconds for worker_times, _ in answers for seconds in worker_times]
    return {
        "p50": statistics.median(times) * 1000,
        "p95": percentile(times, 0.95) * 1000,
        "max": max(times) * 1000,
        "per_test": max(wall for _, wall in answers) / tests * 1000,  # a worker's test, hand-over included
    }


def plugin_side(path: str, worker: str, url: str, tests: int, seconds: float) -> tuple[list[float], float]:
    """One worker's plugin: a reset asked before each test, timed until its answer; then the test. Returns the
    hand-overs' times and the whole loop's."""
    times: list[float] = []
    started = time.perf_counter()
    with socket.socket(socket.AF_UNIX) as connection:
        connection.connect(path)
        stream = connection.makefile("rwb")
        for _ in range(tests):
            asked = time.perf_counter()
            stream.write(f"reset {worker}\n".encode())
            stream.flush()
            answer = json.loads(stream.readline())
            times.append(time.perf_counter() - asked)
            if "error" in answer:
                raise SystemExit(answer["error"])
            # The test: a row left behind, its connection held to its end, as a suite's fixture holds it, and
            # closed just before the next test's hand-over (its server process may still be going then).
            with psycopg.connect(url, autocommit=True) as db:
                db.execute("INSERT INTO marks VALUES ('bench')")
                time.sleep(seconds)
    return times, time.perf_counter() - started


def kept_connection_figures(state: RunState, repeat: int) -> dict[str, float]:
    """FLUSHALL of 1000 keys, and deleting vs purging 5 streams of 10 messages, on kept connections."""
    fact = state.load().own_facts()
    client = redis.Redis(host=fact["dragonfly"]["host"], port=fact["dragonfly"]["port"])
    flush: list[float] = []
    for _ in range(repeat * 4):
        client.mset({f"k{i}": i for i in range(1000)})
        asked = time.perf_counter()
        client.flushall()
        flush.append(time.perf_counter() - asked)
    client.close()

    async def streams() -> tuple[list[float], list[float]]:
        nc = await nats.connect(fact["nats"]["url"])
        js = nc.jetstream()
        delete: list[float] = []
        purge: list[float] = []
        for round_ in range(repeat * 4):
            for name in (f"S{i}" for i in range(5)):
                await js.add_stream(name=name, subjects=[f"{name.lower()}.>"])
                for n in range(10):
                    await js.publish(f"{name.lower()}.m", str(n).encode())
            verb, into = ("PURGE", purge) if round_ % 2 else ("DELETE", delete)
            asked = time.perf_counter()
            names = json.loads((await nc.request("$JS.API.STREAM.NAMES", b"{}")).data).get("streams") or []
            for name in names:
                await nc.request(f"$JS.API.STREAM.{verb}.{name}", b"")
            into.append(time.perf_counter() - asked)
            if verb == "PURGE":  # purged streams are still there: gone before the next round
                for name in names:
                    await js.delete_stream(name)
        await nc.close()
        return delete, purge

    delete, purge = asyncio.run(streams())
    return {
        "flush": statistics.median(flush) * 1000,
        "delete": statistics.median(delete) * 1000,
        "purge": statistics.median(purge) * 1000,
    }


def pytest_seconds(service: Path, isolation: str, *args: str, env: dict[str, str] | None = None) -> float:
    out = run_testbed(service, "test", "--isolation", isolation, *args, env=env)
    match = TESTS_LINE.search(out)
    if match is None:
        raise SystemExit(f"no tests line in:\n{out}")
    return float(match.group(2))


def alternating(service: Path, repeat: int, *args: str, env: dict[str, str] | None = None) -> dict[str, float]:
    seconds: dict[str, list[float]] = {"worker": [], "test": []}
    for _ in range(repeat):
        for isolation, values in seconds.items():
            values.append(pytest_seconds(service, isolation, *args, env=env))
    return {isolation: statistics.median(values) for isolation, values in seconds.items()}


def load() -> str:
    pressure = Path("/proc/pressure/cpu").read_text().split()[1].split("=")[1]
    return f"load average {os.getloadavg()[0]:.2f}, CPU pressure {pressure}%"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", default=",".join(SECTIONS))
    args = parser.parse_args()
    only = set(args.only.split(","))
    print(f"{os.cpu_count()} cores; --repeat {args.repeat}; {load()} before")
    print("| measured | median | note |")
    print("| --- | --- | --- |")
    with tempfile.TemporaryDirectory() as scratch:
        suite = Path(scratch) / "isolation"
        shutil.copytree(FIXTURE, suite)
        if only & {"handover", "wall"}:
            with environment(suite, "--workers", "2") as state:
                if "handover" in only:
                    tests = 20 * args.repeat
                    fresh = handover_figures(state, tests, 0.05, database_only=True)
                    print(
                        f"| hand-over of a fresh database, tests of 50 ms, 2 workers, {tests} each: p50 | "
                        f"{fresh['p50']:.2f} ms | p95 {fresh['p95']:.2f} ms, max {fresh['max']:.1f} ms |"
                    )
                    alone = handover_figures(state, tests, 0.05, database_only=True, workers_asking=1)
                    print(
                        f"| the same, one worker asking | {alone['p50']:.2f} ms | p95 {alone['p95']:.2f} ms, max "
                        f"{alone['max']:.1f} ms |"
                    )
                    slow = handover_figures(state, tests, 0.05)
                    print(
                        f"| the whole reset (database, Redis slot, JetStream), the same: p50 | {slow['p50']:.2f} ms | "
                        f"p95 {slow['p95']:.2f} ms, max {slow['max']:.1f} ms |"
                    )
                    quick = handover_figures(state, tests, 0.0)
                    print(
                        f"| hand-over, tests of no time, 2 workers: p50 | {quick['p50']:.2f} ms | p95 "
                        f"{quick['p95']:.2f} ms; a test every {quick['per_test']:.1f} ms per worker (the pool's "
                        "refill bounds it) |"
                    )
                    kept = kept_connection_figures(state, args.repeat)
                    print(f"| Redis FLUSHALL of 1000 keys, kept connection | {kept['flush']:.2f} ms | |")
                    print(
                        f"| JetStream: 5 streams of 10 messages deleted | {kept['delete']:.2f} ms | purged: "
                        f"{kept['purge']:.2f} ms (and the streams stay) |"
                    )
                if "wall" in only:
                    env = {"ISOLATION_TESTS": "40", "ISOLATION_TEST_SECONDS": "0.1", "ISOLATION_CHECK": "0"}
                    wall = alternating(suite, args.repeat, "--workers", "2", "--", "tests/clean", env=env)
                    print(f"| 40 tests of 0.1 s, 2 workers: isolation worker | {wall['worker']:.2f} s | |")
                    print(
                        f"| 40 tests of 0.1 s, 2 workers: isolation test | {wall['test']:.2f} s | "
                        f"{wall['test'] / wall['worker']:.2f}x |"
                    )
        if "reference" in only:
            with environment(REFERENCE):
                reference = alternating(REFERENCE, max(1, args.repeat // 2))
            print(f"| reference service, tests phase (pytest): isolation worker | {reference['worker']:.2f} s | |")
            print(
                f"| reference service, tests phase (pytest): isolation test | {reference['test']:.2f} s | "
                f"{reference['test'] / reference['worker']:.2f}x |"
            )
    print(f"{load()} after")
    return 0


if __name__ == "__main__":
    sys.exit(main())
