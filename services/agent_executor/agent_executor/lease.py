"""Short in-flight leases in Dragonfly (Redis protocol), one per event id.

The database row decides whether an event was processed; the lease only stops two
concurrent deliveries of the same event from both calling the LLM. It expires on its
own, so a worker that dies while holding it delays a redelivery by at most its TTL.
"""

from __future__ import annotations

import secrets

from redis.asyncio import Redis

KEY_PREFIX = "agent_executor:lease:"

# Only the holder (same token) may extend or release a lease.
_REFRESH = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


def lease_key(event_id: str) -> str:
    return f"{KEY_PREFIX}{event_id}"


class LeaseManager:
    def __init__(self, redis: Redis, ttl_ms: int) -> None:
        self._redis = redis
        self.ttl_ms = ttl_ms

    async def acquire(self, event_id: str) -> str | None:
        """Take the lease; return its token, or None when another holder has it."""
        token = secrets.token_hex(16)
        taken = await self._redis.set(lease_key(event_id), token, nx=True, px=self.ttl_ms)
        return token if taken else None

    async def refresh(self, event_id: str, token: str) -> bool:
        result = await self._redis.eval(_REFRESH, 1, lease_key(event_id), token, self.ttl_ms)  # type: ignore[misc]
        return bool(result)

    async def release(self, event_id: str, token: str) -> bool:
        result = await self._redis.eval(_RELEASE, 1, lease_key(event_id), token)  # type: ignore[misc]
        return bool(result)
