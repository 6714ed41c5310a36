"""The contract every server kind implements. Each kind lives in its own module; the rest of testbed
asks the registry (testbed.servers) and never names a kind."""

from __future__ import annotations

import signal
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testbed.core.host import Account, Launch
from testbed.servers.base_reset import TestReset


@dataclass(frozen=True)
class Binary:
    """What serves a kind natively: a path (a binary, or a folder of them) and a notice to show."""

    path: str
    notice: str = ""


@dataclass
class ContainerParts:
    """What a kind adds to its container: the rest (name, labels, ports, network) is common."""

    command: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    tmpfs: list[str] = field(default_factory=list)


class ServerKind(ABC):
    """One kind of server: everything testbed knows about it. `settings` is the catalogue entry merged
    with the service's overrides (or a declared server's own keys); `fact` is what connection_facts
    made of it once the ports are known."""

    name: str
    order: int = 99  # where it is listed in the run's output
    # Natively: the program's name (argv[0]'s last part) and the signal that stops it cleanly, by which
    # teardown stops a server it finds without a state file.
    program: str = ""
    stop_signal: int = signal.SIGTERM
    # What a native server of this kind keeps in the run's runtime folder beside its data folder (which is named
    # after the server): no server may be named so.
    run_dir_entries: tuple[str, ...] = ()
    # The fixture of testbed's pytest plugin that hands a test this kind's server, emptied (testbed_redis, ...);
    # the plugin runs where testbed is not installed, so it asks by the fixture's name, never the kind's.
    fixture: str = ""

    def ports(self, settings: Mapping[str, Any]) -> dict[str, int]:
        """Each port setting the server publishes -> the port it listens on inside its container."""
        return {"port": int(settings["container_port"])}

    @abstractmethod
    def locate(self, settings: Mapping[str, Any]) -> Binary | str:
        """The native binary, or a line saying how to install it when it is missing."""

    @abstractmethod
    def launch(self, settings: Mapping[str, Any], binary: str, run_dir: Path, account: Account) -> Launch:
        """The native process: argv, data folder (run_dir/<name>, created empty by the caller) and stop signal."""

    @abstractmethod
    def container(self, settings: Mapping[str, Any]) -> ContainerParts:
        """The command, environment and tmpfs mounts of its container."""

    def left_running(self, data_dir: Path) -> list[int]:
        """This kind's server still working in `data_dir` (its data folder in a run whose state file is gone),
        found by what the server itself writes there and proven to be it; none when it writes nothing such."""
        return []

    def left_in_shared_memory(self, owner: int, folder: Path) -> list[Path]:
        """What this kind's servers of the account `owner`, killed, left in `folder` (/dev/shm: POSIX shared
        memory), once none of its servers of that account runs; none when it keeps nothing there."""
        return []

    def facts(self, settings: Mapping[str, Any], host: str) -> dict[str, Any]:
        """What templates (`{{ name.url }}`) and tests see: at least host, port and url."""
        port = int(settings["port"])
        return {"host": host, "port": port, "url": f"tcp://{host}:{port}"}

    def environment(self, fact: Mapping[str, Any]) -> dict[str, str]:
        """The standard variables the service's tests get for this server."""
        return {}

    def env_templates(self, settings: Mapping[str, Any]) -> dict[str, str]:
        """Variables templated from every fact (and this server's host, port and url at the top level)."""
        return {}

    def exited_hint(self, settings: Mapping[str, Any]) -> str:
        """What to add when the server's native process is found exited (a declared command that daemonizes)."""
        return ""

    def unavailable(self, settings: Mapping[str, Any], backend: str) -> str | None:
        """Why this server cannot run on `backend` (naming the testbed.yml key to set), or None."""
        return None

    @abstractmethod
    def probe(self, settings: Mapping[str, Any], fact: Mapping[str, Any], run_id: str = "") -> str:
        """One readiness attempt over the real protocol; returns the server's version, raises if not ready.
        `run_id`: the run the server belongs to (whatever a probe starts is marked with it, for teardown)."""

    def conninfo(self, fact: Mapping[str, Any]) -> str:
        """The migrations engine's connection string; only a kind with `runs_migrations` has one."""
        raise NotImplementedError(f"{self.name} does not run migrations")

    runs_migrations = False

    def worker_share(self, settings: Mapping[str, Any]) -> str:
        """How pytest-xdist workers share this server (testbed.parallel.workers): "instance" gives each worker after the
        first a server of its own (its own port, so it isolates a service that reads only host and port);
        "logical" means `isolate` carves a share out of the one server (a database per worker); "shared"
        leaves one server to all workers."""
        return "instance"

    def snapshot(self, settings: Mapping[str, Any], fact: Mapping[str, Any]) -> None:  # noqa: B027 - optional
        """Keep the freshly migrated state for `reset` (the dev loop). Nothing to keep for a server whose
        fresh state is empty."""

    def kept(self, settings: Mapping[str, Any], fact: Mapping[str, Any]) -> dict[str, Any] | None:
        """The fact that reaches the state `snapshot` kept (a migration added in the dev loop is applied
        there, then `reset` brings it over), or None when nothing is kept."""
        return None

    def empty(self, settings: Mapping[str, Any], fact: Mapping[str, Any]) -> None:  # noqa: B027 - optional
        """Bring the running server back to empty, as it started (before migrations): the dev loop migrates it
        again, and keeps that, when the state `snapshot` kept is gone."""

    def reset(self, settings: Mapping[str, Any], fact: Mapping[str, Any]) -> None:  # noqa: B027 - optional
        """Bring the running server back to its freshly migrated state, in place, without a restart (between
        dev-loop runs). Idempotent; raises TestbedError naming the server when it cannot."""

    def isolate(self, settings: Mapping[str, Any], fact: Mapping[str, Any], worker: str) -> dict[str, Any]:
        """For a "logical" kind: create worker `gwN`'s fresh share and return the fact it connects with."""
        raise NotImplementedError(f"{self.name} shares workers by {self.worker_share}, not logically")

    def test_reset(
        self, settings: Mapping[str, Any], fact: Mapping[str, Any], workers: int, *, eager: bool = True
    ) -> TestReset | None:
        """What brings this server back to its freshly migrated state before each test (tests.isolation:
        test), for the length of the tests phase; `fact` is the run's own, `workers` how many share it. Not
        `eager`: made for a fixture's first request, mid-run (nothing prepared ahead). None when nothing can
        (a declared server without `reset`)."""
        return None

    def give_back(self, settings: Mapping[str, Any], fact: Mapping[str, Any]) -> None:  # noqa: B027 - optional
        """Remove what a per-test reset left when its tests phase was killed (after an interrupt)."""
