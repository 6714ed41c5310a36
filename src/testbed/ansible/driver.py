"""`testbed run` and friends: a playbook driven through ansible-runner, with readable phase lines, one
exit-code table, secrets kept out of every artifact, and a teardown that survives signals."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, NamedTuple

from testbed.ansible import extravars as ansible_extravars
from testbed.ansible.cleanup import after_interrupt, sweep_orphans, teardown_run
from testbed.ansible.options import Options, extravars_of
from testbed.ansible.settings import (
    MAX_VERBOSITY,
    runner_arguments,
    runner_envvars,
    runner_private_dir,
    scrub_artifacts,
)
from testbed.config.catalogue import load_catalogue
from testbed.core import errors, redact, redacted_output
from testbed.core.errors import ExitCode, TestbedError
from testbed.core.files import DiskFull, disk_full_of, full_filesystem
from testbed.core.interrupts import NOTED, Interrupted
from testbed.core.paths import runtime_root, trusted_runtime_root
from testbed.phases import preflight, servers
from testbed.report import github
from testbed.report.console import HostRenderers, Renderer
from testbed.report.run_report import build_report, report_run, write_report
from testbed.run import secrets
from testbed.run.secrets import resolve_env_secrets, secrets_source
from testbed.run.store import new_run_id


def run_playbook(options: Options, project: Path, config: dict[str, Any], out: IO[str] = sys.stdout) -> int:
    """Drive one playbook through ansible-runner and return the exit code from the table."""
    # The process's record of its signals (noted since `testbed` started): one noted before this point ends
    # the command before anything of the run exists; one while the run is set up (the sweep, the secrets,
    # the head start) is acted on like one during the playbook, which then starts cancelled and is torn down.
    with NOTED as interrupted:
        interrupted.checkpoint()
        return _drive(options, project, config, out, interrupted)


def _drive(options: Options, project: Path, config: dict[str, Any], out: IO[str], interrupted: Interrupted) -> int:
    import ansible_runner  # noqa: PLC0415 - slow import, only for commands that run playbooks

    run_id = options.run_id or new_run_id()
    run_root = (options.run_root or options.service / "runs").resolve()  # beside the service: git-ignore runs/
    environ = os.environ
    source = secrets_source(options.secrets, environ)
    gha = github.is_github_actions(environ)
    # Everything the wrapper prints goes through the run's redactor; it learns values as they resolve.
    redactor = redact.Redactor()
    out = redacted_output.RedactingWriter(out, redactor)  # type: ignore[assignment]
    renderer: Renderer | HostRenderers = (
        HostRenderers(out, options.shard_hosts, options.verbose, environ)
        if options.shard_hosts
        else Renderer(out, options.verbose, environ)
    )
    # On a remote host nothing of the run is on this machine: no local sweep, head start or secrets file.
    remote = options.inventory is not None

    if not remote:
        trusted_runtime_root()  # another user's folder (or a world-writable one) is refused before anything
    if options.teardown != "never" and not remote:
        sweep_orphans(out)

    renderer.on_secrets = masker(run_id, remote, gha, redactor, out)
    ready = _prepare(
        options, project, config, run_id=run_id, run_root=run_root, source=source, mask_secrets=renderer.on_secrets
    )
    head_start, private_dir, inventory, envvars = ready.head_start, ready.private_dir, ready.inventory, ready.envvars
    started = time.time()
    # The handlers stay in place through the teardown: a second signal hurries it, never skips it.
    with interrupted, _disk_full_in_threads() as disk_full:
        try:
            thread, runner = ansible_runner.run_async(
                **ready.arguments,
                limit=options.limit or None,
                cmdline=ansible_extravars.cmdline(ready.extravars),
                event_handler=renderer,
                cancel_callback=interrupted,
                verbosity=min(options.verbose, MAX_VERBOSITY),
                # Every shard's host at once, through Ansible's own forks (default: ansible.cfg's).
                forks=len(options.shard_hosts) or None,
                ident="run",
            )
            while thread.is_alive():
                thread.join(0.1)
            status, rc = runner.status, runner.rc
            if head_start is not None:
                head_start.join()
        finally:
            scrub_artifacts(private_dir)
            if not options.keep_runner_dir:
                shutil.rmtree(private_dir, ignore_errors=True)

        renderer.close()
        interrupted_code = None
        if interrupted.signum is not None:
            code = interrupted_code = after_interrupt(
                options,
                project=project,
                run_id=run_id,
                run_root=run_root,
                inventory=inventory,
                envvars=envvars,
                interrupted=interrupted,
                out=out,
            )
        elif isinstance(renderer, HostRenderers):
            code = ExitCode.PASSED  # each host has its own (below); the remote hosts tore down in the play
        else:
            code = renderer.exit_code(status, rc)
            if status != "successful" and renderer.failure is None:
                full = disk_full[0] if disk_full else _full_disk(run_root / run_id, remote)
                code = _unexplained(status, rc, full, out) or code
            if not remote and (
                options.teardown == "always" or (options.teardown == "on_failure" and code != ExitCode.PASSED)
            ):
                # Whatever ended the playbook, nothing of the run may stay: sweep from the state file too.
                swept = teardown_run(run_id, 3.0)
                if not swept.ok:
                    out.write("\n".join(swept.lines()) + "\n")
                    code = code if code != ExitCode.PASSED else ExitCode.TEARDOWN

    if isinstance(renderer, HostRenderers):
        codes = renderer.exit_codes(status, rc) if interrupted_code is None else dict.fromkeys(renderer.hosts, code)
        _write_host_reports(
            renderer,
            codes,
            options=options,
            run_id=run_id,
            run_root=run_root,
            started=started,
            out=out,
            redactor=redactor,
        )
        return errors.worst(list(codes.values()))
    return report_run(renderer, run_id, run_root / run_id, code, started, options, out=out, gha=gha, redactor=redactor)


class _Prepared(NamedTuple):
    head_start: threading.Thread | None
    private_dir: Path
    inventory: Path
    envvars: dict[str, str]
    arguments: dict[str, Any]
    extravars: Path


def _prepare(
    options: Options,
    project: Path,
    config: dict[str, Any],
    *,
    run_id: str,
    run_root: Path,
    source: str,
    mask_secrets: Callable[[], None],
) -> _Prepared:
    """What the playbook needs before it starts: the secrets moved into their file, the native servers' head
    start, ansible-runner's private folder and arguments. On a failure here (a full disk, say) nothing the
    wrapper made of the run stays."""
    remote = options.inventory is not None
    head_start: threading.Thread | None = None
    try:
        if source == "env" and not remote:
            resolve_env_secrets(config["secrets"], run_id, os.environ)
            source = "file"
        mask_secrets()  # values the wrapper moved from the environment are masked before anything prints
        head_start = _head_start(options, project, run_id, run_root) if source != "ssm" and not remote else None
        private_dir = runner_private_dir(run_id, options.keep_runner_dir)
        inventory = options.inventory.resolve() if options.inventory else project / "inventory" / "hosts.yml"
        envvars = runner_envvars(project, options.verbose, remote)
        arguments = runner_arguments(private_dir, project, options.playbook, inventory, envvars)
        # As data: a YAML file whose strings are !unsafe, never templated (a path with {{ }} in it).
        variables = extravars_of(options, run_id, run_root, source, remote)
        extravars = ansible_extravars.write(private_dir / "extravars.yml", variables)
    except (TestbedError, OSError):
        if head_start is not None:
            head_start.join()
        if options.teardown != "never" and not remote:
            teardown_run(run_id, 3.0)
        shutil.rmtree(runtime_root() / f"runner-{run_id}", ignore_errors=True)
        raise
    return _Prepared(head_start, private_dir, inventory, envvars, arguments, extravars)


def masker(run_id: str, remote: bool, gha: bool, redactor: redact.Redactor, out: IO[str]) -> Callable[[], None]:
    """What teaches the run's redactor (and GitHub's log) the run's secret values, as they resolve."""

    def mask_secrets() -> None:
        values = secrets.read_secrets(run_id).values() if not remote else []
        redactor.add(values)
        if gha:
            try:
                github.mask(values, sys.__stdout__)
            except ValueError:
                out.write("ℹ️  stdout is a file: secret values are not masked there (and never printed)\n")

    return mask_secrets


