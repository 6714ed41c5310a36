"""Stopping processes: each is reported as it exits, and one that ignores its signal is killed after the grace."""

from __future__ import annotations

import signal
import subprocess


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
