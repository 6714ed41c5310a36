"""What a run's state.json holds, as one typed value: the run's identity and folders, its backend, config,
servers and their facts, what it created (its resources), and how long it may live. `RunState.load()` reads
it; `RunRecord.as_dict()` gives back the file's keys as testbed writes them, and a key this version does not
know survives the round trip in `extra`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testbed.config import workers
from testbed.config.service import ServiceConfig
from testbed.core.processes import ProcessIdentity

# Resources stopped by signal, by pid: servers, the tests' supervisor, the servers' log pump, ansible-playbook.
PROCESS_KINDS = ("process", "supervisor", "log_pump", "controller")


@dataclass(frozen=True)
class Resource:
    """One thing a run created, recorded the moment it existed: a server's process (`process`), the tests'
    supervisor, the pump keeping the servers' logs (`log_pump`), the ansible-playbook driving the run
    (`controller`), a container, a network, a folder."""

    kind: str
    service: str | None = None
    name: str | None = None
    path: Path | None = None
    pid: int | None = None
    start_time: int | None = None
    boot_id: str | None = None
    stop_signal: int | None = None
    what: str | None = None
    argv: tuple[str, ...] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    _KEYS = ("kind", "service", "name", "path", "pid", "start_time", "boot_id", "stop_signal", "what", "argv")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Resource:
        return cls(
            kind=str(data["kind"]),
            service=data.get("service"),
            name=data.get("name"),
            path=Path(data["path"]) if data.get("path") is not None else None,
            pid=int(data["pid"]) if data.get("pid") is not None else None,
            start_time=int(data["start_time"]) if data.get("start_time") is not None else None,
            boot_id=data.get("boot_id"),
            stop_signal=int(data["stop_signal"]) if data.get("stop_signal") is not None else None,
            what=data.get("what"),
            argv=tuple(data["argv"]) if data.get("argv") is not None else None,
            extra={key: value for key, value in data.items() if key not in cls._KEYS},
        )

    def as_dict(self) -> dict[str, Any]:
        """The record as state.json holds it: only the keys it was recorded with."""
        values: dict[str, Any] = {
            "kind": self.kind,
            "service": self.service,
            "name": self.name,
            "path": str(self.path) if self.path is not None else None,
            "pid": self.pid,
            "start_time": self.start_time,
            "boot_id": self.boot_id,
            "stop_signal": self.stop_signal,
            "what": self.what,
            "argv": list(self.argv) if self.argv is not None else None,
        }
        return {key: value for key, value in values.items() if value is not None} | dict(self.extra)

    def identity(self) -> ProcessIdentity:
        """The process a process-kind resource names (pid, start time and boot: a reused pid never matches)."""
        if self.pid is None or self.start_time is None or self.boot_id is None:
            raise ValueError(f"a {self.kind} resource without pid, start_time and boot_id")
        return ProcessIdentity(self.pid, self.start_time, self.boot_id)

    @property
    def signal_to_stop(self) -> int:
        return self.stop_signal if self.stop_signal is not None else 15

    @property
    def label(self) -> str:
        """How teardown names it: `process 123`, `directory /x`, `container testbed-...`."""
        if self.kind in PROCESS_KINDS:
            return f"process {self.pid}"
        if self.kind == "directory":
            return f"directory {self.path}"
        return f"{self.kind} {self.name}"


@dataclass(frozen=True)
class ShardInfo:
    """The run tests group `index` of `count` (pytest-split), split by the prior `durations` file."""

    index: int
    count: int
    durations: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ShardInfo | None:
        if not data:
            return None
        return cls(int(data["index"]), int(data["count"]), str(data.get("durations", "")))

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "count": self.count, "durations": self.durations}


def _optional_float(value: float | None) -> float | None:
    return float(value) if value is not None else None


@dataclass(frozen=True)
class RunRecord:
    """A run's state file, typed. Keys an older state file lacks take their defaults."""

    run_id: str
    run_folder: Path
    runtime_dir: Path
    host: str = ""
    created: float = 0.0
    owner: ProcessIdentity | None = None
    lease_until: float | None = None
    backend: str = ""
    backend_reason: str = ""
    service: str = ""
    ports: str = "fixed"
    config: ServiceConfig | None = None
    servers: dict[str, dict[str, Any]] = field(default_factory=dict)  # settings as asked (ports 0: Docker's auto)
    facts: dict[str, dict[str, Any]] = field(default_factory=dict)  # what readiness found: host, port, url, ...
    versions: dict[str, str | None] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    workers: int = 1
    resources: list[Resource] = field(default_factory=list)
    python: Path | None = None  # the interpreter the dependency step installed into
    shard: ShardInfo | None = None
    torn_down: float | None = None
    left: list[str] | None = None  # what teardown could not remove
    kept_at: float | None = None  # when a dev-loop run kept its migrated state for the reset
    kept_databases: list[str] = field(default_factory=list)  # failing tests' databases --keep-failed kept
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know, kept as they are

    _KEYS = (
        "run_id", "run_folder", "runtime_dir", "host", "created", "owner", "lease_until", "backend",
        "backend_reason", "service", "ports", "config", "servers", "facts", "versions", "notices", "workers",
        "resources", "python", "shard", "torn_down", "left", "kept_at", "kept_databases",
    )  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunRecord:
        """The record of a state file's contents; a malformed one is a ValueError (callers skip or report it)."""
        try:
            owner = data.get("owner")
            return cls(
                run_id=str(data["run_id"]),
                run_folder=Path(data["run_folder"]),
                runtime_dir=Path(data["runtime_dir"]),
                host=str(data.get("host", "")),
                created=float(data.get("created", 0.0)),
                owner=ProcessIdentity.from_dict(owner) if owner else None,
                lease_until=_optional_float(data.get("lease_until")),
                backend=str(data.get("backend", "")),
                backend_reason=str(data.get("backend_reason", "")),
                service=str(data.get("service", "")),
                ports=str(data.get("ports", "fixed")),
                config=ServiceConfig.from_dict(data["config"]) if data.get("config") else None,
                servers={name: dict(settings) for name, settings in (data.get("servers") or {}).items()},
                facts={name: dict(fact) for name, fact in (data.get("facts") or {}).items()},
                versions=dict(data.get("versions") or {}),
                notices=list(data.get("notices") or []),
                workers=int(data.get("workers", 1)),
                resources=[Resource.from_dict(item) for item in data.get("resources") or []],
                python=Path(data["python"]) if data.get("python") else None,
                shard=ShardInfo.from_dict(data.get("shard")),
                torn_down=_optional_float(data.get("torn_down")),
                left=list(data["left"]) if data.get("left") is not None else None,
                kept_at=_optional_float(data.get("kept_at")),
                kept_databases=[str(name) for name in data.get("kept_databases") or []],
                extra={key: value for key, value in data.items() if key not in cls._KEYS},
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"state file of run {data.get('run_id', '?')!r} is malformed: {exc!r}") from exc

    def as_dict(self) -> dict[str, Any]:
        """The state file's contents: from_dict's inverse for every key testbed writes."""
        values: dict[str, Any] = {
            "run_id": self.run_id,
            "host": self.host,
            "created": self.created,
            "owner": self.owner.as_dict() if self.owner else None,
            "lease_until": self.lease_until,
            "run_folder": str(self.run_folder),
            "runtime_dir": str(self.runtime_dir),
            "resources": [resource.as_dict() for resource in self.resources],
            "servers": {name: dict(settings) for name, settings in self.servers.items()},
            "backend": self.backend,
            "backend_reason": self.backend_reason,
            "service": self.service,
            "ports": self.ports,
            "notices": list(self.notices),
            "workers": self.workers,
        }
        # Written once known (the config from preflight on, facts from readiness on, ...).
        optional: dict[str, Any] = {
            "config": self.config.as_dict() if self.config is not None else None,
            "facts": self.facts or None,
            "versions": self.versions or None,
            "python": str(self.python) if self.python else None,
            "shard": self.shard.as_dict() if self.shard else None,
            "torn_down": self.torn_down,
            "left": self.left,
            "kept_at": self.kept_at,
            "kept_databases": self.kept_databases or None,
        }
        values |= {key: value for key, value in optional.items() if value is not None}
        return values | self.extra

    # ---- what readers ask of a run

    def service_config(self) -> ServiceConfig:
        """The service's config as the run was opened with; a state file without one has no phases to run."""
        if self.config is None:
            raise ValueError(f"state file of run {self.run_id!r} holds no service config")
        return self.config

    def of_kind(self, *kinds: str) -> list[Resource]:
        return [resource for resource in self.resources if resource.kind in kinds]

    def processes(self) -> list[Resource]:
        """The native servers' processes (not the supervisor nor the controller)."""
        return self.of_kind("process")

    def containers(self) -> dict[str, str]:
        """Each containerised server's container name, by server."""
        return {r.service or r.name or "": r.name or "" for r in self.of_kind("container")}

    def own_facts(self) -> dict[str, dict[str, Any]]:
        """The facts of the service's own servers, without the pytest workers' instances: what the service
        and its templates see (worker gw0's share)."""
        return {name: self.facts[name] for name in workers.primaries(self.servers) if name in self.facts}

    @property
    def dev_loop(self) -> bool:
        """An environment `testbed up` left (it has a lease): reset between test runs, migrated again on `up`."""
        return bool(self.lease_until)

    def leased(self, now: float) -> bool:
        """Kept up by `testbed up` at `now`, and not torn down."""
        return (self.lease_until or 0) > now and not self.torn_down

    def owner_alive(self) -> bool:
        return self.owner is not None and self.owner.alive()