@contextlib.contextmanager
def _disk_full_in_threads() -> Iterator[list[DiskFull]]:
    """ansible-runner's thread writes the playbook's status into the private folder: on a full disk it dies
    there with a traceback. That error is kept (as a DiskFull, said in one line) instead of printed."""
    seen: list[DiskFull] = []
    original = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        full = disk_full_of(args.exc_value) if isinstance(args.exc_value, OSError) else None
        if full is None:
            original(args)
        else:
            seen.append(full)

    threading.excepthook = hook
    try:
        yield seen
    finally:
        threading.excepthook = original


def _unexplained(status: str, rc: int, full: DiskFull | None, out: IO[str]) -> ExitCode | None:
    """The playbook failed and no phase said why: a full disk under the runtime folder (`full`) ends Ansible's
    events (and Ansible) without a phase line; its code, or None."""
    if full is None:
        out.write(f"❌ Ansible: playbook ended {status} (rc {rc}); rerun with -v\n")
        return None
    out.write(f"❌ Ansible: {full}\n")
    return full.exit_code


def _full_disk(run_folder: Path, remote: bool) -> DiskFull | None:
    """The run's runtime folder's or run folder's filesystem, when it is (next to) full."""
    if remote:
        return None
    return full_filesystem(runtime_root()) or full_filesystem(run_folder)


