"""The pytest plugin testbed loads into the service's tests (`-p testbed_workers`). At import, before the
service's conftest: it waits at testbed's gate until the dev loop's reset (and each worker's database) is
ready (testbed.reset_gate), then, in a pytest-xdist worker gwN, takes that worker's own share of every
server (its database, its Redis, its NATS) through the very variables the service reads anyway. Standard
library only: it runs in the service's environment, where testbed is not installed."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

GATE_VARIABLE = "TESTBED_RESET_GATE"
SHARES_VARIABLE = "TESTBED_WORKER_SHARES"


def _wait_at_gate() -> None:
    # Removed once passed: the xdist workers the controller starts later inherit its environment without it.
    gate = os.environ.pop(GATE_VARIABLE, None)
    if not gate:
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.connect(gate)
        answer = connection.makefile("r", encoding="utf-8").readline().strip()
    if answer != "ok":
        raise SystemExit(f"testbed: the servers are not ready for the tests: {answer or 'testbed went away'}")


def _take_share() -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # set by xdist before the worker imports any plugin
    path = os.environ.get(SHARES_VARIABLE)
    if not worker or not path:
        return
    shares: dict[str, dict[str, str]] = json.loads(Path(path).read_text(encoding="utf-8"))
    os.environ.update(shares.get(worker, {}))


_wait_at_gate()  # at import: `-p` plugins are imported before any conftest
_take_share()
