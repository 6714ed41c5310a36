"""Issue 13, "nothing survives": no trust in folders or state files another user can write, nothing a
run's tests or install start outlives it (interrupts included), an overall tests deadline, teardown
without the state file (SysV shared memory included), servers that die during the tests are named, and
fixed ports that only TIME_WAIT connections hold are free."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from support import (
    FIXTURES,
    PROJECT,
    alive,
    clean_env,
    cli,
    image_args,
    leave_time_wait,
    leftovers,
    run_testbed,
    run_testbed_argv,
    secret_hits,
    unique_run_id,
)
from testbed.core.paths import runtime_root
from testbed.core.ports import free_port
from testbed.run.store import RunState

SURVIVORS = FIXTURES / "services" / "survivors"
NOBODY = 65534
MARKER = "TESTBED_SUPERVISED_RUN"  # testbed.core.supervisor.MARKER: what the tests' processes carry


@pytest.fixture
def survivors(tmp_path: Path) -> Path:
    target = tmp_path / "survivors"
    shutil.copytree(SURVIVORS, target)
    return target


def _survivors_run(service: Path, runs: Path, run_id: str, *extra: str,
                   ports: str = "auto") -> subprocess.CompletedProcess[str]:
    """The survivors service finds its runs folder through the environment."""
    return run_testbed(service, runs, *extra, ports=ports, run_id=run_id, env=clean_env(SURVIVORS_RUN_ROOT=str(runs)),
                       timeout=300)


def _noted_pids(service: Path) -> list[int]:
    return [int(pid) for pid in (service / "out" / "pids").read_text().split()]


def _processes_of(run_id: str) -> list[str]:
    """Every process that belongs to the run: named in its command line (ansible-playbook's extravars,
    servers' data folders) or marked in its environment (what the tests and the install started)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if run_id.encode() in cmdline or f"{MARKER}={run_id}".encode() in environ:
            shown = cmdline.replace(b"\0", b" ")[:150].decode(errors="replace")
            found.append(f"{proc.name}: {shown}")
    return found


def _failures(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("❌")]


# --- item 2: trust boundaries ---------------------------------------------------------------------

@pytest.mark.parametrize("plant", ["world-writable", "foreign-owned"])
def test_an_untrusted_runtime_root_is_refused_before_anything(
    survivors: Path, runs: Path, tmp_path: Path, plant: str
) -> None:
    root = tmp_path / "planted-root"
    root.mkdir()
    if plant == "world-writable":
        root.chmod(0o777)
    else:
        os.chown(root, NOBODY, NOBODY)
    result = cli("run", "--service", str(survivors), "--backend", "native", "--ports", "auto",
                 "--run-folder", str(runs), env=clean_env(TESTBED_RUNTIME_DIR=str(root)))
    assert result.returncode == 10, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(root) in lines[0], result.stderr
    assert ("writable by group or others" if plant == "world-writable" else f"belongs to uid {NOBODY}") in lines[0]
    assert "Backend" not in result.stdout and not runs.exists()  # nothing started, no run folder
    assert list(root.iterdir()) == []


def test_gc_ignores_a_state_file_another_user_owns(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir(mode=0o755)
    victim = tmp_path / "victim"
    victim.mkdir()
    target = subprocess.Popen(["sleep", "1000"])
    try:
        planted = root / "planted-run"
        planted.mkdir()
        identity = {"pid": target.pid, "start_time": int(Path(f"/proc/{target.pid}/stat").read_text()
                                                          .rsplit(")", 1)[1].split()[19]),
                    "boot_id": Path("/proc/sys/kernel/random/boot_id").read_text().strip()}
        (planted / "state.json").write_text(
            '{"run_id": "planted-run", "owner": null, "lease_until": null, "created": 0, '
            f'"run_folder": "{tmp_path}", "runtime_dir": "{planted}", "servers": {{}}, "resources": ['
            f'{{"kind": "directory", "service": "x", "path": "{victim}"}}, '
            f'{{"kind": "process", "service": "x", "stop_signal": 9, "pid": {identity["pid"]}, '
            f'"start_time": {identity["start_time"]}, "boot_id": "{identity["boot_id"]}"}}]}}'
        )
        for path in (planted, planted / "state.json"):
            os.chown(path, NOBODY, NOBODY)
        result = cli("gc", env=clean_env(TESTBED_RUNTIME_DIR=str(root)))
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"ignoring {planted / 'state.json'}: not owned by you" in result.stderr
        assert victim.is_dir() and alive(target.pid)
        assert (planted / "state.json").is_file()
    finally:
        target.kill()
        target.wait()




# --- items 5 and 6: nothing survives, the deadline --------------------------------------------------





@pytest.mark.slow
def test_what_the_tests_start_does_not_outlive_a_run(survivors: Path, runs: Path) -> None:
    run_id = unique_run_id("surv-children")
    result = _survivors_run(survivors, runs, run_id, "--", "-k", "leaves_children")
    assert result.returncode == 0, result.stdout + result.stderr
    pids = _noted_pids(survivors)
    assert len(pids) == 3  # plain child, own session, nohup'd grandchild
    assert [pid for pid in pids if alive(pid)] == []
    assert _processes_of(run_id) == [] and leftovers(run_id) == []


@pytest.mark.slow
def test_a_test_that_ignores_alarm_is_killed_at_the_deadline(survivors: Path, runs: Path) -> None:
    config = survivors / "testbed.yml"
    config.write_text(config.read_text().replace("  paths: [tests]\n", "  paths: [tests]\n  deadline: 5\n"
                                                                        "  timeout: 600\n"))
    run_id = unique_run_id("surv-deadline")
    result = _survivors_run(survivors, runs, run_id, "--", "-k", "ignores_alarm")
    assert result.returncode == 15, result.stdout + result.stderr
    assert _failures(result.stdout) == [
        "❌ Tests: outlived tests.deadline (5 s): pytest and everything it started were killed; "
        f"see {runs / run_id / 'pytest.log'}"
    ]
    assert [pid for pid in _noted_pids(survivors) if alive(pid)] == []
    assert _processes_of(run_id) == [] and leftovers(run_id) == []


def _interrupt(service: Path, runs: Path, run_id: str, started: Path, signum: int,
               *extra: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Start `testbed run`, wait until `started` exists (the tests or the install are running), signal it."""
    wrapper = subprocess.Popen(run_testbed_argv(service, runs, *extra, run_id=run_id), cwd=PROJECT,
                               env=clean_env(SURVIVORS_RUN_ROOT=str(runs), **env), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        while not started.exists() and wrapper.poll() is None:
            time.sleep(0.05)
        assert wrapper.poll() is None, wrapper.communicate()
        wrapper.send_signal(signum)
        out, err = wrapper.communicate(timeout=120)
    finally:
        if wrapper.poll() is None:
            wrapper.kill()
    return subprocess.CompletedProcess(wrapper.args, wrapper.returncode, out, err)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupt_during_the_tests_leaves_nothing(survivors: Path, runs: Path, signum: int) -> None:
    run_id = unique_run_id("surv-int-tests")
    result = _interrupt(survivors, runs, run_id, survivors / "out" / "pids", signum, "--", "-k", "waits_for_a_signal")
    assert result.returncode == 128 + signum, result.stdout + result.stderr
    assert f"❌ Interrupted by {signal.Signals(signum).name}: tearing down" in result.stdout
    assert "✅ Teardown: nothing left behind" in result.stdout
    assert [pid for pid in _noted_pids(survivors) if alive(pid)] == []  # pytest and its own-session child
    assert _processes_of(run_id) == [] and leftovers(run_id) == []  # no ansible-playbook, worker, server


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupt_during_the_install_leaves_nothing(
    survivors: Path, runs: Path, tmp_path: Path, signum: int
) -> None:
    config = survivors / "testbed.yml"
    config.write_text(config.read_text().replace(
        "install: none", "install: \"touch install-started && nohup sleep 1000 >/dev/null 2>&1 & sleep 1000\""))
    run_id = unique_run_id("surv-int-install")
    result = _interrupt(survivors, runs, run_id, survivors / "install-started", signum,
                        TESTBED_CACHE_DIR=str(tmp_path / "cache"))  # a fresh virtualenv: the command runs
    assert result.returncode == 128 + signum, result.stdout + result.stderr
    assert "✅ Teardown: nothing left behind" in result.stdout
    assert _processes_of(run_id) == [] and leftovers(run_id) == []


def _until(done: Callable[[], bool], timeout: float = 120) -> bool:
    """Whether `done()` came true within `timeout` seconds (a bound for a loaded machine, not a measure)."""
    give_up = time.monotonic() + timeout
    while not done() and time.monotonic() < give_up:
        time.sleep(0.1)
    return done()


@pytest.mark.usefixtures("machine_wide")  # a run left ownerless on purpose: another run would collect it
@pytest.mark.slow
def test_a_sigkilled_wrapper_s_tests_end_and_gc_removes_the_rest(survivors: Path, runs: Path) -> None:
    """The wrapper and its playbook are SIGKILLed (nothing of the run can tear down): the tests' supervisor
    sees its owner gone and ends the tests by itself; gc removes the servers."""
    from testbed.teardown import reaper  # noqa: PLC0415

    run_id = unique_run_id("surv-sigkill")
    wrapper = subprocess.Popen(run_testbed_argv(survivors, runs, "--", "-k", "waits_for_a_signal", run_id=run_id),
                               cwd=PROJECT, env=clean_env(SURVIVORS_RUN_ROOT=str(runs)),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert _until(lambda: (survivors / "out" / "pids").exists() or wrapper.poll() is not None)
        assert wrapper.poll() is None
        for pid, _ in reaper.playbooks_of(run_id):  # first, so the playbook cannot start its teardown
            os.kill(pid, signal.SIGKILL)
    finally:
        wrapper.kill()
        wrapper.wait()
    assert _until(lambda: not any(alive(pid) for pid in _noted_pids(survivors)))  # pytest and its child
    assert leftovers(run_id), "the servers stay until gc"
    gc = cli("gc", "--run-id-prefix", run_id)
    assert gc.returncode == 0, gc.stdout + gc.stderr
    assert _processes_of(run_id) == [] and leftovers(run_id) == []


@pytest.mark.slow
def test_a_sigkilled_testbed_test_leaves_nothing_of_its_tests_running(survivors: Path, runs: Path) -> None:
    """`testbed test` SIGKILLed while its reset runs: the playbook, the supervisor and pytest (which would wait
    for a signal forever) all end, and the environment stays up."""
    import psycopg  # noqa: PLC0415

    from testbed.teardown import reaper  # noqa: PLC0415

    run_id = unique_run_id("surv-kill-test")
    env = clean_env(SURVIVORS_RUN_ROOT=str(runs))
    common = ["--service", str(survivors)]
    up = cli("up", *common, "--backend", "native", "--ports", "auto", "--run-folder", str(runs), "--run-id", run_id,
             env=env)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        pg = RunState.find(run_id).load().facts["postgres"]
        # A lock on the template database holds the reset's clone (CREATE DATABASE … TEMPLATE waits for it)
        # for as long as this transaction stays open: the kill lands inside the reset, on purpose.
        with psycopg.connect(host=pg["host"], port=pg["port"], user=pg["user"], password=pg["password"],
                             dbname="postgres") as holder:
            holder.execute(f'COMMENT ON DATABASE "{pg["database"]}_testbed_fresh" IS \'held by the test\'')
            tests = subprocess.Popen(
                [sys.executable, "-m", "testbed", "test", *common, "--", "-k", "waits_for_a_signal"],
                cwd=PROJECT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            watcher = psycopg.connect(host=pg["host"], port=pg["port"], user=pg["user"], password=pg["password"],
                                      dbname="postgres", autocommit=True)
            with watcher:
                cloning = ("SELECT count(*) FROM pg_stat_activity "
                           "WHERE query LIKE 'CREATE DATABASE%' AND wait_event_type = 'Lock'")
                assert _until(lambda: watcher.execute(cloning).fetchone()[0] > 0 or tests.poll() is not None)
            assert tests.poll() is None
            tests.kill()
            tests.wait()
            holder.rollback()  # the reset goes on: with nobody left to report to, the tests would start
        assert _until(lambda: not reaper.marked(run_id) and not reaper.playbooks_of(run_id))
        assert not (survivors / "out" / "pids").exists() or not any(alive(p) for p in _noted_pids(survivors))
        assert "✅ PostgreSQL" in cli("status", env=env).stdout  # the environment is still up
    finally:
        down = cli("down", *common, "--run-id", run_id, env=env)
    assert down.returncode == 0, down.stdout + down.stderr
    assert cli("gc", "--run-id-prefix", run_id).returncode == 0  # the killed command's private folder
    assert leftovers(run_id) == []


# --- items 7 and 8: teardown without state, servers that die during the tests -----------------------

@pytest.mark.slow
def test_teardown_finds_the_servers_when_the_state_files_are_gone(survivors: Path, runs: Path) -> None:
    run_id = unique_run_id("surv-stateless")
    result = _survivors_run(survivors, runs, run_id, "--", "-k", "deletes_its_state")
    deleted = (survivors / "out" / "deleted").read_text().split()
    assert len(deleted) == 2, deleted  # the runtime copy and the run folder's
    assert _processes_of(run_id) == [] and leftovers(run_id) == [], result.stdout + result.stderr
    assert not (runtime_root() / run_id).exists()
    assert result.returncode == 0, result.stdout + result.stderr


def _up_without_state(survivors: Path, runs: Path, run_id: str, env: dict[str, str]) -> None:
    """`testbed up`, then a `testbed test` whose test deletes the run's state file (both copies)."""
    up = cli("up", "--service", str(survivors), "--backend", "native", "--ports", "auto", "--run-folder", str(runs),
             "--run-id", run_id, env=env)
    assert up.returncode == 0, up.stdout + up.stderr
    deleted = cli("test", "--service", str(survivors), "--", "-k", "deletes_its_state", env=env)
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    assert len((survivors / "out" / "deleted").read_text().split()) == 2
    assert not (runtime_root() / run_id / "state.json").exists() and leftovers(run_id), "the servers still run"


@pytest.mark.slow
def test_down_finds_an_environment_whose_state_file_is_gone(survivors: Path, runs: Path) -> None:
    """`down` names the run with the command that stops it (not "no environment is up"), `status` lists it,
    and `down --run-id` stops its servers from what remains (not "no run")."""
    run_id = unique_run_id("surv-lost-state")
    env = clean_env(SURVIVORS_RUN_ROOT=str(runs))
    try:
        _up_without_state(survivors, runs, run_id, env)
        down = cli("down", "--service", str(survivors), env=env)
        assert down.returncode == 12, down.stdout + down.stderr
        lines = down.stderr.strip().splitlines()
        assert len(lines) == 1 and f"run {run_id} lost its state file but still runs " in lines[0], lines
        assert "postgres (pid " in lines[0] and "nats-server (pid " in lines[0]
        assert lines[0].endswith(f"`testbed down --run-id {run_id}` stops it"), lines
        status = cli("status", env=env)
        assert f"{run_id}  state file gone  still running: " in status.stdout, status.stdout
    finally:
        down = cli("down", "--run-id", run_id, env=env)
    assert down.returncode == 0 and "✅ Teardown: nothing left behind" in down.stdout, down.stdout + down.stderr
    assert _processes_of(run_id) == [] and leftovers(run_id) == []


@pytest.mark.usefixtures("machine_wide")  # a stale run without its state file: another run's start would collect it
@pytest.mark.slow
def test_gc_stops_the_servers_of_a_run_whose_state_file_is_gone(survivors: Path, runs: Path) -> None:
    """gc removes such a run's runtime folder once it is stale, and stops its servers first (it used to
    remove the folder under a running PostgreSQL, which then held its fixed port)."""
    run_id = unique_run_id("surv-lost-gc")
    env = clean_env(SURVIVORS_RUN_ROOT=str(runs))
    try:
        _up_without_state(survivors, runs, run_id, env)
        an_hour_ago = time.time() - 3600
        os.utime(runtime_root() / run_id, (an_hour_ago, an_hour_ago))
        gc = cli("gc", "--run-id-prefix", run_id, env=env)
        assert gc.returncode == 0, gc.stdout + gc.stderr
        assert _processes_of(run_id) == [] and leftovers(run_id) == []
    finally:
        cli("down", "--run-id", run_id, env=env)


def _segments_created_by(pid: int) -> list[str]:
    lines = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    return [line for line in lines if int(line.split()[4]) == pid]


@pytest.mark.slow
def test_postgres_killed_during_the_tests_is_named_and_its_memory_removed(survivors: Path, runs: Path) -> None:
    run_id = unique_run_id("surv-pg-killed")
    result = _survivors_run(survivors, runs, run_id, "--", "-k", "kills_postgres")
    assert result.returncode == 1, result.stdout + result.stderr
    failures = _failures(result.stdout)
    assert len(failures) == 1 and "PostgreSQL exited" in failures[0], result.stdout
    [postmaster] = _noted_pids(survivors)
    assert _segments_created_by(postmaster) == []  # SIGKILL left it; teardown removed it
    assert "✅ Teardown: nothing left behind" in result.stdout
    assert _processes_of(run_id) == [] and leftovers(run_id) == []


@pytest.mark.slow
def test_nats_killed_during_passing_tests_exits_12_naming_it(survivors: Path, runs: Path) -> None:
    run_id = unique_run_id("surv-nats-killed")
    result = _survivors_run(survivors, runs, run_id, "--", "-k", "kills_nats")
    assert result.returncode == 12, result.stdout + result.stderr
    failures = _failures(result.stdout)
    assert len(failures) == 1 and failures[0].startswith("❌ Tests: 1 passed in "), result.stdout
    assert failures[0].endswith(", but NATS exited during the tests"), failures
    report = (runs / run_id / "report.json").read_text()
    assert "NATS exited" in report
    assert _processes_of(run_id) == [] and leftovers(run_id) == []


# --- item 9: ports -------------------------------------------------------------------------------

def _fixed_ports(service: Path) -> list[int]:
    """Random high ports nobody else's tests use, set as the service's fixed ports."""
    ports = [free_port() for _ in range(3)]
    config = service / "testbed.yml"
    config.write_text(config.read_text() + (
        f"settings:\n  postgres:\n    port: {ports[0]}\n  nats:\n    port: {ports[1]}\n    monitor_port: {ports[2]}\n"))
    return ports


@pytest.mark.slow
def test_back_to_back_runs_on_fixed_ports_pass_native(survivors: Path, runs: Path) -> None:
    ports = _fixed_ports(survivors)
    for attempt in range(2):
        run_id = unique_run_id(f"surv-fixed{attempt}")
        result = _survivors_run(survivors, runs, run_id, "--", "-k", "passes", ports="fixed")
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"✅ PostgreSQL: Running on port {ports[0]}" in result.stdout
        for port in ports:
            leave_time_wait(port)


@pytest.mark.slow
def test_back_to_back_runs_on_fixed_ports_pass_docker(
    survivors: Path, runs: Path, local_images: dict[str, str]
) -> None:
    ports = _fixed_ports(survivors)
    images = image_args({server: tag for server, tag in local_images.items() if server in ("postgres", "nats")})
    for attempt in range(2):
        run_id = unique_run_id(f"surv-dfixed{attempt}")
        result = cli("run", "--service", str(survivors), "--backend", "docker", "--ports", "fixed",
                     "--run-folder", str(runs), "--run-id", run_id, *images, "--", "-k", "passes", timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"✅ NATS: Running on port {ports[1]}" in result.stdout
        assert leftovers(run_id) == []
        for port in ports:
            leave_time_wait(port)
    assert secret_hits(runs) == []


def test_the_run_s_playbook_processes_are_found_by_the_wrapper_s_extravars_file(tmp_path: Path):
    """After a cancel the wrapper stops the run's ansible-playbook controller and workers (they setsid()
    away from the cancelled group); the wrapper passes its extravars as a file, and that is how they are found."""
    from testbed.teardown import reaper  # noqa: PLC0415

    run_id = unique_run_id("surv-playbooks")
    private = tmp_path / f"runner-{run_id}"
    private.mkdir()
    (private / "extravars.yml").write_text("testbed_seconds: 60\n", encoding="utf-8")
    play = tmp_path / "wait.yml"
    play.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.command: sleep {{ testbed_seconds }}\n      changed_when: false\n",
        encoding="utf-8",
    )
    controller = subprocess.Popen(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-e", f"@{private / 'extravars.yml'}", str(play)],
        cwd=tmp_path, env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        found: list[tuple[int, int]] = []
        while time.monotonic() < deadline:  # the worker exists once the task starts
            found = reaper.playbooks_of(run_id)
            if len(found) >= 2:
                break
            time.sleep(0.1)
        pids = {pid for pid, _ in found}
        assert controller.pid in pids and len(pids) >= 2, found  # the controller and its worker
        assert reaper.playbooks_of(unique_run_id("surv-other")) == []  # another run's id finds nothing
        assert reaper.kill(found, grace=5.0) == []
        controller.wait(timeout=10)
    finally:
        if controller.poll() is None:
            controller.kill()
            controller.wait()


@pytest.mark.slow
def test_an_interrupt_of_testbed_test_stops_the_tests_and_keeps_the_environment(survivors: Path, runs: Path) -> None:
    """`testbed test` interrupted: pytest, what the tests started and the playbook stop; the servers stay up
    for the next `testbed test`, and `testbed down` is not refused by a test run that is gone."""
    from testbed.teardown import reaper  # noqa: PLC0415

    run_id = unique_run_id("surv-int-test")
    env = clean_env(SURVIVORS_RUN_ROOT=str(runs))
    common = ["--service", str(survivors)]
    up = cli("up", *common, "--backend", "native", "--ports", "auto", "--run-folder", str(runs), "--run-id", run_id,
             env=env)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        started = survivors / "out" / "pids"
        tests = subprocess.Popen([sys.executable, "-m", "testbed", "test", *common, "--", "-k", "waits_for_a_signal"],
                                 cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            while not started.exists() and tests.poll() is None:
                time.sleep(0.05)
            assert tests.poll() is None, tests.communicate()
            tests.send_signal(signal.SIGINT)
            out, err = tests.communicate(timeout=120)
        finally:
            if tests.poll() is None:
                tests.kill()
        assert tests.returncode == 130, out + err
        assert "❌ Interrupted by SIGINT: stopping the tests" in out
        assert [pid for pid in _noted_pids(survivors) if alive(pid)] == []  # pytest and its own-session child
        assert reaper.marked(run_id) == [] and reaper.playbooks_of(run_id) == []
        assert cli("status", env=env).returncode == 0
    finally:
        down = cli("down", *common, "--run-id", run_id, env=env)
    assert down.returncode == 0, down.stdout + down.stderr
    assert leftovers(run_id) == []
