"""Logs testbed keeps, capped: the first HEAD and the last TAIL bytes of what a server or pytest wrote, with
one line in between saying how much was cut. A server writing 50 MB a second, or a suite printing megabytes,
then costs the run folder a few MiB, and the start (how it came up) and the end (how it failed) stay.

| log | kept |
| --- | --- |
| a native server's `logs/<name>.log`, a container's log saved at teardown | first 1 MiB, last 4 MiB |
| `pytest.log` | first 2 MiB, last 8 MiB |

A native server outlives the command that started it (`testbed up`), so its output goes through a pipe to a
small pump process, `python -m testbed.core.logcap NOTE (READ_FD LOG_FD PATH)...`, started with the servers
and ending when the last of them closes its end. It ignores SIGTERM, SIGINT and SIGHUP: it must read until
the servers are gone (a server writing into a closed pipe may die of it). When the disk under a log fills
up, the pump cuts that log back to its head, says so in it and in NOTE (the run's runtime folder), and
goes on reading and dropping what comes: the server never blocks on its log, and the next phase names the
full disk (`check_note`)."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from testbed.core import files
from testbed.core.errors import TestbedError
from testbed.core.files import DiskFull, failure, write_all
from testbed.core.paths import DISK_FULL_NOTE

MiB = 1024 * 1024
SERVER_HEAD, SERVER_TAIL = 1 * MiB, 4 * MiB
PYTEST_HEAD, PYTEST_TAIL = 2 * MiB, 8 * MiB
# What a log that filled its disk gives back (at most a quarter of itself) so the run's records still fit.
ROOM_FOR_RECORDS = 256 * 1024
_REWRITE_EVERY = 0.5  # seconds between rewrites of the kept tail once the log is being cut


def _marker(cut: int, head: int, tail: int) -> bytes:
    """The line standing where bytes were cut."""
    return (
        f"\n[testbed: {cut} bytes cut here; this log keeps its first {head / MiB:g} MiB and its last "
        f"{tail / MiB:g} MiB]\n"
    ).encode()


class CappedLog:
    """Writes into an open file, keeping its first `head` and last `tail` bytes. Until the two fill up every
    byte goes straight to the file; after that the tail is kept in memory and written behind the head (with
    the line saying what was cut) at most every half second, and at `close()`."""

    def __init__(self, fd: int, path: Path, head: int, tail: int) -> None:
        self.fd, self.path, self.head, self.tail = fd, path, head, tail
        # A server restarted on a new port appends to its earlier log: what is there counts.
        size = os.fstat(fd).st_size
        self.written = size
        # The bytes after the head: at most `tail` of them once cutting.
        self.kept = bytearray(os.pread(fd, min(size - head, tail), max(head, size - tail)) if size > head else b"")
        self.cut = max(size - head - tail, 0)
        self._dirty = False
        self._rewritten = 0.0

    def write(self, data: bytes) -> None:
        """Raises DiskFull when the disk is full (the file keeps what fitted)."""
        if not data:
            return
        beyond_head = data[max(self.head - self.written, 0) :]
        if not self.cut and self.written + len(data) <= self.head + self.tail:
            self._raw(lambda: write_all(self.fd, data))
            self.written += len(data)
            self.kept += beyond_head
            return
        self.written += len(data)
        self.kept += beyond_head
        if len(self.kept) > self.tail:
            self.cut += len(self.kept) - self.tail
            del self.kept[: len(self.kept) - self.tail]
        self._dirty = True
        if time.monotonic() - self._rewritten >= _REWRITE_EVERY:
            self.flush()

    def flush(self) -> None:
        """Write the kept tail behind the head (only once cutting)."""
        if not self._dirty:
            return
        self._dirty = False
        self._rewritten = time.monotonic()
        body = _marker(self.cut, self.head, self.tail) + bytes(self.kept)

        def rewrite() -> None:
            os.ftruncate(self.fd, self.head)  # frees the old tail first: the new one fits where it was
            os.lseek(self.fd, self.head, os.SEEK_SET)
            write_all(self.fd, body)

        self._raw(rewrite)

    def _raw(self, action: Callable[[], None]) -> None:
        try:
            action()
        except OSError as exc:
            raise failure(exc, self.path) from exc

    def give_up(self, why: str) -> None:
        """The disk is full: keep only the head, less what the run's own records need (report.json, the state
        file's copy), and say so at its end (best effort). Cutting back to the head alone frees nothing when
        the log filled the disk before reaching its head."""
        self.cut, self.kept, self._dirty = 0, bytearray(), False
        keep = min(self.written, self.head)
        keep -= min(ROOM_FOR_RECORDS, keep // 4)
        with contextlib.suppress(OSError):
            os.ftruncate(self.fd, keep)
            os.lseek(self.fd, 0, os.SEEK_END)
            write_all(self.fd, f"\n[testbed: {why}; the rest of this log was dropped]\n".encode())

    def close(self) -> None:
        try:
            self.flush()
        finally:
            os.close(self.fd)


def head_and_tail(data: bytes, head: int, tail: int) -> bytes:
    """A whole log in memory (a container's), capped as CappedLog caps one as it is written."""
    if len(data) <= head + tail:
        return data
    return data[:head] + _marker(len(data) - head - tail, head, tail) + data[-tail:]


def check_note(runtime_dir: Path) -> None:
    """Raise the DiskFull the pump noted under one of the run's server logs, if it noted one."""
    try:
        text = (runtime_dir / DISK_FULL_NOTE).read_text(encoding="utf-8").strip()
    except OSError:
        return
    if text:
        raise DiskFull(runtime_dir / DISK_FULL_NOTE, message=text)


def _pump(note: Path, logs: dict[int, CappedLog]) -> None:
    """Read every server's pipe until its last writer closes it. A log that cannot be written any more (a
    full disk, or anything else) is given up and its pipe only drained: the pump never dies under a server."""
    dropping: set[int] = set()

    def give_up(fd: int, error: OSError | DiskFull) -> None:
        dropping.add(fd)
        logs[fd].give_up(error.summary if isinstance(error, DiskFull) else f"cannot write this log: {error}")
        if isinstance(error, DiskFull):
            with contextlib.suppress(OSError, TestbedError):
                files.write(note, str(error) + "\n", root=note.parent)

    while logs:
        ready, _, _ = select.select(list(logs), [], [], _REWRITE_EVERY)
        for fd in ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                with contextlib.suppress(OSError, DiskFull):
                    logs[fd].close()
                os.close(fd)
                del logs[fd]
            elif fd not in dropping:
                try:
                    logs[fd].write(chunk)
                except (OSError, DiskFull) as error:
                    give_up(fd, error)
        for fd in [fd for fd in logs if fd not in dropping]:
            try:
                logs[fd].flush()
            except (OSError, DiskFull) as error:
                give_up(fd, error)


def main(argv: list[str]) -> int:
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    if len(argv) < 4 or (len(argv) - 1) % 3:
        sys.stderr.write("usage: python -m testbed.core.logcap NOTE (READ_FD LOG_FD PATH)...\n")
        return 4
    note = Path(argv[0])
    logs = {
        int(argv[i]): CappedLog(int(argv[i + 1]), Path(argv[i + 2]), SERVER_HEAD, SERVER_TAIL)
        for i in range(1, len(argv), 3)
    }
    _pump(note, logs)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
