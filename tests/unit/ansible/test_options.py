"""What a wrapper command asks of the playbooks, and the playbook variables it becomes."""

from __future__ import annotations

import os
from pathlib import Path

from testbed.ansible.options import Options, extravars_of


def test_a_local_run_becomes_the_playbook_s_variables(tmp_path: Path) -> None:
    options = Options(service=tmp_path / "svc" / ".." / "svc", backend="native", ports="auto",
                      images={"postgres": "pg:15"}, pytest_args=["-k", "x"], lease_seconds=60,
                      extravars={"testbed_extra": 1})
    values = extravars_of(options, "r1", tmp_path / "runs", "env", remote=False)
    assert values == {
        "testbed_service": str((tmp_path / "svc").resolve()),
        "testbed_backend": "native",
        "testbed_ports": "auto",
        "testbed_run_id": "r1",
        "testbed_run_root": str(tmp_path / "runs"),
        "testbed_secrets": "env",
        "testbed_images": {"postgres": "pg:15"},
        "testbed_pull": False,
        "testbed_owner_pid": os.getpid(),
        "testbed_pytest_args": ["-k", "x"],
        "testbed_lease_seconds": 60,
        "testbed_readiness_timeout": 60,
        "testbed_extra": 1,
    }


def test_a_remote_run_has_no_local_owner_and_names_its_hosts(tmp_path: Path) -> None:
    options = Options(service=tmp_path, limit="runner-1")
    values = extravars_of(options, "r1", tmp_path, "ssm", remote=True)
    assert values["testbed_owner_pid"] == 0  # a process here cannot own a run on another host
    assert values["testbed_hosts"] == "runner-1"
    assert "testbed_hosts" not in extravars_of(options, "r1", tmp_path, "ssm", remote=False)


def test_the_defaults_are_the_documented_ones(tmp_path: Path) -> None:
    options = Options(service=tmp_path)
    assert (options.playbook, options.backend, options.ports, options.secrets, options.teardown) == (
        "playbooks/integration.yml", "auto", "fixed", "auto", "always")
