"""The reset gate: pytest waits before its conftest until the dev loop's reset is done; a failed reset or a gate
nobody answers stops it."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from support import run_workers_plugin
from testbed.core.errors import ExitCode, TestbedError
from testbed.parallel.reset_gate import GATE_VARIABLE, ResetGate


def test_the_gate_holds_pytest_until_the_reset_is_done_then_lets_workers_pass(tmp_path: Path) -> None:
    order: list[str] = []
    gate = ResetGate(tmp_path, lambda: order.append("reset"))
    result = run_workers_plugin({GATE_VARIABLE: str(gate.path), "POSTGRES_DB": "app"})
    gate.close()
    assert result.returncode == 0 and result.stdout.split() == ["app", "None"]  # passed, and removed for workers
    assert order == ["reset"] and not gate.path.exists()


def test_a_failed_reset_stops_pytest_at_the_gate_and_is_raised_once(tmp_path: Path) -> None:
    def fail() -> None:
        raise TestbedError("PostgreSQL: cannot clone database 'app': connection refused", ExitCode.PROVISIONING)

    gate = ResetGate(tmp_path, fail)
    result = run_workers_plugin({GATE_VARIABLE: str(gate.path)})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "testbed: the servers are not ready for the tests: PostgreSQL: cannot clone database 'app': connection refused"
    )
    with pytest.raises(TestbedError) as caught:
        gate.close()
    assert caught.value.exit_code == ExitCode.PROVISIONING


def test_a_gate_nobody_answers_stops_pytest(tmp_path: Path) -> None:
    path = tmp_path / "gate.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    listener.close()  # testbed went away: the path is there, nobody listens
    result = run_workers_plugin({GATE_VARIABLE: str(path)})
    assert result.returncode != 0 and "ConnectionRefusedError" in result.stderr
