"""The preflight phase: validate everything, pick the backend and ports, create the run's state (or reuse
the run if it exists), start nothing."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from testbed.backends import docker, native
from testbed.backends.choice import BACKENDS, choose_backend
from testbed.backends.docker import containers
from testbed.config import workers
from testbed.config.checks import check_before_start
from testbed.config.service import load_service_config
from testbed.core import files
from testbed.core.errors import ExitCode, TestbedError
from testbed.core.ports import free_port, port_free, port_holder
from testbed.core.processes import ProcessIdentity, playbook_above
from testbed.parallel import workers as parallel_workers
from testbed.run.record import RunRecord
from testbed.run.store import RunState, check_run_id, new_run_id
from testbed.servers import WORKER_OF, kind_of, unavailable_on

PORT_MODES = ("fixed", "auto")


def _context(record: RunRecord, notices: list[str]) -> dict[str, Any]:
    """What the later phases (the roles) need of a run, from its state: the keys they read."""
    specs = containers(record.run_id, record.servers) if record.backend == "docker" else []
    network, network_labels = docker.network(record.run_id)
    return {
        "run_id": record.run_id,
        "run_folder": str(record.run_folder),
        "runtime_dir": str(record.runtime_dir),
        "backend": record.backend,
        "backend_reason": record.backend_reason,
        "notices": notices,
        "service": record.service,
        "servers": record.servers,
        "secrets": record.service_config().as_dict()["secrets"],
        "containers": specs,
        "network": network,
        "network_labels": network_labels,
        "records": docker.resources(record.run_id, specs),
    }


def _existing_run(run_id: str, count: int) -> dict[str, Any] | None:
    """Bringing up a run that exists (and is not torn down) reuses it: a second `up` changes nothing, unless
    it asks for more pytest workers than the run has servers for: their instances are added (and started by
    the servers phase, which starts only what is missing)."""
    if not run_id:
        return None
    try:
        state = RunState.find(run_id)
    except TestbedError:
        return None
    _record_controller(state)
    record = state.load()
    if record.torn_down:
        return None
    grown = count > record.workers
    if grown:
        with state.update() as current:
            added = parallel_workers.missing_instances(current["servers"], count)
            current["servers"] = parallel_workers.with_instances(current["servers"], count)
            _pick_ports({name: current["servers"][name] for name in added}, "auto", current["backend"])
            current["workers"] = count
        record = state.load()
    context = _context(record, record.notices)
    context["changed"] = grown
    return context


def _pick_ports(servers: Mapping[str, dict[str, Any]], ports: str, backend: str) -> None:
    """Each server's ports: checked free (fixed), or picked now (auto; Docker publishes ephemeral ones, read
    back later). A worker's instance always gets an auto port: nobody connects to it by a known number."""
    busy = []
    for name, settings in servers.items():
        for key in kind_of(name, settings).ports(settings):
            if ports == "auto" or settings.get(WORKER_OF):
                settings[key] = 0 if backend == "docker" else free_port()
            elif not port_free(int(settings[key])):
                holder = port_holder(int(settings[key]))
                who = f" by {holder}" if holder else " (bound by a socket that does not listen)"
                busy.append(f"{settings['title']} port {settings[key]} is taken{who}")
    if busy:
        raise TestbedError("; ".join(busy) + " — stop it, or use --ports auto", ExitCode.PROVISIONING)


def _record_controller(state: RunState) -> None:
    """Record the ansible-playbook running this module: a killed wrapper leaves it running, and gc stops it
    with the servers."""
    pid = playbook_above(os.getppid())
    controller = ProcessIdentity.of(pid) if pid else None
    if controller is None:
        return
    with state.update() as data:
        if not any(r["kind"] == "controller" and r["pid"] == controller.pid for r in data["resources"]):
            data["resources"].append({"kind": "controller", **controller.as_dict(), "stop_signal": 15})


def open_run(params: Mapping[str, Any]) -> dict[str, Any]:
    """The preflight phase's work: validate everything (the checks), pick the backend and ports, and create the
    run's state, or reuse the run if it exists; start nothing."""
    backend = params.get("backend") or "auto"
    ports = params.get("ports") or "fixed"
    if backend not in BACKENDS:
        raise TestbedError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
    if ports not in PORT_MODES:
        raise TestbedError(f"ports {ports!r} is not one of {', '.join(PORT_MODES)}")
    config = load_service_config(params["service_dir"], params["catalogue"])
    asked = str(params.get("workers") or "0")
    count = workers.count(config.tests.workers if asked == "0" else asked, "workers")
    check_before_start(config, worker_count=count)
    crowded = workers.crowding(count)
    existing = _existing_run(params.get("run_id") or "", count)
    if existing is not None:
        existing["notices"] = [*existing["notices"], *crowded]
        return existing
    servers = {name: dict(settings) for name, settings in config.servers.items()}
    for name, image in (params.get("images") or {}).items():
        if name not in servers:
            raise TestbedError(
                f"image override for {name!r}, which the service does not use (it uses {', '.join(servers)})"
            )
        servers[name]["image"] = image
    imageless = [name for name, settings in servers.items() if not settings["image"]]
    if backend == "auto" and imageless:
        chosen, reason = "native", f"{imageless[0]} has no image"
    else:
        images = {n: s["image"] for n, s in servers.items() if s["image"]}
        chosen, reason = choose_backend(backend, images, bool(params.get("pull")))
    unavailable = unavailable_on(servers, chosen)
    if unavailable:
        raise TestbedError(unavailable, ExitCode.CONFIG)
    notices: list[str] = []
    if chosen == "native":
        _, notices = native.binaries(servers)
    servers = parallel_workers.with_instances(servers, count)
    _pick_ports(servers, ports, chosen)

    run_id = check_run_id(params.get("run_id") or new_run_id())
    run_folder = Path(params["run_root"]).resolve() / run_id
    owner_pid = params.get("owner_pid") or playbook_above(os.getppid())
    owner = ProcessIdentity.of(int(owner_pid)) if owner_pid else None
    state = RunState.create(
        run_id,
        run_folder,
        owner,
        {
            "backend": chosen,
            "backend_reason": reason,
            "service": config.name,
            "ports": ports,
            "config": config.as_dict(),
            "servers": servers,
            "notices": notices,
            "workers": count,
        },
    )
    if params.get("lease_seconds"):
        with state.update() as data:
            data["lease_until"] = time.time() + int(params["lease_seconds"])
    _record_controller(state)
    files.write(run_folder / "diagnostics" / "config.json", json.dumps(config.as_dict(), indent=2), root=run_folder)
    return _context(state.load(), [*notices, *crowded])
