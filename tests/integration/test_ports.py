"""Auto ports: a native server that loses the race for its port is restarted on a fresh one."""

from __future__ import annotations

import socket
from pathlib import Path

from support import PROJECT, leftovers
from testbed.config.catalogue import load_catalogue
from testbed.phases import preflight, readiness, servers
from testbed.run.store import RunState
from testbed.teardown.teardown import teardown


def test_native_server_that_loses_its_port_is_retried_on_another(service: Path, runs: Path) -> None:
    context = preflight.open_run({"service_dir": str(service), "catalogue": load_catalogue(PROJECT),
                                  "backend": "native", "ports": "auto", "run_id": "", "run_root": str(runs)})
    state = RunState.find(context["run_id"])
    with socket.socket() as thief:
        # Someone else takes the port testbed picked for PostgreSQL, between the pick and the start.
        thief.bind(("127.0.0.1", 0))
        thief.listen()
        stolen = thief.getsockname()[1]
        with state.update() as data:
            data["servers"]["postgres"]["port"] = stolen
        try:
            servers.start_native(context["run_id"])
            result = readiness.ready(context["run_id"], timeout=30)
            port = next(server.port for server in result.servers if server.name == "postgres")
            assert port != stolen
            assert state.load().facts["postgres"]["port"] == port
            log = (Path(context["run_folder"]) / "logs" / "postgres.log").read_text()
            assert "Address already in use" in log
        finally:
            outcome = teardown(state, grace=2)
    assert outcome.ok, outcome.left
    assert leftovers(context["run_id"]) == []
