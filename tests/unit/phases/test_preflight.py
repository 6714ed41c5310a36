"""Preflight opens a run: the config validated, the backend and ports chosen, the run's state created with its
owner and lease; bad parameters and fixed ports already taken refused before anything starts."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from testbed.config.catalogue import load_catalogue
from testbed.core.errors import ExitCode, TestbedError
from testbed.phases import preflight
from testbed.run.store import RunState


@pytest.fixture(autouse=True)
def private_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESTBED_RUNTIME_DIR", str(tmp_path / "root"))


def _params(service: Path, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {"service_dir": str(service), "catalogue": load_catalogue(), "run_root": str(tmp_path / "runs"),
            "backend": "native", "ports": "auto", "owner_pid": os.getpid(), **extra}


def test_a_run_is_opened_on_free_ports_with_its_owner_and_lease(service: Path, tmp_path: Path) -> None:
    context = preflight.open_run(_params(service, tmp_path, run_id="pre-open", lease_seconds=600))
    assert context["run_id"] == "pre-open" and context["backend"] == "native"
    record = RunState.find("pre-open").load()
    ports = [record.servers[name]["port"] for name in ("postgres", "dragonfly", "nats")]
    assert len(set(ports)) == 3 and 15433 not in ports  # auto: free ports, not the fixed ones
    assert record.owner is not None and record.owner.pid == os.getpid()
    assert record.lease_until is not None and record.lease_until > time.time() + 500
    config = json.loads((tmp_path / "runs" / "pre-open" / "diagnostics" / "config.json").read_text())
    assert config["name"] == "basic"
    again = preflight.open_run(_params(service, tmp_path, run_id="pre-open"))  # a second `up`: the same run
    assert again["run_id"] == "pre-open" and RunState.find("pre-open").load().servers == record.servers


@pytest.mark.parametrize(("extra", "message"), [
    ({"backend": "vm"}, "backend 'vm' is not one of "),
    ({"ports": "some"}, "ports 'some' is not one of "),
    ({"images": {"mysql": "mysql:8"}}, "image override for 'mysql', which the service does not use"),
    ({"run_id": "Bad Id"}, "run id 'Bad Id' must be 3-63 lowercase letters"),
])
def test_bad_parameters_are_refused_and_open_nothing(
    service: Path, tmp_path: Path, extra: dict[str, Any], message: str
) -> None:
    with pytest.raises(TestbedError, match=message) as caught:
        preflight.open_run(_params(service, tmp_path, **extra))
    assert caught.value.exit_code == ExitCode.CONFIG
    assert not (tmp_path / "root").exists() or list((tmp_path / "root").glob("*/state.json")) == []


def test_a_fixed_port_already_taken_is_refused_naming_its_holder(service: Path, tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        config = service / "testbed.yml"
        text = config.read_text().replace("    user: basic", f"    port: {port}\n    user: basic")
        # PostgreSQL alone: the machine's own fixed ports (another test's, perhaps) are not this test's to check.
        config.write_text(text.replace("servers: [postgres, dragonfly, nats]", "servers: [postgres]"))
        with pytest.raises(TestbedError) as caught:
            preflight.open_run(_params(service, tmp_path, ports="fixed"))
    assert caught.value.exit_code == ExitCode.PROVISIONING
    assert f"PostgreSQL port {port} is taken by python" in str(caught.value)
    assert str(caught.value).endswith(" — stop it, or use --ports auto")
