"""What the Docker engine did while a test ran, from its event stream: which containers were created and
which volumes they mounted. Anonymous volumes carry no labels, so this is how a test finds the ones a
container left behind after the container itself is gone.

Other sessions may share the engine: ask for the containers of a name prefix, and for the volumes those
mounted or that were created while the stream ran; never diff the engine's whole volume list.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from types import TracebackType
from typing import Any

from testbed.backends import docker_api


class EngineEvents:
    """``docker events --since <start>`` streamed in a thread; ``--since`` replays what happened between
    the start and the subscription, so nothing is missed at the beginning."""

    def __init__(self) -> None:
        self.since = time.time()
        self.events: list[dict[str, Any]] = []
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def __enter__(self) -> EngineEvents:
        self._proc = subprocess.Popen(
            ["docker", "events", "--since", f"{self.since:.3f}", "--format", "{{json .}}",
             "--filter", "type=container", "--filter", "type=volume"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                self.events.append(json.loads(line))
            except ValueError:
                continue

    def stop(self) -> None:
        """Let events of the last moment arrive, then end the stream (idempotent)."""
        if self._proc is None:
            return
        time.sleep(0.5)
        self._proc.terminate()
        self._proc.wait(timeout=10)
        if self._reader is not None:
            self._reader.join(timeout=10)
        self._proc = None

    def containers(self, name_prefix: str) -> dict[str, str]:
        """id -> name of every container whose name starts with ``name_prefix`` that had an event."""
        found = {}
        for event in self.events:
            attributes = event.get("Actor", {}).get("Attributes", {})
            if event.get("Type") == "container" and attributes.get("name", "").startswith(name_prefix):
                found[event["Actor"]["ID"]] = attributes["name"]
        return found

    def created(self, name_prefix: str) -> list[str]:
        """Names of the containers with that prefix the engine created."""
        return sorted({e["Actor"]["Attributes"]["name"] for e in self.events
                       if e.get("Type") == "container" and e.get("Action") == "create"
                       and e["Actor"]["Attributes"].get("name", "").startswith(name_prefix)})

    def volumes_mounted_by(self, container_ids: set[str] | dict[str, str]) -> set[str]:
        return {e["Actor"]["ID"] for e in self.events
                if e.get("Type") == "volume" and e.get("Action") == "mount"
                and e["Actor"].get("Attributes", {}).get("container") in container_ids}

    def volumes_created(self) -> set[str]:
        return {e["Actor"]["ID"] for e in self.events if e.get("Type") == "volume" and e.get("Action") == "create"}


def existing_volumes(names: set[str]) -> list[str]:
    """Those of ``names`` that still exist."""
    left = []
    for name in sorted(names):
        status, _ = docker_api.request("GET", f"/volumes/{name}", timeout=10)
        if status == 200:
            left.append(name)
    return left


def dangling(names: list[str]) -> list[str]:
    """Those of ``names`` no container (running or not) uses: what was left behind."""
    status, body = docker_api.request("GET", "/containers/json", query={"all": 1}, timeout=15)
    used: set[str] = set()
    if status == 200:
        for container in json.loads(body):
            used |= {m.get("Name", "") for m in container.get("Mounts") or [] if m.get("Type") == "volume"}
    return [name for name in names if name not in used]
