"""SIGINT and SIGTERM during a wrapper run: noted, never fatal, so the teardown always runs."""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

from testbed.errors import ExitCode


class Interrupted:
    """SIGINT / SIGTERM: cancel the playbook, then tear down from the state file. A second signal makes
    the teardown quicker, never skipped."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.count = 0
        self._previous: dict[int, Any] = {}
        self._depth = 0  # re-entrant: the wrapper holds it from its first line and again around the playbook

    def __enter__(self) -> Interrupted:
        if self._depth == 0:
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        self._depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            for signum, handler in self._previous.items():
                signal.signal(signum, handler)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.count += 1
        if self.signum is None:
            self.signum = signum

    def __call__(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.SIGINT if self.signum == signal.SIGINT else ExitCode.SIGTERM
