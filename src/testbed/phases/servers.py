"""The servers phase: the native backend's start, and the Docker resources the playbook created recorded in
the state the moment they exist."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from testbed.backends import native
from testbed.run.store import RunState


def record(run_id: str, resources: list[Mapping[str, Any]]) -> None:
    state = RunState.find(run_id)
    for resource in resources:
        state.record(resource)


def start_native(run_id: str) -> dict[str, Any]:
    state = RunState.find(run_id)
    record = state.load()
    return native.start(state, record.servers, record.run_folder / "logs")
