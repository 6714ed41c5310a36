"""Shards across runner hosts: wall time of one unsharded run against 2 and 3 shards in one play, on the two
SSH test hosts tests/e2e/test_runners.py builds (containers on an internal Docker network, prepared by
playbooks/runner.yml). 3 shards on 2 machines: the inventory names host1 twice (host1-b, same address).
Outside the default tests: it takes several minutes. Everything it starts is removed at its end.

    .venv/bin/python benchmarks/shards_on_hosts.py [--repeat 3]

Suites: the fixture suite tests/fixtures/services/shards (ten short tests, one of 2 s) and the reference
service services/agent_executor (its dependencies from the hosts' wheelhouse: `install: none`).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from e2e.test_runners import (  # noqa: E402
    HOSTS,
    Hosts,
    build_assets,
    inventory_naming_host1_twice,
    reference_copy,
    ssh_hosts,
)
from support import cli, run_folder_of  # noqa: E402


def _timed(hosts: Hosts, argv: list[str]) -> tuple[float, dict[str, object]]:
    started = time.monotonic()
    result = cli(*argv, env=hosts.env, timeout=900)
    wall = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"testbed {' '.join(argv)} exited {result.returncode}:\n{result.stdout[-4000:]}")
    merged = re.findall(r"Merged folder: (\S+)", result.stdout)
    folder = Path(merged[-1]) if merged else run_folder_of(result.stdout)
    return wall, json.loads((folder / "report.json").read_text())


def _slowest_tests(report: dict[str, object]) -> float:
    shards = report.get("shards") or [report]
    return max(float((s.get("tests") or {}).get("duration") or 0) for s in shards)  # type: ignore[union-attr]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="shards-bench-"))
    try:
        with ssh_hosts(build_assets(), work) as hosts:
            prepared = hosts.playbook("playbooks/runner.yml")
            if prepared.returncode != 0:
                raise SystemExit(f"runner.yml failed:\n{prepared.stdout[-4000:]}")
            three = inventory_naming_host1_twice(hosts)
            suites = {
                "fixture suite (10 tests)": shutil.copytree(HERE.parent / "tests/fixtures/services/shards",
                                                            work / "shards"),
                "agent_executor": reference_copy(work / "agent_executor"),
            }
            rows = []
            for name, suite in suites.items():
                ways = {
                    "1 run (host1)": ["--inventory", str(hosts.inventory), "--limit", HOSTS[0]],
                    "2 shards (host1, host2)": ["--inventory", str(hosts.inventory), "--limit", "runners",
                                                "--shards", "auto"],
                    "3 shards (host1 twice, host2)": ["--inventory", str(three), "--limit", "runners",
                                                      "--shards", "auto"],
                }
                for way, extra in ways.items():
                    walls, slowest, passed, coverage = [], [], set(), set()
                    for index in range(args.repeat):
                        runs = work / "runs" / f"{suite.name}-{len(rows)}-{index}"
                        wall, report = _timed(hosts, ["run", "--service", str(suite), "--run-folder", str(runs),
                                                      *extra])
                        walls.append(wall)
                        slowest.append(_slowest_tests(report))
                        passed.add(report["tests"]["passed"])  # type: ignore[index]
                        coverage.add(report["coverage"])
                        print(f"{name}, {way}: {wall:.1f} s wall, slowest tests {slowest[-1]:.1f} s", flush=True)
                    rows.append((name, way, statistics.median(walls), statistics.median(slowest), passed, coverage))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nmedians of {args.repeat}: suite | how | wall s | slowest shard's tests s | passed | coverage")
    for name, way, wall, slowest_tests, passed, coverage in rows:
        print(f"{name} | {way} | {wall:.1f} | {slowest_tests:.1f} | {sorted(passed)} | {sorted(coverage)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
