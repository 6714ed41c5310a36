"""The readiness phase: wait until every server answers its protocol, retry a native server that lost the
race for its auto port, and say why one is not ready (gone, its log's tail)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from testbed.backends import native
from testbed.backends.docker import published_ports
from testbed.backends.liveness import gone_check, log_tail
from testbed.config.environment import connection_facts
from testbed.core import files, logcap
from testbed.core.errors import ExitCode, TestbedError
from testbed.core.ports import free_port
from testbed.run.outcome import ServersReady, ServerUp
from testbed.run.record import RunRecord
from testbed.run.store import RunState
from testbed.servers import kind_of, probes

PORT_RETRIES = 3


_IN_USE = ("address already in use", "address in use")


def ready(run_id: str, timeout: float) -> ServersReady:
    """Wait until every server answers its protocol; record the facts tests will see."""
    state = RunState.find(run_id)
    deadline = time.monotonic() + timeout
    for _attempt in range(PORT_RETRIES + 1):
        record = state.load()
        servers = published_ports(record)
        facts = connection_facts(servers)
        results = probes.wait_ready(
            facts, max(deadline - time.monotonic(), 1.0), gone_check(record), servers=servers, run_id=run_id
        )
        # With auto ports a native server can lose the race for its port to another process: retry it on
        # a fresh one (Docker publishes ephemeral ports itself and never races).
        lost = [name for name, r in results.items() if not r.ready and _lost_port_race(record, name)]
        if not lost:
            break
        _restart_on_new_ports(state, lost)
    logcap.check_note(state.runtime_dir)  # a server's log filled its disk
    files.write(
        record.run_folder / "diagnostics" / "readiness.json",
        json.dumps({k: v.as_dict() for k, v in results.items()}, indent=2),
        root=record.run_folder,
    )
    with state.update() as current:
        # "servers" keeps what was asked for (ports 0 under Docker's auto ports); facts hold what is.
        current["facts"] = facts
        current["versions"] = {k: v.version for k, v in results.items()}
    failed = [r for r in results.values() if not r.ready]
    if failed:
        first = failed[0]
        title = servers[first.service]["title"]
        port = servers[first.service]["port"]
        why = first.last_error or "no answer"
        raise TestbedError(
            f"{title} not ready on port {port} after {first.seconds:.1f}s: {why}", ExitCode.PROVISIONING
        ).with_log(log_tail(record, first.service))
    return ServersReady(
        tuple(
            ServerUp(name, servers[name]["title"], servers[name]["port"], round(r.seconds, 3), r.version)
            for name, r in results.items()
        )
    )


def _lost_port_race(record: RunRecord, service: str) -> bool:
    if record.ports != "auto" or record.backend != "native":
        return False
    return any(marker in line.lower() for line in log_tail(record, service, 30) for marker in _IN_USE)


def _restart_on_new_ports(state: RunState, services: list[str]) -> None:
    with state.update() as data:
        for name in services:
            for key in kind_of(name, data["servers"][name]).ports(data["servers"][name]):
                data["servers"][name][key] = free_port()
        servers = {name: data["servers"][name] for name in services}
        log_dir = Path(data["run_folder"]) / "logs"
    native.start(state, servers, log_dir)
