"""`testbed run --shards N|auto`: every shard of a suite at once, then one merged report.

Each shard is its own `testbed run --shard K/N` (its own run id, servers, teardown and run folder), here
with auto ports, or on a host of the inventory group given by `--limit` (round robin; `auto`: one shard
per host). The shards' run folders are merged (testbed.merge) into `<run root>/merged-<run id>`.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from testbed import merge
from testbed.errors import ExitCode, TestbedError
from testbed.state import new_run_id

_RUN_FOLDER = re.compile(r"Run folder: (\S+)")


def count(text: str, hosts: Sequence[str]) -> int:
    """`--shards N` or `auto` (one per host of the group)."""
    if text == "auto":
        if not hosts:
            raise TestbedError("--shards auto needs --inventory FILE --limit GROUP: one shard per host of the group")
        return len(hosts)
    if not text.isdigit() or not 1 <= int(text) <= 99:
        raise TestbedError(f"--shards {text!r}: expected a number from 1 to 99, or auto")
    return int(text)


def group_hosts(inventory: Path, limit: str) -> list[str]:
    """The hosts of an inventory group (or the one host) `--limit` names, as Ansible resolves the pattern."""
    argv = [str(Path(sys.executable).parent / "ansible"), limit, "-i", str(inventory), "--list-hosts"]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise TestbedError(f"--inventory {inventory}: ansible --list-hosts failed: {result.stderr.strip()[-300:]}")
    # "  hosts (2):" then one indented host per line
    hosts = [line.strip() for line in result.stdout.splitlines()[1:] if line.strip()]
    if not hosts:
        raise TestbedError(f"--limit {limit}: no host of {inventory} matches")
    return hosts


def run(
    shard_argv: Sequence[str],
    pytest_args: Sequence[str],
    total: int,
    hosts: Sequence[str],
    run_root: Path,
    service_dir: Path,
) -> int:
    """Start every shard, wait for all, merge what they left; the exit code is the merge's (the worst shard's)."""
    merged = run_root / f"merged-{new_run_id()}"
    logs = merged / "shards"
    logs.mkdir(parents=True, exist_ok=True)
    procs = []
    for k in range(1, total + 1):
        argv = [sys.executable, "-m", "testbed", "run", *shard_argv, f"--shard={k}/{total}"]
        if hosts:
            argv += ["--limit", hosts[(k - 1) % len(hosts)]]
        argv += ["--", *pytest_args] if pytest_args else []
        with (logs / f"shard-{k}.log").open("w", encoding="utf-8") as log:
            procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
    print(f"ℹ️  Shards: {total} running at once" + (f" on {', '.join(sorted(set(hosts)))}" if hosts else ""))

    def forward(signum: int, _frame: FrameType | None) -> None:
        for proc in procs:  # each shard tears its own run down
            proc.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        codes = [proc.wait() for proc in procs]
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    folders = []
    for k, code in enumerate(codes, start=1):
        text = (logs / f"shard-{k}.log").read_text(encoding="utf-8", errors="replace")
        found = _RUN_FOLDER.findall(text)
        last = next((line for line in reversed(text.splitlines()) if line.startswith(("✅ Tests", "❌"))), "")
        print(f"   shard {k}/{total}: exit {code}{f', {last[2:].strip()}' if last else ''} ({logs}/shard-{k}.log)")
        if found:
            folders.append(Path(found[-1]))
    if len(folders) < total:
        print(f"❌ Shards: {total - len(folders)} left no run folder; see their logs in {logs}")
        return merge.worst([*codes, int(ExitCode.CONFIG)])
    # A runner host measured its own copy of the service: coverage maps it onto this folder.
    report = merge.merge(folders, merged, service_dir)
    merge.show(report)
    return int(report["exit_code"])
