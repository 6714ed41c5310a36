"""Whether a run's servers are still there: a native server's process, a container's state, and the tail
of a server's log that says why one is gone."""

from __future__ import annotations

import json
from collections.abc import Callable

from testbed.backends import docker_api
from testbed.run.record import RunRecord
from testbed.servers import kind_of

EXITED = "the server exited"


def gone_check(record: RunRecord) -> Callable[[str], str | None]:
    """A check of one server by name: why it is gone (exited, container removed), or None while it runs."""
    processes = {r.service: r.identity() for r in record.processes()}
    names = record.containers()
    hints = {name: kind_of(name, settings).exited_hint(settings) for name, settings in record.servers.items()}

    def gone(service: str) -> str | None:
        if service in processes and not processes[service].alive():
            return EXITED + (f" ({hints[service]})" if hints.get(service) else "")
        if service in names:
            try:
                status, body = docker_api.request("GET", f"/containers/{names[service]}/json", timeout=3)
            except OSError as exc:
                return f"the Docker engine stopped answering ({exc})"
            if status == 404:
                return "the container is gone"
            state = json.loads(body).get("State", {})
            if not state.get("Running"):
                return f"the container exited with code {state.get('ExitCode')}"
        return None

    return gone


def log_tail(record: RunRecord, service: str, lines: int = 15) -> list[str]:
    names = record.containers()
    try:
        if service in names:
            text = docker_api.logs(names[service], tail=lines)
        else:
            text = (record.run_folder / "logs" / f"{service}.log").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]


def servers_gone(record: RunRecord) -> list[str]:
    """Each of the run's servers (workers' instances included) that is no longer running, and why."""
    gone = gone_check(record)
    lines = []
    for name, server in record.servers.items():
        why = gone(name)
        if why:
            # "NATS exited", "memcached exited (… stay in the foreground …)", "NATS exited (the container is gone)"
            more = why.removeprefix(EXITED) if why.startswith(EXITED) else f" ({why})"
            lines.append(f"{server['title']} exited{more}")
    return lines
