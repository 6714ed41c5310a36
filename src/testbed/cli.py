"""The `testbed` command: run, merge, up, test, down, status, env, logs, gc."""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from testbed import cli_arguments
from testbed.config import (
    ServiceConfig,
    load_catalogue,
    load_service_config,
    nearest_service_dir,
    project_root,
)
from testbed.errors import ExitCode, TestbedError
from testbed.state import RunState, all_runs, check_run_id, new_run_id
from testbed.templating import service_environment

if TYPE_CHECKING:
    from testbed.runner import Options


def _service_dir(arg: Path | None, _project: Path) -> Path:
    return arg.resolve() if arg is not None else nearest_service_dir(Path.cwd())


def _config(arg: Path | None, project: Path) -> ServiceConfig:
    return load_service_config(_service_dir(arg, project), load_catalogue(project))


def _images(pairs: Sequence[str], config: ServiceConfig) -> dict[str, str]:
    images: dict[str, str] = {}
    for pair in pairs:
        server, _, image = pair.partition("=")
        if not image or server not in config.servers:
            raise TestbedError(
                f"--image {pair!r}: expected SERVER=IMAGE with SERVER one of {', '.join(config.servers)}"
            )
        images[server] = image
    return images


def _validate(args: argparse.Namespace, config: ServiceConfig) -> None:
    """Everything that can be checked before anything starts, reported at once."""
    if getattr(args, "run_id", ""):
        check_run_id(args.run_id)
        if getattr(args, "inventory", None) is None:  # a remote run's id names an environment over there
            from testbed.run_guard import refuse_run_id_in_use  # noqa: PLC0415

            refuse_run_id_in_use(args.run_id)
    from testbed.preflight_checks import check_before_start  # noqa: PLC0415 - only commands that start servers

    check_before_start(config)  # templates, test paths, exec limits, migration files
    from testbed.servers import unavailable_on  # noqa: PLC0415

    unavailable = unavailable_on(config.servers, getattr(args, "backend", None) or "auto")
    if unavailable:  # a declared server without a command (native) or an image (docker) for the backend asked for
        raise TestbedError(unavailable, ExitCode.CONFIG)
    from testbed.runner import secrets_source  # noqa: PLC0415 - only commands that run playbooks need it

    source = secrets_source(getattr(args, "secrets", "auto"), os.environ)
    from testbed import collections_install, docker_api  # noqa: PLC0415

    backend = getattr(args, "backend", "auto")
    # auto picks Docker where its engine answers (a remote host's engine cannot be asked from here).
    docker = backend == "docker" or (
        backend == "auto" and (getattr(args, "inventory", None) is not None or docker_api.engine_answers() is not None)
    )
    collections_install.require(docker=docker, ssm=source == "ssm")
    if source == "env":
        from testbed.secrets import require_env  # noqa: PLC0415

        require_env(config.as_dict()["secrets"], os.environ)
    if getattr(args, "inventory", None) is None:
        _usable_run_root(getattr(args, "run_folder", None) or config.directory / "runs")


def _usable_run_root(run_root: Path) -> None:
    """The folder the run folder goes in can be made and written. Tried for real (root passes every access()
    check, and /proc refuses a mkdir that access() allows), then what the try made is removed: a run that
    fails a later check leaves nothing."""
    missing = [folder for folder in (run_root, *run_root.parents) if not folder.exists()]
    try:
        run_root.mkdir(parents=True, exist_ok=True)
        if not os.access(run_root, os.W_OK | os.X_OK):
            raise PermissionError(13, "not writable")
    except OSError as exc:
        raise TestbedError(
            f"--run-folder {run_root}: cannot create or write it ({exc.strerror or exc}); point --run-folder "
            "at a folder you can write",
            ExitCode.CONFIG,
        ) from exc
    finally:
        for folder in missing:  # deepest first
            with contextlib.suppress(OSError):
                folder.rmdir()


def _options(args: argparse.Namespace, config: ServiceConfig, playbook: str) -> Options:
    pytest_args = [a for a in getattr(args, "pytest_args", []) if a != "--"]
    from testbed.runner import Options  # noqa: PLC0415

    return Options(
        service=config.directory,
        playbook=playbook,
        backend=getattr(args, "backend", "auto"),
        ports=getattr(args, "ports", "fixed"),
        secrets=getattr(args, "secrets", "auto"),
        run_id=getattr(args, "run_id", ""),
        run_root=getattr(args, "run_folder", None),
        images=_images(getattr(args, "image", []), config),
        pull=getattr(args, "pull", False),
        verbose=args.verbose,
        pytest_args=pytest_args,
        readiness_timeout=getattr(args, "readiness_timeout", 60),
        keep_runner_dir=getattr(args, "keep_runner_dir", False),
        inventory=_inventory(args),
        limit=getattr(args, "limit", ""),
    )


