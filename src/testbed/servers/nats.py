"""NATS with JetStream, and its monitoring port."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nats.aio.client import Client as NATS

from testbed.core.errors import ExitCode, TestbedError
from testbed.core.host import Account, Launch, which
from testbed.servers.base import Binary, ContainerParts, ServerKind
from testbed.servers.base_reset import TestReset

NAME = "nats"
PROBE_TIMEOUT = 5.0  # nats-py can wait forever on a server that accepted the connection but never answers


class Nats(ServerKind):
    name = NAME
    order = 2
    fixture = "testbed_nats"

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

    def test_reset(
        self, settings: Mapping[str, Any], fact: Mapping[str, Any], workers: int, *, eager: bool = True
    ) -> TestReset:
        return _DeleteStreams(str(settings["title"]))

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


async def _api(nc: NATS, subject: str, payload: bytes, *, gone_is_fine: bool = False) -> dict[str, Any]:
    """One JetStream API request; its error as OSError (10059: no such stream, fine for a delete)."""
    reply: dict[str, Any] = json.loads((await nc.request(subject, payload, timeout=PROBE_TIMEOUT)).data)
    error = reply.get("error")
    if error and not (gone_is_fine and error.get("err_code") == 10059):
        raise OSError(f"{subject}: {error.get('description', 'refused')}")
    return reply


class _DeleteStreams(TestReset):
    """Every JetStream stream deleted before each test, through JetStream's API on a connection kept per worker's
    instance (an event loop of its own in a thread): `$JS.API.STREAM.NAMES`, then `$JS.API.STREAM.DELETE.<name>`
    for each. Deleted, not purged: a purged stream keeps its config and consumers, and the migrated state has no
    stream (testbed's migrations are PostgreSQL's), so a purged one would still be there for the next test."""

    def __init__(self, title: str) -> None:
        import asyncio  # noqa: PLC0415 - start-up cost: every command imports the server kinds

        self.title = title
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._connections: dict[str, Any] = {}

    async def _delete(self, url: str) -> None:
        import nats  # noqa: PLC0415 - start-up cost: nats-py is slow to import

        async def quiet(_: Exception) -> None:
            return None

        nc = self._connections.get(url)
        if nc is None or nc.is_closed:
            nc = self._connections[url] = await nats.connect(
                url, connect_timeout=2, allow_reconnect=False, max_reconnect_attempts=0, error_cb=quiet
            )
        while True:  # a page at a time: the API names at most 1024 per request
            names = (await _api(nc, "$JS.API.STREAM.NAMES", b"{}")).get("streams") or []
            if not names:
                return
            for name in names:
                await _api(nc, f"$JS.API.STREAM.DELETE.{name}", b"", gone_is_fine=True)

    def reset(self, fact: Mapping[str, Any]) -> None:
        import asyncio  # noqa: PLC0415 - start-up cost: every command imports the server kinds

        from nats.errors import Error as NatsError  # noqa: PLC0415 - start-up cost

        url = str(fact["url"])
        try:
            asyncio.run_coroutine_threadsafe(self._delete(url), self._loop).result(timeout=PROBE_TIMEOUT * 2)
        except (NatsError, OSError, TimeoutError, ValueError) as exc:
            self._connections.pop(url, None)
            why = str(exc) or type(exc).__name__
            raise TestbedError(f"{self.title}: cannot reset JetStream: {why}", ExitCode.PROVISIONING) from exc

    def close(self) -> None:
        import asyncio  # noqa: PLC0415 - start-up cost: every command imports the server kinds

        async def close_all() -> None:
            for nc in self._connections.values():
                with contextlib.suppress(Exception):
                    await nc.close()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close_all(), self._loop).result(timeout=PROBE_TIMEOUT)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=PROBE_TIMEOUT)
        self._loop.close()


KIND = Nats()
