"""What installing testbed costs, side by side in one run (warm download caches; timing belongs here, never in
tests). Not part of the default tests.

    .venv/bin/python benchmarks/cold_install.py [--only install,bootstrap] [--no-warmup]

install    a fresh virtualenv holding testbed's dependencies, three ways:
           before: `python -m venv` + pip, the old set (the whole `ansible` bundle, boto3, Poetry)
           pip:    `python -m venv` + pip, today's set (ansible-core) + `testbed collections install`
           uv:     `uv venv` + `uv pip install`, today's set + `testbed collections install`
           each: seconds, MB on disk and files in the virtualenv.
bootstrap  `./bootstrap run` on a fresh clone of this repository's HEAD (its .venv made anew, caches warm):
           wall-clock seconds minus the pipeline's own duration (report.json), target <= 12 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
BIN = Path(sys.executable).parent
SETUP_TARGET = 12.0
# pyproject.toml's dependencies before issue 14, for the "before" column.
BEFORE = [
    "ansible==12.3.0",
    "ansible-core>=2.19,<2.20",
    "ansible-runner==2.4.3",
    "psycopg[binary]>=3.2,<4",
    "redis>=5,<7",
    "nats-py>=2.9,<3",
    "boto3>=1.35,<2",
    "requests>=2.32,<3",
    "pytest>=8,<9",
    "pytest-cov>=5,<8",
    "pytest-timeout>=2.3,<3",
    "poetry>=2.1,<3",
]


def sh(*argv: str | Path, cwd: Path = PROJECT, env: dict[str, str] | None = None) -> str:
    result = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True, check=False, env=env)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, argv))} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result.stdout


def uv() -> str:
    found = BIN / "uv" if (BIN / "uv").is_file() else shutil.which("uv")
    if not found:
        raise SystemExit("no uv: pip install uv (testbed's dev extra has it)")
    return str(found)


def size(folder: Path) -> tuple[float, int]:
    total, files = 0, 0
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            total += path.stat().st_size
            files += 1
    return total / 1e6, files


def today() -> list[str]:
    return tomllib.loads((PROJECT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]


def install(way: str, venv: Path) -> None:
    python = venv / "bin" / "python"
    if way == "uv":
        sh(uv(), "venv", "--quiet", "--seed", "--python", sys.executable, venv)
        sh(uv(), "pip", "install", "--quiet", "--python", python, *today())
    else:
        sh(sys.executable, "-m", "venv", venv)
        packages = BEFORE if way == "before" else today()
        sh(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *packages)
    if way != "before":
        # testbed's module alone from this checkout: it only needs the standard library to extract.
        env = dict(os.environ, PYTHONPATH=str(PROJECT / "src"))
        sh(python, "-m", "testbed", "collections", "install", env=env)


def bench_install(warmup: bool) -> list[tuple[str, float, float, int]]:
    rows = []
    for way in ("before", "pip", "uv"):
        with tempfile.TemporaryDirectory(prefix="testbed-cold-") as scratch:
            if warmup:  # fills the download caches (pip's, uv's, testbed's wheel) so that only installing counts
                install(way, Path(scratch) / "warm")
            venv = Path(scratch) / "venv"
            started = time.perf_counter()
            install(way, venv)
            seconds = time.perf_counter() - started
            megabytes, files = size(venv)
            rows.append((way, seconds, megabytes, files))
            print(f"install {way:<6} {seconds:6.1f} s  {megabytes:7.0f} MB  {files:6d} files", flush=True)
    return rows


def bench_bootstrap() -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="testbed-bootstrap-") as scratch:
        clone = Path(scratch) / "clone"
        sh("git", "clone", "--quiet", "--no-hardlinks", PROJECT, clone)
        runs = Path(scratch) / "runs"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "TESTBED_PROJECT_DIR"))}
        env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if Path(p) != BIN)
        started = time.perf_counter()
        sh(clone / "bootstrap", "run", "--ports", "auto", "--run-folder", runs, cwd=clone, env=env)
        wall = time.perf_counter() - started
        (report,) = runs.glob("*/report.json")
        duration = float(json.loads(report.read_text(encoding="utf-8"))["duration"])
    print(
        f"bootstrap run: {wall:.1f} s wall, pipeline {duration:.1f} s, set-up {wall - duration:.1f} s "
        f"(target <= {SETUP_TARGET:.0f} s)",
        flush=True,
    )
    return wall, duration


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="install,bootstrap")
    parser.add_argument("--no-warmup", action="store_true", help="measure with the caches as they are")
    args = parser.parse_args()
    only = set(args.only.split(","))
    if "install" in only:
        rows = bench_install(warmup=not args.no_warmup)
        before = rows[0][1]
        for way, seconds, _, _ in rows[1:]:
            print(f"  {way}: {before / seconds:.1f}x faster than before")
    if "bootstrap" in only:
        if not args.no_warmup:
            bench_bootstrap()  # warms uv's cache with the dev-less set and the service's virtualenv tools
        wall, duration = bench_bootstrap()
        return 0 if wall - duration <= SETUP_TARGET else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
