"""The dev-loop commands: up, test, down, status, env, logs (an environment kept up between test runs)."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from testbed.cli.common import run_options, service_config, service_dir, validate
from testbed.config import workers
from testbed.config.checks import check_before_start
from testbed.config.environment import service_environment
from testbed.core.errors import TestbedError
from testbed.core.paths import runtime_root
from testbed.parallel import workers as parallel_workers
from testbed.run.guard import tearing_down, testing
from testbed.run.outcome import ServersReady, ServerUp, failure_line
from testbed.run.record import RunRecord
from testbed.run.secrets import redactor, secrets_path
from testbed.run.store import RunState, all_runs, check_run_id, leased_run, new_run_id, require_up
from testbed.servers import probes
from testbed.teardown.teardown import stateless_runs, teardown, teardown_run_id, without_state


def cmd_up(args: argparse.Namespace, project: Path) -> int:
    config = service_config(args.service, project)
    existing = leased_run(config.directory) if args.inventory is None else None  # a remote run is not here
    asked = workers.count(args.workers, "--workers") if args.workers is not None else 0
    if existing is not None and parallel_workers.missing_instances(existing.load().servers, asked):
        # More workers than the environment has servers for: the up playbook adds (only) their instances.
        with existing.update() as current:
            current["lease_until"] = time.time() + args.lease
        options = run_options(args, config, "playbooks/up.yml")
        options.run_id = existing.load().run_id
        options.teardown = "never"  # what is up stays up if adding fails
        from testbed.ansible.driver import run_playbook  # noqa: PLC0415 - start-up cost: what drives playbooks

        return run_playbook(options, project, config.as_dict())
    if existing is not None:
        record = existing.load()
        results = probes.wait_ready(record.facts, timeout=2.0, servers=record.servers, run_id=record.run_id)
        if all(r.ready for r in results.values()):
            print("\n".join(already_up(record).lines()))
            with existing.update() as current:
                current["lease_until"] = time.time() + args.lease
            return _migrate_existing(record.run_id)
        print(f"ℹ️  environment {record.run_id} is unhealthy; replacing it")

        teardown(existing, grace=2.0)
    validate(args, config)
    options = run_options(args, config, "playbooks/up.yml")
    options.lease_seconds = args.lease
    options.teardown = "on_failure"
    from testbed.ansible.driver import run_playbook  # noqa: PLC0415 - start-up cost: what drives playbooks

    if args.inventory is None:
        return run_playbook(options, project, config.as_dict())
    options.run_id = options.run_id or new_run_id()  # the remote environment is named by it, for `down`
    code = run_playbook(options, project, config.as_dict())
    if code == 0:
        print(
            f"ℹ️  Up on {args.limit}: `testbed down --inventory {args.inventory} --limit {args.limit} "
            f"--run-id {options.run_id}` tears it down"
        )
    return code


def already_up(record: RunRecord) -> ServersReady:
    """A second `up` found every server of `record` answering: the readiness phase's result, said so."""
    servers = [ServerUp(name, s["title"], record.facts[name]["port"]) for name, s in record.servers.items()]
    return ServersReady(servers, already_up=True)


def _migrate_existing(run_id: str) -> int:
    """A second `up` applies migrations added since the first (the dev loop), and nothing else."""
    try:
        from testbed.phases.migrations import migrate  # noqa: PLC0415 - start-up cost: psycopg

        migrated = migrate(run_id)
    except TestbedError as exc:
        print(failure_line("migrations", str(exc)))
        return int(exc.exit_code)
    print("\n".join(migrated.lines()))
    return 0


def cmd_test(args: argparse.Namespace, project: Path) -> int:
    config = service_config(args.service, project)
    state = require_up(config.directory)

    # Before anything of this run exists (ansible-runner's folder is named by the run id, which a second
    # `testbed test` shares): one at a time, and `testbed down` refuses meanwhile.
    with testing(state):
        record = state.load()
        options = run_options(args, config, "playbooks/test.yml")
        asked = workers.count(options.extravars["testbed_workers"], "--workers") if args.workers is not None else 0
        # a test path removed or an env value grown since `up`
        check_before_start(config, worker_count=asked or record.workers)
        parallel_workers.check_instances(record.servers, asked, record.workers)  # before anything starts
        options.run_id = record.run_id
        options.run_root = record.run_folder.parent
        options.secrets = "file"
        options.teardown = "never"
        from testbed.ansible import in_process  # noqa: PLC0415 - start-up cost: the modules' glue

        if in_process.wanted():  # the tests role's tasks here: no ansible-playbook per iteration
            return in_process.run_tests(options, project)
        from testbed.ansible.driver import run_playbook  # noqa: PLC0415 - start-up cost: what drives playbooks

        return run_playbook(options, project, config.as_dict())


