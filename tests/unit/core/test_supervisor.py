"""A supervised command ends with its owner: a SIGKILLed `testbed test` (or ansible-playbook, without the
wrapper) leaves neither its tests nor what they started running, reparented to init."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support import alive
from testbed.core import supervisor


def _start_time(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])


def test_the_supervisor_ends_everything_when_its_owner_is_gone() -> None:
    owner = subprocess.Popen(["sleep", "1000"])
    script = "setsid sleep 1000 & echo $!; sleep 1000"
    watched = subprocess.Popen(
        [sys.executable, "-m", "testbed.core.supervisor", "0", "--owner", f"{owner.pid}:{_start_time(owner.pid)}",
         "--", "sh", "-c", script],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert watched.stdout is not None
        escaped = int(watched.stdout.readline())  # in a session of its own: found as a descendant
        assert alive(escaped) and watched.poll() is None
        owner.kill()
        owner.wait()
        assert watched.wait(timeout=60) == 129  # as on SIGHUP: the owner hung up
        assert not alive(escaped)
    finally:
        for process in (owner, watched):
            if process.poll() is None:
                process.kill()
                process.wait()


def test_an_owner_already_gone_or_replaced_ends_it_at_once() -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    done = subprocess.run(
        [sys.executable, "-m", "testbed.core.supervisor", "0", "--owner", f"{gone.pid}:1", "--", "sleep", "1000"],
        timeout=60, check=False,
    )
    assert done.returncode == 129


def test_the_owner_is_the_testbed_command_when_it_says_so(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv(supervisor.OWNER_VARIABLE, "123:456")
    assert supervisor.owner_of_this_process() == "123:456"
    monkeypatch.delenv(supervisor.OWNER_VARIABLE)
    assert supervisor.owner_of_this_process() is None  # not below an ansible-playbook: nobody to watch


def test_the_supervisor_leaves_no_descendant_and_keeps_the_exit_code() -> None:
    """The fast layer: escaping by setsid and by double fork still ends with the supervised command."""
    script = "setsid sleep 1000 & echo $!; (sh -c 'sleep 1000 & echo $!' &); sleep 0; exit 3"
    done = subprocess.run([sys.executable, "-m", "testbed.core.supervisor", "0", "--", "sh", "-c", script],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 3, done.stderr
    pids = [int(pid) for pid in done.stdout.split()]
    assert pids and [pid for pid in pids if alive(pid)] == [], done.stdout


def test_the_supervisor_kills_everything_at_its_deadline() -> None:
    script = "trap '' TERM INT ALRM; setsid sleep 1000 & echo $!; sleep 1000"
    done = subprocess.run([sys.executable, "-m", "testbed.core.supervisor", "1", "--", "sh", "-c", script],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 15, done.stderr  # ExitCode.DEADLINE
    assert [pid for pid in map(int, done.stdout.split()) if alive(pid)] == []
