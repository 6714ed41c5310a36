"""What the commands share: the service's config, the checks made before anything starts, and a run's
options."""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from testbed.ansible.options import Options
from testbed.backends import docker_api
from testbed.config import workers
from testbed.config.catalogue import load_catalogue
from testbed.config.checks import check_before_start
from testbed.config.service import ServiceConfig, load_service_config, nearest_service_dir
from testbed.core.errors import ExitCode, TestbedError
from testbed.run.guard import refuse_run_id_in_use
from testbed.run.secrets import require_env, secrets_source
from testbed.run.store import check_run_id
from testbed.servers import unavailable_on


def service_dir(arg: Path | None, _project: Path) -> Path:
    return arg.resolve() if arg is not None else nearest_service_dir(Path.cwd())


def service_config(arg: Path | None, project: Path) -> ServiceConfig:
    return load_service_config(service_dir(arg, project), load_catalogue(project))


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


def validate(args: argparse.Namespace, config: ServiceConfig) -> None:
    """Everything that can be checked before anything starts, reported at once."""
    if getattr(args, "run_id", ""):
        check_run_id(args.run_id)
        if getattr(args, "inventory", None) is None:  # a remote run's id names an environment over there
            refuse_run_id_in_use(args.run_id)

    asked = getattr(args, "workers", None)  # `--workers ''` is refused, not taken as the default
    count = workers.count(*((config.tests.workers, "'tests.workers'") if asked is None else (asked, "--workers")))
    check_before_start(config, worker_count=count)  # templates, test paths, exec limits, migration files

    unavailable = unavailable_on(config.servers, getattr(args, "backend", None) or "auto")
    if unavailable:  # a declared server without a command (native) or an image (docker) for the backend asked for
        raise TestbedError(unavailable, ExitCode.CONFIG)

    source = secrets_source(getattr(args, "secrets", "auto"), os.environ)

    # Only the commands that start a run check the collections (`test`, `down`, `status` never).
    from testbed.ansible import collections_install  # noqa: PLC0415 - start-up cost of the other commands

    backend = getattr(args, "backend", "auto")
    # auto picks Docker where its engine answers (a remote host's engine cannot be asked from here).
    docker = backend == "docker" or (
        backend == "auto" and (getattr(args, "inventory", None) is not None or docker_api.engine_answers() is not None)
    )
    collections_install.require(docker=docker, ssm=source == "ssm")
    if source == "env":
        require_env(config.as_dict()["secrets"], os.environ)
    if getattr(args, "inventory", None) is None:
        _usable_run_root(getattr(args, "run_folder", None) or config.directory / "runs")


def _usable_run_root(run_root: Path) -> None:
    """The folder the run folder goes in can be made and written: a folder of a name of its own is made, for
    real (root passes every access() check, and /proc refuses a mkdir that access() allows), in the deepest
    folder of the path that exists, and removed. Nothing else is made or removed here, so a run that fails a
    later check leaves nothing, and runs started at once into one new folder (shards) do not remove it from
    under each other."""
    existing = next(folder for folder in (run_root, *run_root.parents) if folder.exists())
    try:
        if not existing.is_dir():
            raise NotADirectoryError(20, f"{existing} is not a folder")
        Path(tempfile.mkdtemp(prefix=".testbed-write-check-", dir=existing)).rmdir()
    except OSError as exc:
        raise TestbedError(
            f"--run-folder {run_root}: cannot create or write it ({exc.strerror or exc}); point --run-folder "
            "at a folder you can write",
            ExitCode.CONFIG,
        ) from exc


def run_options(args: argparse.Namespace, config: ServiceConfig, playbook: str) -> Options:
    pytest_args = [a for a in getattr(args, "pytest_args", []) if a != "--"]

    options = Options(
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
        inventory=remote_inventory(args),
        limit=getattr(args, "limit", ""),
    )
    if getattr(args, "workers", None) is not None:  # `--workers ''` is refused, not taken as the default
        # `auto` goes on as such: the tests phase starts no more workers than the tests it collects.
        asked = workers.count(args.workers, "--workers")
        options.extravars["testbed_workers"] = "auto" if args.workers == "auto" else str(asked)
    if getattr(args, "no_reset", False):
        options.extravars["testbed_reset"] = False
    isolation = getattr(args, "isolation", None) or config.tests.isolation
    if getattr(args, "isolation", None):
        options.extravars["testbed_isolation"] = args.isolation
    if getattr(args, "keep_failed", False):
        if isolation != "test":
            raise TestbedError(
                f"--keep-failed keeps the database of a failing test, which only --isolation test gives each test "
                f"(tests.isolation is {config.tests.isolation}): add --isolation test",
                ExitCode.CONFIG,
            )
        options.extravars["testbed_keep_failed"] = True
    return options


def remote_inventory(args: argparse.Namespace) -> Path | None:
    inventory: Path | None = getattr(args, "inventory", None)
    if inventory is not None and not getattr(args, "limit", ""):
        raise TestbedError("--inventory needs --limit HOST: a run happens on one host")
    if inventory is not None and not inventory.is_file():
        raise TestbedError(f"--inventory {inventory}: no such file")
    return inventory
