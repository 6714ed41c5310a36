"""The dev loop's reset, overlapped with pytest's own start. testbed resets the servers in a thread while
pytest starts; the plugin testbed loads into pytest (testbed/xdist/testbed_workers.py) waits at this gate
before the service's conftest is imported, so no test code sees the servers before the reset is done. The
gate is a Unix socket in the run's private runtime folder: the plugin connects and reads one line, `ok` or
the reset's error; a gate that closes without answering (testbed gone) stops pytest as well."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from pathlib import Path

from testbed.core import unix_socket
from testbed.core.errors import ExitCode, TestbedError
from testbed.core.paths import GATE_NAME

GATE_VARIABLE = "TESTBED_RESET_GATE"  # the plugin reads the gate's path here (and removes it: workers pass)


class ResetGate:
    """Runs `reset` at once and answers whoever waits at the gate as soon as it is done."""

    def __init__(self, runtime_dir: Path, reset: Callable[[], object]) -> None:
        self.path = runtime_dir / GATE_NAME
        self._listener = unix_socket.listen(self.path, 8)
        self._reset = reset
        self._done = threading.Event()
        self._closing = threading.Event()
        self.error: TestbedError | None = None
        self.outcome: object = None  # what `reset` returned
        self.seconds = 0.0  # the reset's own time
        self.waited = 0.0  # how long pytest stood at the gate: what the reset added to the tests phase
        self._threads = [
            threading.Thread(target=self._run, daemon=True),
            threading.Thread(target=self._serve, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        started = time.monotonic()
        try:
            self.outcome = self._reset()
        except TestbedError as exc:
            self.error = exc
        except Exception as exc:  # any failure must reach pytest as an answer, never hang it
            self.error = TestbedError(f"reset failed: {exc}", ExitCode.PROVISIONING)
        self.seconds = time.monotonic() - started
        self._done.set()

    def _serve(self) -> None:
        for connection in unix_socket.connections(self._listener, self._closing):
            arrived = time.monotonic()
            self._done.wait()
            self.waited = max(self.waited, time.monotonic() - arrived)
            answer = "ok" if self.error is None else " ".join(str(self.error).split())
            with connection, contextlib.suppress(OSError):
                connection.sendall(f"{answer}\n".encode())

    def close(self) -> None:
        """Stop serving (once the reset is done); raise the reset's error if it failed."""
        self._done.wait()
        unix_socket.stop(self._listener, self.path, self._closing)
        for thread in self._threads:
            thread.join(timeout=2)
        if self.error is not None:
            raise self.error
