"""Stopping processes: each is reported as it exits, and one that ignores its signal is killed after the grace;
which ansible-playbook a process belongs to."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path


def test_stopping_reports_each_server_as_it_exits_and_kills_one_that_ignores_its_signal() -> None:
    from testbed.core.processes import ProcessIdentity, stop_processes  # noqa: PLC0415

    quick = subprocess.Popen(["sleep", "60"], start_new_session=True)
    # Ignores SIGTERM: only the SIGKILL after the grace period ends it.
    stubborn = subprocess.Popen(["sh", "-c", "trap '' TERM; echo trapped; while :; do sleep 0.05; done"],
                                start_new_session=True, stdout=subprocess.PIPE, text=True)
    assert stubborn.stdout is not None and stubborn.stdout.readline() == "trapped\n"
    identities = [ProcessIdentity.of(p.pid) for p in (quick, stubborn)]
    assert all(identities)
    seen: list[tuple[int, bool]] = []

    def stopped(identity: ProcessIdentity) -> None:
        seen.append((identity.pid, stubborn.poll() is None and stubborn.pid != identity.pid))

    try:
        left = stop_processes([(i, signal.SIGTERM) for i in identities if i], grace=1.0, stopped=stopped)
    finally:
        for process in (quick, stubborn):
            if process.poll() is None:
                process.kill()
            process.wait()
        stubborn.stdout.close()
    assert left == []
    # The quick one is reported while the stubborn one still runs; each is reported once.
    assert [pid for pid, _ in seen] == [quick.pid, stubborn.pid]
    assert seen[0][1] is True
    assert quick.returncode == -signal.SIGTERM
    assert stubborn.returncode == -signal.SIGKILL, "ignored SIGTERM, so the grace period ended in SIGKILL"


def test_the_playbook_above_a_module_is_its_run_s_controller_not_a_worker_nor_an_outer_playbook(
    tmp_path: Path,
) -> None:
    """outer ansible-playbook -> sh -> ansible-playbook (the run's controller) -> its forked worker -> a module:
    the module's run belongs to the controller (the worker ends with its task; gc would collect the run)."""
    playbook = tmp_path / "ansible-playbook"
    playbook.write_text(textwrap.dedent("""\
        import os, sys, subprocess
        if sys.argv[1:] == ["outer"]:
            sys.exit(subprocess.run(["sh", "-c", f"{sys.executable} {sys.argv[0]} inner; true"]).returncode)
        if os.fork() == 0:  # the worker: a fork, with the controller's command line
            code = "import os; from testbed.core.processes import playbook_above; print(playbook_above(os.getpid()))"
            found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip()
            print(os.getppid(), found, flush=True)
            os._exit(0)
        os.wait()
    """))
    done = subprocess.run([sys.executable, str(playbook), "outer"], capture_output=True, text=True, timeout=60,
                          check=False, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    controller, found = done.stdout.split()
    assert found == controller, done.stderr
