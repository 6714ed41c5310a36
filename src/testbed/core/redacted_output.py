"""What a run prints or logs, redacted on its way out: the wrapper's stdout (RedactingWriter) and a child's
output through a pipe into a capped log (redacting_log: pytest.log)."""

from __future__ import annotations

import contextlib
import os
import select
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from testbed.core import files, logcap
from testbed.core.redact import CHUNK, Redactor


class RedactingWriter:
    """A text stream (stdout) whose every write is redacted; writes of whole lines keep values whole."""

    def __init__(self, out: IO[str], redactor: Redactor) -> None:
        self._out = out
        self.redactor = redactor

    def write(self, text: str) -> int:
        return self._out.write(self.redactor.text(text))

    def flush(self) -> None:
        self._out.flush()

    def isatty(self) -> bool:
        return self._out.isatty()

    def fileno(self) -> int:
        return self._out.fileno()


class LogPipe:
    """The write end of a pipe (`fd`) whose every byte lands in a capped log, redacted (see redacting_log);
    `full` once that log's disk filled up."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.full: files.DiskFull | None = None
        self._stop: Callable[[], None] | None = None
        self._lock = threading.Lock()

    def stop_on_full(self, stop: Callable[[], None]) -> None:
        """Call `stop()` when the log's disk fills up (at once, if it already did)."""
        with self._lock:
            self._stop = stop
            full = self.full
        if full is not None:
            stop()

    def filled(self, error: files.DiskFull) -> None:
        with self._lock:
            self.full = error
            stop = self._stop
        if stop is not None:
            stop()


@contextlib.contextmanager
def redacting_log(
    path: Path,
    redactor: Redactor,
    root: Path | None = None,
    head: int = logcap.PYTEST_HEAD,
    tail: int = logcap.PYTEST_TAIL,
) -> Iterator[LogPipe]:
    """A pipe for a child's stdout/stderr; what comes through it lands in `path` redacted, capped to its
    first `head` and last `tail` bytes (testbed.core.logcap), following no link from `root` down.

    The pump stops when the child's copy closes or, once the block ends, after draining what is buffered:
    a grandchild that keeps the pipe open (a daemon the tests started) cannot hold the run up. When the
    disk fills up, the log keeps its head, the pump drops the rest (the child never blocks on a full pipe),
    `stop_on_full`'s callback is called, and the block's end raises the DiskFull."""
    log = logcap.CappedLog(files.open_log_fd(path, root, append=False), path, head, tail)
    read_fd, write_fd = os.pipe()
    pipe = LogPipe(write_fd)
    done = threading.Event()

    def pump() -> None:
        stream = redactor.stream(log)
        try:
            while True:
                ready, _, _ = select.select([read_fd], [], [], 0.1)
                if ready:
                    chunk = os.read(read_fd, CHUNK)
                    if not chunk:
                        break
                    if pipe.full is None:
                        stream.write(chunk)
                elif done.is_set():
                    break
            if pipe.full is None:
                stream.close()
        except files.DiskFull as full:
            log.give_up(full.summary)
            pipe.filled(full)
            drain(read_fd, done)
        finally:
            with contextlib.suppress(OSError, files.DiskFull):
                log.close()

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    try:
        yield pipe
    finally:
        os.close(write_fd)
        done.set()
        thread.join()
        os.close(read_fd)
    if pipe.full is not None:
        raise pipe.full


def drain(read_fd: int, done: threading.Event) -> None:
    """Read and drop what comes through a pipe until its writers close it (or, once `done`, it is empty)."""
    while True:
        ready, _, _ = select.select([read_fd], [], [], 0.1)
        if ready:
            if not os.read(read_fd, CHUNK):
                return
        elif done.is_set():
            return