def cmd_down(args: argparse.Namespace, project: Path) -> int:

    if args.inventory is not None:  # on the remote host, through playbooks/down.yml
        if not args.run_id:
            raise TestbedError("down --inventory needs --run-id: the run is on the remote host")
        config = service_config(args.service, project)
        options = run_options(args, config, "playbooks/down.yml")
        options.teardown = "never"
        from testbed.ansible.driver import run_playbook  # noqa: PLC0415 - start-up cost: what drives playbooks

        return run_playbook(options, project, config.as_dict())

    state = _state_to_tear_down(args, project)
    with tearing_down(state):
        result = teardown(state) if state.path.is_file() else teardown_run_id(state.runtime_dir.name)
    print("\n".join(result.lines()))
    return 0 if result.ok else int(result.error().exit_code)


def _state_to_tear_down(args: argparse.Namespace, project: Path) -> RunState:
    """The run `down` tears down: by --run-id (also one whose state file is gone, as long as something of it is
    left), or the service's `up` environment; when there is none, the runs that lost their state file and
    still run servers are named, with the command that stops them."""
    if args.run_id:
        check_run_id(args.run_id)
        try:
            return RunState.find(args.run_id)
        except TestbedError:
            lost = RunState(runtime_root() / args.run_id)
            if lost.runtime_dir.is_dir() or without_state(args.run_id):
                return lost  # torn down from what remains of it
            raise
    try:
        return require_up(service_dir(args.service, project))
    except TestbedError as none_up:
        lost_runs = [(folder.name, without_state(folder.name)) for folder in stateless_runs()]
        named = [
            f"run {run_id} lost its state file but still runs {', '.join(running)}: "
            f"`testbed down --run-id {run_id}` stops it"
            for run_id, running in lost_runs
            if running
        ]
        if not named:
            raise
        raise TestbedError(f"{none_up}; {'; '.join(named)}", none_up.exit_code) from None


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{int(seconds)}s"
    if seconds < 7200:
        return f"{int(seconds // 60)}m"
    return f"{seconds / 3600:.1f}h"


def cmd_status(args: argparse.Namespace, project: Path) -> int:

    wanted = service_config(args.service, project).name if args.service else None
    runs = []
    for state in all_runs(warn=lambda warning: print(f"⚠️  {warning}", file=sys.stderr)):
        record = state.load()
        if wanted and record.service != wanted:
            continue
        runs.append(record)

    for folder in stateless_runs():  # a run whose state file is gone (a test deleted it) may still run servers
        running = without_state(folder.name)
        if running:
            print(
                f"{folder.name}  state file gone  still running: {', '.join(running)}; "
                f"`testbed down --run-id {folder.name}` stops it"
            )
    if not runs:
        print("no testbed environments on this host" + (f" for {wanted}" if wanted else ""))
        return 0
    now = time.time()
    for record in runs:
        facts = record.facts
        health = probes.wait_ready(facts, timeout=1.0, servers=record.servers, run_id=record.run_id) if facts else {}
        kept = "up (lease)" if (record.lease_until or 0) > now else ("running" if record.owner_alive() else "orphaned")
        print(f"{record.run_id}  {record.service}  {record.backend}  {kept}  age {_age(now - record.created)}")
        for name, fact in facts.items():
            ok = health.get(name)
            mark = "✅" if ok and ok.ready else "❌"
            print(
                f"   {mark} {record.servers[name]['title']}: port {fact['port']}"
                + (f" ({ok.version})" if ok and ok.ready else f" ({ok.last_error if ok else 'unknown'})")
            )
    return 0


def cmd_env(args: argparse.Namespace, project: Path) -> int:

    config = service_config(args.service, project)
    record = require_up(config.directory).load()
    for key, value in service_environment(config, record.own_facts()).items():
        print(f"export {key}={shlex.quote(value)}")
    path = secrets_path(record.run_id)
    if path.is_file():
        names = ", ".join(spec.variable for spec in config.secrets) or "none configured"
        print(f"# secrets ({names}) are not printed: they are in {path} (0600, JSON)")
    for name in record.kept_databases:
        print(f"# kept by --keep-failed: database {name} (export POSTGRES_DB={shlex.quote(str(name))} to reach it)")
    return 0


def cmd_logs(args: argparse.Namespace, project: Path) -> int:
    from testbed.backends import docker_api  # noqa: PLC0415 - start-up cost: the Docker SDK's client

    config = service_config(args.service, project)
    record = require_up(config.directory).load()
    names = [args.server] if args.server else list(record.servers)

    redact = redactor(record.run_id).text  # a server may log what a test sent it
    containers = record.containers()
    for name in names:
        if name not in record.servers:
            raise TestbedError(f"no server {name!r} in this environment (it has {', '.join(record.servers)})")
        print(f"==> {record.servers[name]['title']} <==")
        if name in containers:
            print(redact(docker_api.logs(containers[name])), end="")
        else:
            path = record.run_folder / "logs" / f"{name}.log"
            text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else "(no log yet)"
            print(redact(text), end="")
    return 0
