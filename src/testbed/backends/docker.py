"""The Docker backend's side of a run: each server's container spec, the run's network, starting them all at once
(the servers role's testbed_docker, and the wrapper's head start), and the host ports Docker published; native.py
is the other backend."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from testbed.backends import docker_api
from testbed.core.concurrency import each_at_once
from testbed.core.errors import ExitCode, TestbedError
from testbed.core.paths import runtime_root
from testbed.servers import kind_of

if TYPE_CHECKING:
    from testbed.run.record import RunRecord


def containers(run_id: str, servers: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The container for each server, from the same catalogue the native backend reads. `present` says
    whether its image is here already (the servers role pulls only the others, before any container)."""
    specs = []
    for name, settings in servers.items():
        spec: dict[str, Any] = {
            "service": name,
            "name": f"testbed-{run_id}-{name}",
            "image": settings["image"],
            "labels": {
                docker_api.LABEL_RUN: run_id,
                docker_api.LABEL_SERVICE: name,
                docker_api.LABEL_ROOT: str(runtime_root()),
            },
            "env": {},
            "tmpfs": [],
            "command": [],
            "present": docker_api.image_present(settings["image"]),
        }
        kind = kind_of(name, settings)
        parts = kind.container(settings)
        spec |= {"command": parts.command, "env": parts.env, "tmpfs": parts.tmpfs}
        spec["ports"] = [f"127.0.0.1:{settings[key] or ''}:{inner}" for key, inner in kind.ports(settings).items()]
        specs.append(spec)
    return specs


def network(run_id: str) -> tuple[str, dict[str, str]]:
    """The run's network: its name and labels."""
    return f"testbed-{run_id}", {docker_api.LABEL_RUN: run_id, docker_api.LABEL_ROOT: str(runtime_root())}


def resources(run_id: str, specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The state file's records of the run's network and containers (made before they exist)."""
    return [{"kind": "network", "name": network(run_id)[0]}] + [
        {"kind": "container", "name": spec["name"], "service": spec["service"]} for spec in specs
    ]


def start(run_id: str, specs: list[dict[str, Any]]) -> list[str]:
    """The run's network, then every container at once (each created, or started, only when it is not running
    as specified); the services whose containers changed."""
    name, labels = network(run_id)
    created = docker_api.ensure_network(name, labels)
    changed: list[str] = []

    def one(spec: dict[str, Any]) -> None:
        if docker_api.ensure_container(spec, name):
            changed.append(spec["service"])

    each_at_once(one, specs)
    return ([name] if created else []) + sorted(changed)


def published_ports(record: RunRecord) -> dict[str, Any]:
    """Read back the host ports Docker published (ephemeral with ports: auto)."""
    servers = {name: dict(settings) for name, settings in record.servers.items()}
    published: dict[str, Any] = {}
    for service, container in record.containers().items():
        try:
            status, body = docker_api.request("GET", f"/containers/{container}/json", timeout=5)
        except OSError as exc:  # the engine went away after starting the containers
            raise TestbedError(
                f"{servers[service]['title']}: cannot read the ports of container "
                f"{container}: {exc}; once it answers, `testbed gc` removes what the run left",
                ExitCode.PROVISIONING,
            ) from exc
        if status != 200:
            raise TestbedError(f"{servers[service]['title']}: container {container} is missing", ExitCode.PROVISIONING)
        published[service] = json.loads(body)["NetworkSettings"]["Ports"] or {}
    for name, ports in published.items():
        for key, container_port in kind_of(name, servers[name]).ports(servers[name]).items():
            bindings = ports.get(f"{container_port}/tcp") or []
            if bindings:
                servers[name][key] = int(bindings[0]["HostPort"])
    return servers