def _inventory(args: argparse.Namespace) -> Path | None:
    inventory: Path | None = getattr(args, "inventory", None)
    if inventory is not None and not getattr(args, "limit", ""):
        raise TestbedError("--inventory needs --limit HOST: a run happens on one host")
    if inventory is not None and not inventory.is_file():
        raise TestbedError(f"--inventory {inventory}: no such file")
    return inventory


def _leased_run(directory: Path) -> RunState | None:
    """The environment `testbed up` left for this service (this very folder), if any."""
    now = time.time()
    for state in all_runs():
        try:
            data = state.read()
        except (OSError, ValueError):
            continue
        same_service = data.get("config", {}).get("directory") == str(directory)
        if same_service and (data.get("lease_until") or 0) > now and not data.get("torn_down"):
            return state
    return None


def _require_up(directory: Path) -> RunState:
    state = _leased_run(directory)
    if state is None:
        raise TestbedError(
            f"no environment is up for {directory.name}; start one with `testbed up`", ExitCode.PROVISIONING
        )
    return state


def cmd_run(args: argparse.Namespace, project: Path) -> int:
    config = _config(args.service, project)
    _validate(args, config)
    if args.shards:
        return _run_shards(args, config, project)
    options = _options(args, config, "playbooks/integration.yml")
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
    inventory = _inventory(args)
    hosts = fleet.group_hosts(inventory, args.limit) if inventory else []
    total = fleet.count(args.shards, hosts)
    durations = _shard_vars(argparse.Namespace(**{**vars(args), "shard": f"1/{total}"}), config)["testbed_durations"]
    if inventory is not None:
        options = _options(args, config, "playbooks/integration.yml")
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
    ]
    run_root = (args.run_folder or config.directory / "runs").resolve()  # beside the service, as for one run
    shard_argv += ["--run-folder", str(run_root)]
    pytest_args = [a for a in args.pytest_args if a != "--"]
    return fleet.run(shard_argv, pytest_args, total, run_root, config.directory)


def cmd_up(args: argparse.Namespace, project: Path) -> int:
    from testbed.render import server_line  # noqa: PLC0415

    config = _config(args.service, project)
    existing = _leased_run(config.directory) if args.inventory is None else None  # a remote run is not here
    if existing is not None:
        from testbed import probes  # noqa: PLC0415

        data = existing.read()
        results = probes.wait_ready(data.get("facts", {}), timeout=2.0, servers=data["servers"])
        if all(r.ready for r in results.values()):
            for name, server in data["servers"].items():
                print(server_line(server["title"], data["facts"][name]["port"], already_up=True))
            with existing.update() as current:
                current["lease_until"] = time.time() + args.lease
            return _migrate_existing(data["run_id"])
        print(f"ℹ️  environment {data['run_id']} is unhealthy; replacing it")
        from testbed.teardown import teardown  # noqa: PLC0415

        teardown(existing, grace=2.0)
    _validate(args, config)
    options = _options(args, config, "playbooks/up.yml")
    options.lease_seconds = args.lease
    options.teardown = "on_failure"
    from testbed.runner import run_playbook  # noqa: PLC0415

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


def _migrate_existing(run_id: str) -> int:
    """A second `up` applies migrations added since the first (the dev loop), and nothing else."""
    from testbed.pipeline import migrate  # noqa: PLC0415
    from testbed.render import failure_line, migrations_line  # noqa: PLC0415

    try:
        applied = migrate(run_id)["applied"]
    except TestbedError as exc:
        print(failure_line("migrations", str(exc)))
        return int(exc.exit_code)
    print(migrations_line(len(applied)))
    return 0


def cmd_test(args: argparse.Namespace, project: Path) -> int:
    config = _config(args.service, project)
    state = _require_up(config.directory)
    from testbed.preflight_checks import check_before_start  # noqa: PLC0415

    check_before_start(config)  # a test path removed or an env value grown since `up`
    data = state.read()
    options = _options(args, config, "playbooks/test.yml")
    options.run_id = data["run_id"]
    options.run_root = Path(data["run_folder"]).parent
    options.secrets = "file"
    options.teardown = "never"
    from testbed.run_guard import testing  # noqa: PLC0415
    from testbed.runner import run_playbook  # noqa: PLC0415

    with testing(state):  # `testbed down` refuses meanwhile
        return run_playbook(options, project, config.as_dict())


