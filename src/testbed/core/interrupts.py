"""SIGINT and SIGTERM in the wrapper: noted from its first line, never raised at an arbitrary point.

Python's own SIGINT handler raises KeyboardInterrupt at whatever bytecode runs next, and where that is a
finalizer (a generator closed by the garbage collector, a `__del__`) or a library's broad `except`, the
exception is swallowed and the signal is lost: the run went on and passed. So the wrapper notes signals
instead, from before the CLI's modules import, and acts on them at fixed points: before anything of a run
exists (one line, 128 + the signal), or by cancelling the playbook and tearing down."""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

from testbed.core.errors import ExitCode

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted:
    """SIGINT / SIGTERM noted. A second signal makes the teardown quicker, never skipped."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.count = 0
        self._previous: dict[int, Any] = {}
        self._held: list[bool] = []  # per `with`: whether that level installed the handlers

    def note(self) -> None:
        """Note signals from now on (idempotent)."""
        if not self._previous:
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)

    def release(self) -> None:
        """Back to the handlers there were before: for commands that have nothing to tear down, a Ctrl-C
        from here on interrupts at once. A signal noted before this ends the command here."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
        self.checkpoint()

    def checkpoint(self) -> None:
        """A signal noted before anything of the run exists ends the command here (cli.main says so in one
        line, with the signal's exit code)."""
        if self.signum is not None:
            raise KeyboardInterrupt

    def __enter__(self) -> Interrupted:
        self._held.append(not self._previous)
        self.note()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._held.pop():
            for signum, handler in self._previous.items():
                signal.signal(signum, handler)
            self._previous.clear()

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.count += 1
        if self.signum is None:
            self.signum = signum

    def __call__(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum or signal.SIGINT).name

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.SIGTERM if self.signum == signal.SIGTERM else ExitCode.SIGINT

    def before_start_line(self) -> str:
        return f"❌ Interrupted by {self.name} before anything started"


#: The wrapper process's one record of its signals (testbed.__main__ starts it; run_playbook acts on it).
NOTED = Interrupted()
