"""Signals, crashes and parallel runs: whatever happens, nothing is left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from support import PROJECT, clean_env, cli, leftovers, only_run_in, run_folder_of

pytestmark = pytest.mark.slow

SLOW_TEST = "import time\n\ndef test_takes_a_while():\n    time.sleep(120)\n"


def _start(service: Path, runs: Path, *extra: str) -> subprocess.Popen[str]:
    (service / "tests" / "test_slow.py").write_text(SLOW_TEST)
    return subprocess.Popen(
        [sys.executable, "-m", "testbed", "run", "--service", str(service), "--backend", "native",
         "--ports", "auto", "--run-folder", str(runs), *extra],
        cwd=PROJECT, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for(process: subprocess.Popen[str], needle: str, timeout: float = 120) -> list[str]:
    """Read output lines until one contains `needle` (pytest is running once Dependencies is reported)."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if needle in line:
            return lines
    raise AssertionError(f"never saw {needle!r}:\n" + "\n".join(lines))


@pytest.mark.usefixtures("machine_wide")  # a signal on a schedule, and a timed teardown
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_mid_tests_tears_down_within_7_seconds(service: Path, runs: Path, signum: int, code: int) -> None:
    process = _start(service, runs)
    _wait_for(process, "✅ Dependencies")
    time.sleep(1.0)  # pytest is inside the slow test now
    run_id = only_run_in(runs)
    assert leftovers(run_id), "servers should be running mid-tests"
    sent = time.monotonic()
    process.send_signal(signum)
    out, _ = process.communicate(timeout=30)
    elapsed = time.monotonic() - sent
    assert process.returncode == code, out
    assert elapsed < 7.0, f"teardown took {elapsed:.1f}s"
    assert f"Interrupted by {signal.Signals(signum).name}" in out
    assert "✅ Teardown: nothing left behind" in out
    assert leftovers(run_id) == []


@pytest.mark.usefixtures("machine_wide")  # two signals on a schedule
def test_second_sigint_hurries_the_teardown_but_never_skips_it(service: Path, runs: Path) -> None:
    process = _start(service, runs)
    _wait_for(process, "✅ Dependencies")
    time.sleep(1.0)
    run_id = only_run_in(runs)
    process.send_signal(signal.SIGINT)
    time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=30)
    assert process.returncode == 130, out
    assert leftovers(run_id) == []


@pytest.mark.usefixtures("machine_wide")  # a gc of every run, of a run left without its owner on purpose
def test_sigkill_then_gc_sweeps_the_orphaned_run(service: Path, runs: Path) -> None:
    from testbed.teardown import reaper  # noqa: PLC0415

    process = _start(service, runs)
    _wait_for(process, "✅ Dependencies")
    run_id = only_run_in(runs)
    # The wrapper and its playbook (which would otherwise go on to tear the run down once the tests, whose
    # owner is gone, end): a crashed host's run, as gc finds it.
    for pid, _ in reaper.playbooks_of(run_id):
        os.kill(pid, signal.SIGKILL)
    process.kill()
    process.wait(timeout=10)
    assert leftovers(run_id), "a killed wrapper leaves its servers running"
    # Another owner's fresh run is not touched by gc.
    gc = cli("gc")
    assert gc.returncode == 0, gc.stdout + gc.stderr
    assert "removed" in gc.stdout
    deadline = time.monotonic() + 10
    while leftovers(run_id) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert leftovers(run_id) == []


def test_gc_leaves_a_live_run_alone(service: Path, runs: Path) -> None:
    process = _start(service, runs)
    _wait_for(process, "✅ Dependencies")
    run_id = only_run_in(runs)
    try:
        gc = cli("gc", "--run-id-prefix", run_id)
        assert gc.returncode == 0
        assert "0 run(s) collected" in gc.stdout
        assert leftovers(run_id)
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
    assert leftovers(run_id) == []


def test_two_concurrent_runs_with_auto_ports_both_pass(service: Path, tmp_path: Path) -> None:
    results: dict[str, subprocess.CompletedProcess[str]] = {}

    def run(name: str) -> None:
        results[name] = cli("run", "--service", str(service), "--backend", "native", "--ports", "auto",
                            "--run-folder", str(tmp_path / name))

    threads = [threading.Thread(target=run, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ports = []
    for result in results.values():
        assert result.returncode == 0, result.stdout + result.stderr
        ports.append([line for line in result.stdout.splitlines() if "PostgreSQL: Running on port" in line])
        assert leftovers(run_folder_of(result.stdout).name) == []
    assert ports[0] != ports[1]


@pytest.mark.usefixtures("fixed_ports")
def test_fixed_ports_of_a_running_environment_are_reported_taken(service: Path, runs: Path) -> None:
    # Two runs with fixed ports cannot share a host: the second fails in preflight, naming the holder.
    first = _start(service, runs, "--ports", "fixed")
    try:
        _wait_for(first, "✅ Dependencies")
        second = cli("run", "--service", str(service), "--backend", "native", "--run-folder", str(runs / "x"))
        assert second.returncode == 12
        assert "port 15433 is taken by postgres" in second.stdout
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=30)
    assert all(not leftovers(p.name) for p in runs.iterdir() if p.is_dir())


@pytest.mark.usefixtures("machine_wide")  # a gc of every run
def test_gc_removes_a_stale_runtime_folder_that_never_got_state() -> None:
    from testbed.core.paths import runtime_root  # noqa: PLC0415

    stale = runtime_root() / "stale-run-without-state"
    (stale / "private").mkdir(parents=True)
    fresh = runtime_root() / "fresh-run-without-state"
    fresh.mkdir()
    old = stale.stat().st_mtime - 3600
    os.utime(stale, (old, old))
    try:
        assert cli("gc").returncode == 0
        assert not stale.exists()
        assert fresh.exists(), "a folder made moments ago may belong to a run starting up"
    finally:
        fresh.rmdir()


