"""The `testbed` command: run, merge, up, test, down, status, env, logs, gc, collections."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from testbed import cli_arguments
from testbed.cli_devloop import cmd_down, cmd_env, cmd_logs, cmd_status, cmd_test, cmd_up
from testbed.cli_shared import remote_inventory, run_options, service_config, validate
from testbed.config import ServiceConfig, project_root
from testbed.errors import ExitCode, TestbedError
from testbed.interrupts import NOTED


def cmd_run(args: argparse.Namespace, project: Path) -> int:
    config = service_config(args.service, project)
    validate(args, config)
    if args.shards:
        return _run_shards(args, config, project)
    options = run_options(args, config, "playbooks/integration.yml")
    options.extravars |= _shard_vars(args, config)
    from testbed.runner import run_playbook  # noqa: PLC0415

    return run_playbook(options, project, config.as_dict())


def _shard_vars(args: argparse.Namespace, config: ServiceConfig) -> dict[str, str]:
    """--shard K/N and --durations FILE, checked before anything starts."""
    from testbed import shard  # noqa: PLC0415

    if args.durations is not None and not args.shard:
        raise TestbedError("--durations only splits a run given --shard K/N")
    durations = str(args.durations.resolve()) if args.durations is not None else ""
    shard.check(args.shard, durations, config.directory)
    return {"testbed_shard": args.shard, "testbed_durations": durations} if args.shard else {}


def cmd_merge(args: argparse.Namespace, _project: Path) -> int:
    from testbed import merge  # noqa: PLC0415

    report = merge.merge(args.folders, args.out, args.service.resolve() if args.service else None)
    merge.show(report)
    return int(report["exit_code"])


def _run_shards(args: argparse.Namespace, config: ServiceConfig, project: Path) -> int:
    """--shards N|auto: every shard at once (here with auto ports, or in one play over the hosts of --limit
    GROUP), merged."""
    from testbed import fleet  # noqa: PLC0415

    if args.shard or args.run_id:
        raise TestbedError("--shards gives each shard its own --shard K/N and run id; leave --shard and --run-id out")
    inventory = remote_inventory(args)
    hosts = fleet.group_hosts(inventory, args.limit) if inventory else []
    total = fleet.count(args.shards, hosts)
    durations = _shard_vars(argparse.Namespace(**{**vars(args), "shard": f"1/{total}"}), config)["testbed_durations"]
    if inventory is not None:
        options = run_options(args, config, "playbooks/integration.yml")
        options.extravars |= {"testbed_durations": durations}
        return fleet.run_on_hosts(options, project, config.as_dict(), hosts, total)
    shard_argv = [
        *("--service", str(config.directory), "--backend", args.backend, "--secrets", args.secrets),
        *("--ports", "auto"),  # side by side: free ports
        *(f"--image={pair}" for pair in args.image),
        *(["--pull"] if args.pull else []),
        *("--readiness-timeout", str(args.readiness_timeout)),
        *(["-" + "v" * args.verbose] if args.verbose else []),
        *(["--durations", durations] if durations else []),
        *(["--workers", args.workers] if args.workers is not None else []),
    ]
    run_root = (args.run_folder or config.directory / "runs").resolve()  # beside the service, as for one run
    shard_argv += ["--run-folder", str(run_root)]
    pytest_args = [a for a in args.pytest_args if a != "--"]
    return fleet.run(shard_argv, pytest_args, total, run_root, config.directory)


def cmd_gc(args: argparse.Namespace, _project: Path) -> int:
    from testbed.teardown import gc  # noqa: PLC0415

    results = gc(ttl=args.ttl, run_id_prefix=args.run_id_prefix)
    left = [item for r in results for item in r.left]
    removed = sum(len(r.removed) for r in results)
    print(
        f"gc: {len(results)} run(s) collected, {removed} resource(s) removed"
        + (f"; left {', '.join(left)}" if left else "")
    )
    return int(ExitCode.TEARDOWN) if left else 0


def cmd_collections(args: argparse.Namespace, _project: Path) -> int:
    from testbed import collections_install  # noqa: PLC0415

    root = args.path.resolve() / "ansible_collections" if args.path else None
    for line in collections_install.install(root):
        print(line)
    return 0


COMMANDS: dict[str, Any] = {
    "run": cmd_run,
    "merge": cmd_merge,
    "up": cmd_up,
    "test": cmd_test,
    "down": cmd_down,
    "status": cmd_status,
    "env": cmd_env,
    "logs": cmd_logs,
    "gc": cmd_gc,
    "collections": cmd_collections,
}


#: Commands that drive a playbook: they act on a signal themselves (cancel, tear down); the others have
#: nothing to tear down and go back to Python's handlers once they start.
PLAYBOOK_COMMANDS = ("run", "up", "test", "down")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        NOTED.note()  # a no-op from `testbed`: __main__ installed it first (tests call main directly)
        args = cli_arguments.parser().parse_args(argv)
        NOTED.checkpoint()
        if args.command not in PLAYBOOK_COMMANDS:
            NOTED.release()
    except KeyboardInterrupt:
        print(NOTED.before_start_line(), file=sys.stderr)
        return int(NOTED.exit_code)
    try:
        project = project_root()
        code = int(COMMANDS[args.command](args, project))
    except TestbedError as exc:
        print(f"testbed: error: {exc}", file=sys.stderr)
        if args.command in ("run", "up", "test"):
            from testbed.report import publish_failure  # noqa: PLC0415

            # Under GitHub Actions a run that fails before its playbook still leaves a step summary.
            publish_failure(args.command, getattr(args.service, "name", "") or "service", exc)
        code = int(exc.exit_code)
    except KeyboardInterrupt:  # noted before the run existed (checkpoint), or after release
        print(NOTED.before_start_line(), file=sys.stderr)
        return int(NOTED.exit_code)
    except OSError as exc:
        from testbed.files import disk_full_of  # noqa: PLC0415

        full = disk_full_of(exc)  # a write of the wrapper's own (secrets, the private folder) on a full disk
        if full is None:
            raise
        print(f"testbed: error: {full}", file=sys.stderr)
        code = int(full.exit_code)
    if NOTED.signum is not None and code not in (ExitCode.SIGINT, ExitCode.SIGTERM):
        # Noted where nothing acted on it (a dev-loop command that ended without a playbook): still its code.
        print(f"❌ Interrupted by {NOTED.name}", file=sys.stderr)
        return int(NOTED.exit_code)
    return code
