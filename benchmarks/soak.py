"""Soak: 20 sequential runs, then 2 concurrent runs, all with auto ports; prints how many things were
left behind (processes, folders, containers, networks, volumes), which must be 0. Outside the default
tests: it takes several minutes.

    .venv/bin/python benchmarks/soak.py [--sequential 20] [--concurrent 2] [--backend native]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from support import cli, leftovers, run_folder_of  # noqa: E402


def one_run(runs: Path, backend: str, results: list[tuple[int, str]]) -> None:
    service = HERE.parent / "tests" / "fixtures" / "services" / "basic"
    result = cli("run", "--service", str(service), "--backend", backend, "--ports", "auto", "--run-folder", str(runs))
    run_id = run_folder_of(result.stdout).name if "Run folder:" in result.stdout else "?"
    results.append((result.returncode, run_id))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequential", type=int, default=20)
    parser.add_argument("--concurrent", type=int, default=2)
    parser.add_argument("--backend", default="native", choices=("native", "docker", "auto"))
    args = parser.parse_args()
    runs = Path(tempfile.mkdtemp(prefix="soak-"))
    results: list[tuple[int, str]] = []
    for index in range(args.sequential):
        one_run(runs, args.backend, results)
        print(f"sequential {index + 1}/{args.sequential}: exit {results[-1][0]}", flush=True)
    threads = [threading.Thread(target=one_run, args=(runs, args.backend, results)) for _ in range(args.concurrent)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(f"concurrent x{args.concurrent}: exits {[code for code, _ in results[-args.concurrent:]]}")
    left = [item for _, run_id in results for item in leftovers(run_id)]
    failed = [code for code, _ in results if code != 0]
    print(f"runs: {len(results)}, failed: {len(failed)}, left behind: {len(left)}")
    for item in left:
        print(f"  {item}")
    return 0 if not left and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
