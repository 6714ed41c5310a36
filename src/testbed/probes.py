"""Readiness: one probe per service over its real protocol, from the host, shared by both backends."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg
import redis

Probe = Callable[[Mapping[str, Any]], str]
PROBE_TIMEOUT = 5.0  # one attempt of one probe, whatever the protocol client does


def probe_postgres(fact: Mapping[str, Any]) -> str:
    """`SELECT 1` as the configured user on the configured database; returns the server version."""
    with psycopg.connect(
        host=fact["host"],
        port=fact["port"],
        user=fact["user"],
        password=fact["password"],
        dbname=fact["database"],
        connect_timeout=2,
    ) as conn:
        conn.execute("SELECT 1")
        return str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]


def probe_redis(fact: Mapping[str, Any]) -> str:
    """Redis `PING`; returns the server's name and version (Dragonfly reports itself in INFO)."""
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


def probe_nats(fact: Mapping[str, Any]) -> str:
    """Connect and ask JetStream for the account info (healthz does not prove JetStream on NATS 2.9)."""
    import nats  # noqa: PLC0415 - nats-py is slow to import; only NATS users pay for it

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

    # nats-py can wait forever on a server that accepted the connection but never answers: bound it.
    return asyncio.run(asyncio.wait_for(check(), timeout=PROBE_TIMEOUT))


PROBES: dict[str, Probe] = {"postgres": probe_postgres, "dragonfly": probe_redis, "nats": probe_nats}


@dataclass
class Readiness:
    """What happened while waiting for one service."""

    service: str
    ready: bool = False
    attempts: int = 0
    seconds: float = 0.0
    version: str = ""
    last_error: str = ""
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "ready": self.ready,
            "attempts": self.attempts,
            "seconds": round(self.seconds, 3),
            "version": self.version,
            "last_error": self.last_error,
            "errors": self.errors[-20:],
        }


def wait_ready(
    facts: Mapping[str, Mapping[str, Any]],
    timeout: float,
    gone: Callable[[str], str | None] | None = None,
    interval: float = 0.05,
) -> dict[str, Readiness]:
    """Poll every service concurrently until it answers or the deadline passes. `gone(service)` tells
    when a server has exited, so a crashed one fails at once instead of at the deadline."""
    results = {service: Readiness(service) for service in facts}
    start = time.monotonic()
    deadline = start + timeout

    def poll(service: str) -> None:
        result = results[service]
        while True:
            result.attempts += 1
            try:
                result.version = PROBES[service](facts[service])
            except Exception as exc:
                message = " ".join(str(exc).split()) or type(exc).__name__
                result.last_error = message
                if not result.errors or result.errors[-1] != message:
                    result.errors.append(message)
            else:
                result.ready = True
                result.seconds = time.monotonic() - start
                return
            exited = gone(service) if gone else None
            if exited:
                result.last_error = exited
                break
            if time.monotonic() >= deadline:
                break
            time.sleep(interval)
        result.seconds = time.monotonic() - start

    threads = [threading.Thread(target=poll, args=(service,)) for service in facts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
