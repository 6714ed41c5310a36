"""`testbed run --shards N|auto`: every shard of a suite at once, then one merged report.

Each shard is a run of its own (its own run id, servers, teardown and run folder). On this machine each is a
`testbed run --shard K/N` subprocess with auto ports. On the hosts of an inventory group (`--limit GROUP`) they
are ONE play over the group's first N hosts (`auto`: all of them), run through Ansible's own forks: each host
runs the shard of its place in the play (playbooks/tasks/shard_of_host.yml, `testbed_shards`), and its run
folder comes back to `<run root>/<run id>-<K>`. The shards' run folders are merged (testbed.shards.merge) into
`<run root>/merged-<run id>`.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from testbed.ansible.driver import run_playbook
from testbed.ansible.options import Options
from testbed.core import errors
from testbed.core.errors import ExitCode, TestbedError
from testbed.run.store import new_run_id
from testbed.shards import merge

_RUN_FOLDER = re.compile(r"Run folder: (\S+)")


def count(text: str, hosts: Sequence[str]) -> int:
    """`--shards N` or `auto` (one per host of the group)."""
    if text == "auto":
        if not hosts:
            raise TestbedError("--shards auto needs --inventory FILE --limit GROUP: one shard per host of the group")
        return len(hosts)
    if not text.isdigit() or not 1 <= int(text) <= 99:
        raise TestbedError(f"--shards {text!r}: expected a number from 1 to 99, or auto")
    if hosts and int(text) > len(hosts):
        raise TestbedError(
            f"--shards {text}: the group has {len(hosts)} host(s) ({', '.join(hosts)}) and its play runs one shard "
            f"per host; use --shards {len(hosts)} or auto, or list a machine twice in the inventory under two names "
            "with the same ansible_host"
        )
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


def run_on_hosts(options: Options, project: Path, config: dict[str, Any], hosts: Sequence[str], total: int) -> int:
    """One play over the group's first `total` hosts, each running its shard; then the merge. The exit code is
    the merge's (the worst shard's)."""
    chosen = list(hosts[:total])
    options.run_id = new_run_id()
    options.limit = ",".join(chosen)
    options.shard_hosts = chosen
    options.extravars |= {"testbed_shards": str(total)}
    run_root = (options.run_root or options.service / "runs").resolve()
    print(f"ℹ️  Shards: {total} running at once on {', '.join(chosen)}, in one play")
    code = run_playbook(options, project, config)
    folders = [run_root / f"{options.run_id}-{k}" for k in range(1, total + 1)]
    missing = [folder for folder in folders if not (folder / "report.json").is_file()]
    if missing:
        print(f"❌ Shards: {', '.join(f.name for f in missing)} left no run folder (exit {code}); nothing to merge")
        return errors.worst([code, int(ExitCode.CONFIG)])
    # Each host measured its own copy of the service: coverage maps it onto this folder.
    report = merge.merge(folders, run_root / f"merged-{options.run_id}", options.service)
    merge.show(report)
    return int(report["exit_code"])


def run(
    shard_argv: Sequence[str],
    pytest_args: Sequence[str],
    total: int,
    run_root: Path,
    service_dir: Path,
) -> int:
    """Start every shard here, wait for all, merge what they left; the exit code is the merge's (the worst
    shard's)."""
    merged = run_root / f"merged-{new_run_id()}"
    logs = merged / "shards"
    logs.mkdir(parents=True, exist_ok=True)
    procs = []
    for k in range(1, total + 1):
        argv = [sys.executable, "-m", "testbed", "run", *shard_argv, f"--shard={k}/{total}"]
        argv += ["--", *pytest_args] if pytest_args else []
        with (logs / f"shard-{k}.log").open("w", encoding="utf-8") as log:
            procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
    print(f"ℹ️  Shards: {total} running at once")

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
        return errors.worst([*codes, int(ExitCode.CONFIG)])
    report = merge.merge(folders, merged, service_dir, present=("shards",))  # the shards' logs, above
    merge.show(report)
    return int(report["exit_code"])
