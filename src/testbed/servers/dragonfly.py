"""Dragonfly, or redis-server standing in for it (same protocol) where no dragonfly binary is installed."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from testbed.core.errors import ExitCode, TestbedError
from testbed.core.host import Account, Launch, which
from testbed.servers.base import Binary, ContainerParts, ServerKind
from testbed.servers.base_reset import TestReset

NAME = "dragonfly"
STAND_IN = "Dragonfly: no dragonfly binary here, redis-server (same protocol) stands in"


class Dragonfly(ServerKind):
    name = NAME
    order = 1
    fixture = "testbed_redis"

    def ports(self, settings: Mapping[str, Any]) -> dict[str, int]:
        return {"port": 6379}

    def locate(self, settings: Mapping[str, Any]) -> Binary | str:
        dragonfly = which("dragonfly")
        if dragonfly:
            return Binary(dragonfly)
        redis = which("redis-server")
        if redis:
            return Binary(redis, STAND_IN)
        return "dragonfly or redis-server (apt-get install redis-server)"

    def launch(self, settings: Mapping[str, Any], binary: str, run_dir: Path, account: Account) -> Launch:
        data = run_dir / self.name
        port = str(settings["port"])
        # Both speak the same flags for where to listen and keep data; only persistence and sizing differ.
        argv = [binary, "--port", port, "--bind", "127.0.0.1", "--dir", str(data)]
        if Path(binary).name == "dragonfly":
            argv += [
                "--dbfilename",
                "",
                f"--proactor_threads={settings['proactor_threads']}",
                f"--maxmemory={settings['maxmemory']}",
            ]
        else:
            argv += ["--save", "", "--appendonly", "no", "--maxmemory", str(settings["maxmemory"])]
        return Launch(self.name, argv, data, signal.SIGTERM)

    def container(self, settings: Mapping[str, Any]) -> ContainerParts:
        return ContainerParts(
            command=[
                "--port=6379",
                f"--proactor_threads={settings['proactor_threads']}",
                f"--maxmemory={settings['maxmemory']}",
            ],
            tmpfs=["/data"],
        )

    def facts(self, settings: Mapping[str, Any], host: str) -> dict[str, Any]:
        port = int(settings["port"])
        return {"host": host, "port": port, "url": f"redis://{host}:{port}/0"}

    def environment(self, fact: Mapping[str, Any]) -> dict[str, str]:
        return {"DRAGONFLY_HOST": fact["host"], "DRAGONFLY_PORT": str(fact["port"])}

    def reset(self, settings: Mapping[str, Any], fact: Mapping[str, Any]) -> None:
        """FLUSHALL: every key of every database index, as the server started."""
        import redis  # noqa: PLC0415

        client = redis.Redis(host=fact["host"], port=fact["port"], socket_timeout=5, socket_connect_timeout=2)
        try:
            client.flushall()
        except redis.RedisError as exc:
            raise TestbedError(f"{settings['title']}: cannot reset (FLUSHALL): {exc}", ExitCode.PROVISIONING) from exc
        finally:
            client.close()

    def test_reset(
        self, settings: Mapping[str, Any], fact: Mapping[str, Any], workers: int, *, eager: bool = True
    ) -> TestReset:
        return _Flush(str(settings["title"]))

    def probe(self, settings: Mapping[str, Any], fact: Mapping[str, Any], run_id: str = "") -> str:
        """Redis `PING`; returns the server's name and version (Dragonfly reports itself in INFO)."""
        import redis  # noqa: PLC0415 - loaded only where a probe runs

        client = redis.Redis(host=fact["host"], port=fact["port"], socket_timeout=2, socket_connect_timeout=2)
        try:
            if not client.ping():
                raise ConnectionError("PING did not answer PONG")
            info: dict[str, Any] = client.info("server")  # type: ignore[assignment]  # sync client: a dict
            if "dragonfly_version" in info:
                return f"dragonfly {info['dragonfly_version']}"
            return f"redis {info.get('redis_version', '?')}"
        finally:
            client.close()


class _Flush(TestReset):
    """FLUSHALL before each test, on a connection kept per worker's instance (0.05-0.25 ms, against about 1 ms
    for a connection of its own)."""

    def __init__(self, title: str) -> None:
        self.title = title
        self._clients: dict[tuple[str, int], Any] = {}
        self._lock = threading.Lock()

    def reset(self, fact: Mapping[str, Any]) -> None:
        import redis  # noqa: PLC0415 - start-up cost: loaded only where a Redis slot is reset

        where = (str(fact["host"]), int(fact["port"]))
        with self._lock:
            client = self._clients.get(where)
            if client is None:
                client = self._clients[where] = redis.Redis(
                    host=where[0], port=where[1], socket_timeout=5, socket_connect_timeout=2
                )
        try:
            client.flushall()
        except redis.RedisError as exc:
            raise TestbedError(f"{self.title}: cannot reset (FLUSHALL): {exc}", ExitCode.PROVISIONING) from exc

    def close(self) -> None:
        for client in self._clients.values():
            with contextlib.suppress(Exception):
                client.close()


KIND = Dragonfly()
