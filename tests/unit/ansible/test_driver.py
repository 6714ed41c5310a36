"""Driving a playbook: a failure no phase explained is said in one line, and a full disk in ansible-runner's own
thread is kept as one (not a traceback)."""

from __future__ import annotations

import errno
import io
import threading
from pathlib import Path

from testbed.ansible import driver
from testbed.core.errors import ExitCode
from testbed.core.files import DiskFull


def test_a_failure_no_phase_said_is_one_line_asking_for_minus_v() -> None:
    out = io.StringIO()
    assert driver._unexplained("failed", 2, None, out) is None
    assert out.getvalue() == "❌ Ansible: playbook ended failed (rc 2); rerun with -v\n"


def test_a_full_disk_is_the_reason_and_its_code(tmp_path: Path) -> None:
    out = io.StringIO()
    full = DiskFull(tmp_path / "x")
    assert driver._unexplained("failed", 2, full, out) == ExitCode.PROVISIONING
    assert out.getvalue() == f"❌ Ansible: {full}\n"


def test_a_full_disk_in_a_thread_is_kept_and_other_errors_still_reach_the_hook(tmp_path: Path) -> None:
    others: list[type[BaseException]] = []
    original = threading.excepthook
    def mine(args: threading.ExceptHookArgs) -> None:
        others.append(args.exc_type)

    threading.excepthook = mine
    try:
        with driver._disk_full_in_threads() as seen:
            for error in (OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "status")),
                          ValueError("not a disk")):
                def fail(error: BaseException = error) -> None:
                    raise error
                thread = threading.Thread(target=fail)
                thread.start()
                thread.join()
        assert threading.excepthook is mine and others == [ValueError]  # put back after the block
    finally:
        threading.excepthook = original
    assert [type(full) for full in seen] == [DiskFull] and str(tmp_path / "status") in str(seen[0])