def _write_host_reports(
    renderer: HostRenderers,
    codes: Mapping[str, ExitCode],
    *,
    options: Options,
    run_id: str,
    run_root: Path,
    started: float,
    out: IO[str],
    redactor: redact.Redactor,
) -> None:
    """Each host's shard is a run of its own, with its own report.json (playbooks/tasks/shard_of_host.yml names
    it <run id>-<K>); the merge of them is the report to publish."""
    for place, (host, host_renderer) in enumerate(renderer.hosts.items(), start=1):
        host_run_id = str(host_renderer.run.get("run_id") or f"{run_id}-{place}")
        report = build_report(host_renderer, host_run_id, run_root / host_run_id, codes[host], started, options)
        write_report(report, out, gha=False, redactor=redactor)


def _head_start(options: Options, project: Path, run_id: str, run_root: Path) -> threading.Thread | None:
    """Start the servers (native processes, or Docker containers whose images are all here) while
    ansible-playbook is still loading: the playbook's own phases then find the run (preflight is re-entrant,
    each start is idempotent and locked) and only wait and migrate. Anything that fails here fails again in
    its own phase, with its message, in the playbook."""
    if options.teardown == "never" or options.pull:
        return None

    try:
        context = preflight.open_run(
            {
                "service_dir": str(options.service),
                "catalogue": load_catalogue(project),
                "backend": options.backend,
                "ports": options.ports,
                "run_id": run_id,
                "run_root": str(run_root),
                "owner_pid": os.getpid(),
                "lease_seconds": options.lease_seconds,
                "images": options.images,
                "pull": options.pull,
            }
        )
    except TestbedError:
        return None
    if context["backend"] == "docker" and not all(spec["present"] for spec in context["containers"]):
        return None  # the servers role pulls first, and says so in one line when it cannot
    begin = servers.start_native if context["backend"] == "native" else servers.start_docker

    def start() -> None:
        with contextlib.suppress(TestbedError, OSError):
            begin(run_id)

    thread = threading.Thread(target=start, daemon=True)
    thread.start()
    return thread
