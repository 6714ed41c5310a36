"""The wrapper's teardowns: orphans of earlier runs swept before a run, this run's leftovers swept from its
state file after the playbook, and a remote host's run torn down through playbooks/down.yml after a cancel."""

from __future__ import annotations

import shutil
import signal
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING

from testbed.ansible import extravars
from testbed.ansible.settings import runner_arguments, runner_private_dir
from testbed.core.errors import ExitCode, TestbedError
from testbed.core.processes import stop_processes
from testbed.parallel import handover
from testbed.run.outcome import TeardownResult
from testbed.run.store import RunState
from testbed.teardown import reaper
from testbed.teardown.gc import gc
from testbed.teardown.teardown import teardown_run_id

if TYPE_CHECKING:
    from testbed.ansible.options import Options
    from testbed.core.interrupts import Interrupted


def sweep_orphans(out: IO[str]) -> None:
    """Every run starts by removing what runs whose owner is gone (or that expired) left behind."""
    try:
        collected = [r for r in gc() if r.removed or r.left]
    except OSError:
        return
    if collected:
        removed = sum(len(r.removed) for r in collected)
        out.write(f"ℹ️  gc: removed {removed} leftover(s) of {len(collected)} earlier run(s) whose owner is gone\n")


def remote_teardown(
    options: Options, project: Path, run_id: str, run_root: Path, inventory: Path, envvars: dict[str, str]
) -> TeardownResult:
    """After a cancel, a remote host's `always` never ran: tear down there with playbooks/down.yml, which also
    brings the run folder back and removes the host's workspace."""
    import ansible_runner  # noqa: PLC0415

    private_dir = runner_private_dir(run_id, suffix="-down")
    try:
        result = ansible_runner.run(
            **runner_arguments(private_dir, project, "playbooks/down.yml", inventory, envvars),
            limit=options.limit or None,
            cmdline=extravars.cmdline(
                extravars.write(
                    private_dir / "extravars.yml",
                    {
                        "testbed_run_id": run_id,
                        "testbed_run_root": str(run_root),
                        **({"testbed_hosts": options.limit} if options.limit else {}),
                        # Shards on several hosts: each host's run id is its shard's (tasks/shard_of_host.yml).
                        **{k: v for k, v in options.extravars.items() if k == "testbed_shards"},
                    },
                )
            ),
            ident="down",
        )
    finally:
        shutil.rmtree(private_dir, ignore_errors=True)
    if result.rc == 0:
        return TeardownResult(run_id)
    if options.shard_hosts:
        shards = options.extravars["testbed_shards"]
        return TeardownResult(
            run_id,
            left=[f"the runs on {options.limit}"],
            retry=f"`ansible-playbook playbooks/down.yml -i {options.inventory} -e testbed_hosts={options.limit} "
            f"-e testbed_run_id={run_id} -e testbed_shards={shards}` retries",
        )
    return TeardownResult(
        run_id,
        left=[f"the run on {options.limit or 'the inventory'}"],
        retry=f"`testbed down --inventory {options.inventory} --limit {options.limit} --run-id {run_id}` retries",
    )


def teardown_run(run_id: str, grace: float, hurry: Callable[[], bool] | None = None) -> TeardownResult:
    """Tear down whatever the state file still records, the playbook's controller included (it was
    cancelled, or has ended)."""
    return teardown_run_id(run_id, grace=grace, include_controller=True, hurry=hurry)


def after_interrupt(
    options: Options,
    *,
    project: Path,
    run_id: str,
    run_root: Path,
    inventory: Path,
    envvars: dict[str, str],
    interrupted: Interrupted,
    out: IO[str],
) -> ExitCode:
    """The playbook was cancelled, so its `always` did not run: stop what it left running, and tear down
    unless the environment is meant to stay up (`testbed test`)."""
    remote = options.inventory is not None
    name = interrupted.name
    if options.teardown == "never":
        return interrupted_tests(run_id, interrupted, out, remote=remote)
    out.write(f"❌ Interrupted by {name}: tearing down\n")
    out.flush()
    if not remote:  # the cancel killed the controller's group; its workers setsid() away from it
        reaper.kill(reaper.playbooks_of(run_id), grace=2.0)
    torn_down = (
        remote_teardown(options, project, run_id, run_root, inventory, envvars)
        if remote
        else teardown_run(run_id, 3.0, hurry=lambda: interrupted.count > 1)
    )
    out.write("\n".join(torn_down.lines()) + "\n")
    return interrupted.exit_code


def interrupted_tests(run_id: str, interrupted: Interrupted, out: IO[str], *, remote: bool = False) -> ExitCode:
    """`testbed test` interrupted: the environment stays up, but nothing of this test run may go on without it."""
    out.write(f"❌ Interrupted by {interrupted.name}: stopping the tests\n")
    if not remote:
        stop_tests(run_id)
    return interrupted.exit_code


def stop_tests(run_id: str, grace: float = 5.0) -> None:
    """Stop a run's playbook processes (its workers setsid() away from the cancelled controller) and the
    tests' supervisor, which ends whatever the tests started; the servers stay up."""
    reaper.kill(reaper.playbooks_of(run_id), grace=2.0)
    try:
        record = RunState.find(run_id).load()
    except (TestbedError, OSError, ValueError):
        return
    supervisors = [r.identity() for r in record.of_kind("supervisor")]
    stop_processes([(identity, int(signal.SIGTERM)) for identity in supervisors], grace)
    handover.give_back(record)  # the per-test reset's pool, which its killed process could not give back