def cmd_down(args: argparse.Namespace, project: Path) -> int:
    from testbed.render import teardown_line  # noqa: PLC0415
    from testbed.teardown import teardown  # noqa: PLC0415

    if args.inventory is not None:  # on the remote host, through playbooks/down.yml
        if not args.run_id:
            raise TestbedError("down --inventory needs --run-id: the run is on the remote host")
        config = _config(args.service, project)
        options = _options(args, config, "playbooks/down.yml")
        options.teardown = "never"
        from testbed.runner import run_playbook  # noqa: PLC0415

        return run_playbook(options, project, config.as_dict())
    state = RunState.find(args.run_id) if args.run_id else _require_up(_service_dir(args.service, project))
    from testbed.run_guard import tearing_down  # noqa: PLC0415

    with tearing_down(state):
        result = teardown(state)
    print(teardown_line(result.left))
    return 0 if result.ok else int(ExitCode.TEARDOWN)


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{int(seconds)}s"
    if seconds < 7200:
        return f"{int(seconds // 60)}m"
    return f"{seconds / 3600:.1f}h"


def cmd_status(args: argparse.Namespace, project: Path) -> int:
    from testbed import probes  # noqa: PLC0415
    from testbed.state import owner_alive  # noqa: PLC0415

    wanted = _config(args.service, project).name if args.service else None
    runs = []
    for state in all_runs(warn=lambda warning: print(f"⚠️  {warning}", file=sys.stderr)):
        data = state.read()
        if wanted and data.get("service") != wanted:
            continue
        runs.append(data)
    if not runs:
        print("no testbed environments on this host" + (f" for {wanted}" if wanted else ""))
        return 0
    now = time.time()
    for data in runs:
        facts = data.get("facts", {})
        health = probes.wait_ready(facts, timeout=1.0, servers=data["servers"]) if facts else {}
        kept = (
            "up (lease)" if (data.get("lease_until") or 0) > now else ("running" if owner_alive(data) else "orphaned")
        )
        print(
            f"{data['run_id']}  {data.get('service')}  {data.get('backend')}  {kept}  age {_age(now - data['created'])}"
        )
        for name, fact in facts.items():
            ok = health.get(name)
            mark = "✅" if ok and ok.ready else "❌"
            print(
                f"   {mark} {data['servers'][name]['title']}: port {fact['port']}"
                + (f" ({ok.version})" if ok and ok.ready else f" ({ok.last_error if ok else 'unknown'})")
            )
    return 0


def cmd_env(args: argparse.Namespace, project: Path) -> int:
    from testbed.secrets import secrets_path  # noqa: PLC0415

    config = _config(args.service, project)
    data = _require_up(config.directory).read()
    for key, value in service_environment(config, data["facts"]).items():
        print(f"export {key}={shlex.quote(value)}")
    path = secrets_path(data["run_id"])
    if path.is_file():
        names = ", ".join(spec.variable for spec in config.secrets) or "none configured"
        print(f"# secrets ({names}) are not printed: they are in {path} (0600, JSON)")
    return 0


def cmd_logs(args: argparse.Namespace, project: Path) -> int:
    from testbed import docker_api  # noqa: PLC0415

    config = _config(args.service, project)
    data = _require_up(config.directory).read()
    names = [args.server] if args.server else list(data["servers"])
    from testbed.secrets import redactor  # noqa: PLC0415

    redact = redactor(data["run_id"]).text  # a server may log what a test sent it
    containers = {r["service"]: r["name"] for r in data["resources"] if r["kind"] == "container"}
    for name in names:
        if name not in data["servers"]:
            raise TestbedError(f"no server {name!r} in this environment (it has {', '.join(data['servers'])})")
        print(f"==> {data['servers'][name]['title']} <==")
        if name in containers:
            print(redact(docker_api.logs(containers[name])), end="")
        else:
            path = Path(data["run_folder"]) / "logs" / f"{name}.log"
            text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else "(no log yet)"
            print(redact(text), end="")
    return 0


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


def main(argv: Sequence[str] | None = None) -> int:
    args = cli_arguments.parser().parse_args(argv)
    try:
        project = project_root()
        return int(COMMANDS[args.command](args, project))
    except TestbedError as exc:
        print(f"testbed: error: {exc}", file=sys.stderr)
        if args.command in ("run", "up", "test"):
            from testbed.report import publish_failure  # noqa: PLC0415

            # Under GitHub Actions a run that fails before its playbook still leaves a step summary.
            publish_failure(args.command, getattr(args.service, "name", "") or "service", exc)
        return int(exc.exit_code)
    except KeyboardInterrupt:  # before a run exists (a run notes its signals instead, and tears down)
        print("❌ Interrupted by SIGINT before anything started", file=sys.stderr)
        return int(ExitCode.SIGINT)
