"""NATS with JetStream, and its monitoring port."""

from __future__ import annotations

import signal
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from testbed.core.errors import ExitCode, TestbedError
from testbed.core.host import Account, Launch, which
from testbed.servers.base import Binary, ContainerParts, ServerKind

NAME = "nats"
PROBE_TIMEOUT = 5.0  # nats-py can wait forever on a server that accepted the connection but never answers


class Nats(ServerKind):
    name = NAME
    order = 2

    def ports(self, settings: Mapping[str, Any]) -> dict[str, int]:
        return {"port": 4222, "monitor_port": 8222}

    def locate(self, settings: Mapping[str, Any]) -> Binary | str:
        binary = which("nats-server")
        return Binary(binary) if binary else "nats-server (apt-get install nats-server)"

    def launch(self, settings: Mapping[str, Any], binary: str, run_dir: Path, account: Account) -> Launch:
        data = run_dir / self.name
        argv = [
            binary,
            "-a",
            "127.0.0.1",
            "-p",
            str(settings["port"]),
            "-m",
            str(settings["monitor_port"]),
            "-js",
            "-sd",
            str(data),
        ]
        return Launch(self.name, argv, data, signal.SIGTERM)

    def container(self, settings: Mapping[str, Any]) -> ContainerParts:
        return ContainerParts(command=["-js", "-sd", "/data/jetstream", "-p", "4222", "-m", "8222"], tmpfs=["/data"])

    def facts(self, settings: Mapping[str, Any], host: str) -> dict[str, Any]:
        port = int(settings["port"])
        return {
            "host": host,
            "port": port,
            "url": f"nats://{host}:{port}",
            "monitor_port": int(settings["monitor_port"]),
        }

    def environment(self, fact: Mapping[str, Any]) -> dict[str, str]:
        return {"NATS_URL": fact["url"]}

    def reset(self, settings: Mapping[str, Any], fact: Mapping[str, Any]) -> None:
        """Delete every JetStream stream (their consumers, and key-value and object stores, go with them)."""
        import nats  # noqa: PLC0415
        from nats.errors import Error as NatsError  # noqa: PLC0415

        async def delete_streams() -> None:
            async def quiet(_: Exception) -> None:
                return None

            nc = await nats.connect(
                fact["url"], connect_timeout=2, allow_reconnect=False, max_reconnect_attempts=0, error_cb=quiet
            )
            try:
                js = nc.jetstream()
                while names := [info.config.name for info in await js.streams_info() if info.config.name]:
                    for name in names:  # a page at a time: the API lists at most 256 per request
                        await js.delete_stream(name)
            finally:
                await nc.close()

        try:
            import asyncio  # noqa: PLC0415 - start-up cost: every command imports the server kinds

            asyncio.run(asyncio.wait_for(delete_streams(), timeout=PROBE_TIMEOUT))
        except (NatsError, OSError, TimeoutError) as exc:
            why = str(exc) or type(exc).__name__
            raise TestbedError(f"{settings['title']}: cannot reset JetStream: {why}", ExitCode.PROVISIONING) from exc

    def probe(self, settings: Mapping[str, Any], fact: Mapping[str, Any], run_id: str = "") -> str:
        """Connect and ask JetStream for the account info (healthz does not prove JetStream on NATS 2.9)."""
        import nats  # noqa: PLC0415 - nats-py is slow to import; only NATS users pay for it

        # nats-py does not fail a first connection to a port nobody listens on yet: it retries after its 2 s
        # back-off, whatever max_reconnect_attempts says. A refused TCP connection fails this attempt at once.
        socket.create_connection((fact["host"], int(fact["port"])), timeout=2).close()

        async def check() -> str:
            async def quiet(_: Exception) -> None:
                return None

            nc = await nats.connect(
                fact["url"], connect_timeout=2, allow_reconnect=False, max_reconnect_attempts=0, error_cb=quiet
            )
            try:
                await nc.jetstream().account_info()
                return f"nats-server {nc.connected_server_version}"
            finally:
                await nc.close()

        import asyncio  # noqa: PLC0415 - start-up cost: every command imports the server kinds

        return asyncio.run(asyncio.wait_for(check(), timeout=PROBE_TIMEOUT))


KIND = Nats()
