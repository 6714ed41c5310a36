"""What of a run is still there although its state file does not say so: processes marked with the run, servers
whose command line names the run's runtime folder, each found and stopped, another run's left alone."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from support import alive, execed, unique_run_id
from testbed.core.supervisor import MARKER
from testbed.teardown import reaper


def _marked(run_id: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "60"], env={**os.environ, MARKER: run_id})


def test_processes_marked_with_the_run_are_found_killed_and_named() -> None:
    run_id, other_id = unique_run_id("reap"), unique_run_id("other")
    ours, theirs = _marked(run_id), _marked(other_id)
    try:
        assert reaper.marked(run_id) == [ours.pid] and not reaper.supervising(run_id)
        assert reaper.names([ours.pid]) == [f"sleep (pid {ours.pid})"]
        removed, left = reaper.kill_marked(run_id)
        ours.wait(timeout=30)
        assert removed == [f"process {ours.pid} (started by the tests or the install)"] and left == []
        assert alive(theirs.pid), "another run's process is not ours to kill"
    finally:
        for process in (ours, theirs):
            process.kill()
            process.wait()


def test_a_supervisor_of_the_run_is_recognised() -> None:
    run_id = unique_run_id("sup")
    supervisor = subprocess.Popen([sys.executable, "-m", "testbed.core.supervisor", "0", "--", "sleep", "60"],
                                  env={**os.environ, MARKER: run_id})
    try:
        assert reaper.supervising(run_id)
    finally:
        supervisor.kill()
        supervisor.wait()
        reaper.kill_marked(run_id)  # the `sleep` it started


def test_a_server_naming_the_runtime_folder_is_found_with_the_signal_that_stops_it(tmp_path: Path) -> None:
    runtime_dir = tmp_path / "run-x"
    (runtime_dir / "cache").mkdir(parents=True)
    # A server whose command line names its data folder under the run's runtime folder; one of another run's.
    sleeper = [sys.executable, "-c", "import sys, time; print(flush=True); time.sleep(60)"]
    server = subprocess.Popen([*sleeper, str(runtime_dir / "cache")], stdout=subprocess.PIPE)
    elsewhere = subprocess.Popen([*sleeper, str(tmp_path / "run-y" / "cache")], stdout=subprocess.PIPE)
    for process in (server, elsewhere):
        assert process.stdout is not None and process.stdout.readline() == b"\n"  # started
    try:
        found = reaper.servers_in(runtime_dir)
        assert found == [(server.pid, int(signal.SIGTERM))]
        assert reaper.kill(found, grace=5) == []
        assert server.wait(timeout=30) == -signal.SIGTERM and elsewhere.poll() is None
    finally:
        for process in (server, elsewhere):
            process.kill()
            process.communicate()


def test_a_killed_postmasters_posix_segments_go_once_no_postgres_of_the_account_runs(tmp_path: Path) -> None:
    # An account no other test runs a postgres as (nobody, when root), and `sleep` under the name postgres
    # standing for its running postmaster: another test's "postgres" of the same account would keep the files.
    owner = 65534 if os.geteuid() == 0 else os.getuid()
    segments = tmp_path / "shm"
    segments.mkdir()
    for name in ("PostgreSQL.1672515752", "PostgreSQL.2129666462", "other.file"):
        (segments / name).write_bytes(b"\0" * 64)
        os.chown(segments / name, owner, -1)
    reachable = Path(tempfile.mkdtemp())  # the account must reach the program: not under pytest's 0700 folders
    try:
        reachable.chmod(0o755)
        (reachable / "postgres").symlink_to(shutil.which("sleep") or "/bin/sleep")
        running = subprocess.Popen([str(reachable / "postgres"), "30"],
                                   **({"user": owner, "group": owner} if os.geteuid() == 0 else {}))
        try:
            execed(running.pid, "postgres")
            assert reaper.shared_memory_files(owner, segments) == ([], [])  # they may be the running one's
        finally:
            running.kill()
            running.wait()
    finally:
        shutil.rmtree(reachable)
    removed, left = reaper.shared_memory_files(owner, segments)
    assert sorted(removed) == [f"shared memory {segments}/PostgreSQL.1672515752",
                               f"shared memory {segments}/PostgreSQL.2129666462"]
    assert left == []
    assert sorted(entry.name for entry in segments.iterdir()) == ["other.file"]
    assert reaper.shared_memory_files(None, segments) == ([], [])  # not root: no dedicated account, nothing judged
