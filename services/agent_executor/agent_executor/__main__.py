"""Entry point: `python -m agent_executor` (or the `agent-executor` script)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from agent_executor.config import ConfigError, Settings
from agent_executor.worker import Worker

log = logging.getLogger("agent_executor")


async def serve(settings: Settings) -> None:
    """Run one worker until SIGINT or SIGTERM, then finish in-flight messages and exit."""
    worker = await Worker.connect(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, worker.stop)
    async with worker:
        await worker.run()


def main() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        sys.exit(f"agent_executor: configuration error: {exc}")
    if settings.testing:
        logging.getLogger("agent_executor").setLevel(logging.DEBUG)
    if not settings.disable_vault_auth:
        # This build takes its secrets from the environment only; the platform injects them.
        log.info("DISABLE_VAULT_AUTH is not set: expecting secrets in the environment")
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
