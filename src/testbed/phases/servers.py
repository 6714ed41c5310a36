"""The servers phase: the native backend's start, or the Docker backend's network and containers (recorded in the
state before they exist), all at once."""

from __future__ import annotations

import fcntl
from collections.abc import Mapping, Sequence
from typing import Any

from testbed.backends import docker, native
from testbed.core.paths import START_LOCK
from testbed.run.store import RunState


def record(run_id: str, resources: Sequence[Mapping[str, Any]]) -> None:
    state = RunState.find(run_id)
    for resource in resources:
        state.record(resource)


def start_native(run_id: str) -> dict[str, Any]:
    state = RunState.find(run_id)
    record = state.load()
    return native.start(state, record.servers, record.run_folder / "logs")


def start_docker(run_id: str) -> dict[str, Any]:
    """The run's network and containers, recorded first, then created (or started) all at once; what changed.
    Locked: the wrapper's head start and the playbook's task may both come."""
    state = RunState.find(run_id)
    with (state.runtime_dir / START_LOCK).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        specs = docker.containers(run_id, state.load().servers)
        record(run_id, docker.resources(run_id, specs))
        changed = docker.start(run_id, specs)
    return {"changed": bool(changed), "started": changed, "containers": [spec["name"] for spec in specs]}
