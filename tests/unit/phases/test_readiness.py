"""The readiness phase: a native server on auto ports that lost the race for its port (its log says the address
is in use) is the one restarted on a fresh port; on fixed ports or Docker it is a failure as it is."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.phases.readiness import _lost_port_race
from testbed.run.record import RunRecord


def _record(tmp_path: Path, ports: str, backend: str, log: str) -> RunRecord:
    (tmp_path / "logs").mkdir(exist_ok=True)
    (tmp_path / "logs" / "postgres.log").write_text(log)
    return RunRecord.from_dict({"run_id": "r1", "run_folder": str(tmp_path), "runtime_dir": str(tmp_path / "r1"),
                                "ports": ports, "backend": backend, "servers": {"postgres": {"title": "PostgreSQL"}}})


@pytest.mark.parametrize(("ports", "backend", "log", "lost"), [
    ("auto", "native", "LOG:  could not bind IPv4 address \"127.0.0.1\": Address already in use\n", True),
    ("auto", "native", "bind: address in use\n", True),
    ("auto", "native", "FATAL:  the database system is starting up\n", False),
    ("fixed", "native", "could not bind: Address already in use\n", False),  # the user's port: said, not moved
    ("auto", "docker", "Address already in use\n", False),
])
def test_only_an_auto_port_a_native_server_lost_is_retried(
    tmp_path: Path, ports: str, backend: str, log: str, lost: bool
) -> None:
    assert _lost_port_race(_record(tmp_path, ports, backend, log), "postgres") is lost
