"""`testbed run` (one run, a shard of a split, or every shard at once with --shards) and `testbed merge`."""

from __future__ import annotations

import argparse
from pathlib import Path

from testbed.cli import arguments as cli_arguments
from testbed.cli.common import remote_inventory, run_options, service_config, validate
from testbed.config.service import ServiceConfig
from testbed.core.errors import TestbedError
from testbed.parallel import split


def cmd_run(args: argparse.Namespace, project: Path) -> int:
    config = service_config(args.service, project)
    validate(args, config)
    if args.shards:
        return _run_shards(args, config, project)
    options = run_options(args, config, "playbooks/integration.yml")
    options.extravars |= _shard_vars(args, config)
    from testbed.ansible.driver import run_playbook  # noqa: PLC0415 - start-up cost: what drives playbooks

    return run_playbook(options, project, config.as_dict())


def _shard_vars(args: argparse.Namespace, config: ServiceConfig) -> dict[str, str]:
    """--shard K/N and --durations FILE, checked before anything starts."""

    if args.durations is not None and not args.shard:
        raise TestbedError("--durations only splits a run given --shard K/N")
    durations = str(args.durations.resolve()) if args.durations is not None else ""
    split.check(args.shard, durations, config.directory)
    return {"testbed_shard": args.shard, "testbed_durations": durations} if args.shard else {}


def cmd_merge(args: argparse.Namespace, _project: Path) -> int:

    from testbed.shards import merge  # noqa: PLC0415 - start-up cost: junitparser, sqlite3 (coverage)

    report = merge.merge(args.folders, args.out, args.service.resolve() if args.service else None)
    merge.show(report)
    return int(report["exit_code"])


def _run_shards(args: argparse.Namespace, config: ServiceConfig, project: Path) -> int:
    """--shards N|auto: every shard at once (here with auto ports, or in one play over the hosts of --limit
    GROUP), merged."""

    if args.shard or args.run_id:
        raise TestbedError("--shards gives each shard its own --shard K/N and run id; leave --shard and --run-id out")
    inventory = remote_inventory(args)
    from testbed.shards import run_all  # noqa: PLC0415 - start-up cost: the merge's junitparser, sqlite3

    hosts = run_all.group_hosts(inventory, args.limit) if inventory else []
    total = run_all.count(args.shards, hosts)
    durations = _shard_vars(argparse.Namespace(**{**vars(args), "shard": f"1/{total}"}), config)["testbed_durations"]
    if inventory is not None:
        options = run_options(args, config, "playbooks/integration.yml")
        options.extravars |= {"testbed_durations": durations}
        return run_all.run_on_hosts(options, project, config.as_dict(), hosts, total)
    run_root = (args.run_folder or config.directory / "runs").resolve()  # beside the service, as for one run
    shard_argv = cli_arguments.argv_of(
        "run",
        args,
        service=config.directory,
        ports="auto",  # side by side: free ports
        run_folder=run_root,
        durations=durations or None,
        shards=None,
    )
    pytest_args = [a for a in args.pytest_args if a != "--"]
    return run_all.run(shard_argv, pytest_args, total, run_root, config.directory)
