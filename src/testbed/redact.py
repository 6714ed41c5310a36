"""The one place that knows how a secret value can appear in what a run writes or prints, and replaces it.

A value is redacted as a whole and line by line (a multi-line key printed one line at a time), in each
encoding it can take on its way out: raw text and UTF-8 bytes, XML/HTML escaping (junit.xml, htmlcov),
JSON string escaping (report.json, job events) and Python's repr (pytest's assertion rewriting). Values
shorter than MIN_SECRET_LENGTH are refused where secrets are resolved: replacing a short string
corrupts ordinary output (words, numbers, ports) and where the masks land then tells the value anyway.

Fragments count too: pytest shortens a long repr to its head and tail (`'sk-proj-Ab...9xQz'`), so any run of
MIN_SECRET_LENGTH or more characters taken from a value is masked wherever it shows.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import re
import select
import stat
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Protocol

from testbed import files, logcap

MASK = "***"


class Sink(Protocol):
    """Where a redacted stream goes: a binary file, or a capped log (testbed.logcap)."""

    def write(self, data: bytes, /) -> object: ...

    def flush(self) -> object: ...


MIN_SECRET_LENGTH = 8
_CHUNK = 65536


def too_short(value: str) -> bool:
    """A value that cannot be redacted safely (see the module's docstring)."""
    return len(value.strip()) < MIN_SECRET_LENGTH


def _pieces(value: str) -> set[str]:
    """The value and each of its lines long enough to redact on its own."""
    pieces = {value, value.strip()}
    pieces |= {line.strip() for line in value.splitlines()}
    return {p for p in pieces if len(p) >= MIN_SECRET_LENGTH}


def _encodings(piece: str) -> set[str]:
    """Each way the piece can be written: as itself, JSON-escaped or repr'd (pytest's assertion rewriting),
    each of those possibly XML/HTML-escaped on top (junit.xml holds pytest's repr in an attribute)."""
    quoted = {piece, json.dumps(piece)[1:-1], json.dumps(piece, ensure_ascii=False)[1:-1], repr(piece)[1:-1]}
    forms = set()
    for text in quoted:
        forms |= {
            text,
            html.escape(text, quote=False),
            html.escape(text, quote=True),
            text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;"),
            # ElementTree writes a newline inside an attribute as &#10;.
            html.escape(text, quote=True).replace("\n", "&#10;").replace("\r", "&#13;"),
        }
    return {f for f in forms if f}


class Redactor:
    """Replaces every known secret value by MASK in text, bytes, JSON-shaped data and files."""

    def __init__(self, values: Iterable[str | None] = ()) -> None:
        self._needles: set[str] = set()
        self._bytes: re.Pattern[bytes] | None = None
        self._grams: frozenset[bytes] = frozenset()
        self.add(values)

    def add(self, values: Iterable[str | None]) -> None:
        for value in values:
            if value:
                for piece in _pieces(value):
                    self._needles |= _encodings(piece)
        # Longest first: a whole value is replaced before one of its lines could match inside it.
        ordered = sorted(self._needles, key=len, reverse=True)
        encoded = sorted({n.encode() for n in ordered}, key=len, reverse=True)
        self._bytes = re.compile(b"|".join(map(re.escape, encoded))) if encoded else None
        size = MIN_SECRET_LENGTH
        # Fragments never span a line end: a mask must not swallow the newline after a value's last line.
        self._grams = frozenset(
            g for n in encoded for i in range(len(n) - size + 1) if not {10, 13} & set(g := n[i : i + size])
        )

    def __bool__(self) -> bool:
        return bool(self._needles)

    @property
    def longest(self) -> int:
        """Bytes of the longest encoded needle: how much a stream must hold back at a chunk boundary."""
        return max((len(n.encode()) for n in self._needles), default=0)

    def _fragment_spans(self, data: bytes) -> list[tuple[int, int]]:
        """Runs of consecutive 8-byte windows that occur in a value: a set lookup per position (a regex
        alternation of thousands of fragments is a hundred times slower)."""
        grams, size = self._grams, MIN_SECRET_LENGTH
        spans: list[tuple[int, int]] = []
        position, last = 0, len(data) - size
        while position <= last:
            if data[position : position + size] in grams:
                start = position
                while position <= last and data[position : position + size] in grams:
                    position += 1
                spans.append((start, position - 1 + size))
            position += 1
        return spans

    def spans(self, data: bytes, fragments: bool = True) -> list[tuple[int, int]]:
        """Where values (and, with `fragments`, runs of 8+ bytes of a value) are in `data`: merged ranges."""
        if self._bytes is None:
            return []
        found = [(m.start(), m.end()) for m in self._bytes.finditer(data)]
        if fragments:
            found += self._fragment_spans(data)
        merged: list[tuple[int, int]] = []
        for start, end in sorted(found):
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        return merged

    def binary(self, value: bytes, fragments: bool = True) -> bytes:
        spans = self.spans(value, fragments)
        if not spans:
            return value
        parts, position = [], 0
        for start, end in spans:
            parts += [value[position:start], MASK.encode()]
            position = end
        parts.append(value[position:])
        return b"".join(parts)

    def text(self, value: str) -> str:
        if not self._needles:
            return value
        return self.binary(value.encode("utf-8", "surrogateescape")).decode("utf-8", "surrogateescape")

    def data(self, value: Any) -> Any:  # noqa: ANN401 - any JSON shape in, the same shape out
        """A JSON-shaped value (report.json, module results) with every string redacted."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(k) if isinstance(k, str) else k: self.data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        return value

    def file(self, path: Path, fragments: bool = True, root: Path | None = None) -> bool:
        """Scrub one regular file in place; True when it held a value. No symbolic link is followed from
        `root` (default: the file's folder) down, the file itself included. Without `fragments` only whole
        values are looked for (fast, for large trees such as htmlcov)."""
        if not self._needles:
            return False
        try:
            with files.folder(path.parent, root if root is not None else path.parent) as dir_fd:
                return self._file_in(dir_fd, path.name, path, fragments)
        except (OSError, files.LinkRefused):
            return False

    def _file_in(self, dir_fd: int, name: str, shown: Path, fragments: bool) -> bool:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
        except OSError:
            return False  # a link, or gone
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                return False
            data = handle.read()
        cleaned = self.binary(data, fragments)
        if cleaned == data:
            return False
        try:
            files.replace_in(dir_fd, name, cleaned, stat.S_IMODE(info.st_mode), shown)
        except files.DiskFull:
            # No room for the copy: overwrite in place, which needs none (a mask is shorter than a value).
            _overwrite(dir_fd, name, info, cleaned)
        except OSError:
            return False
        return True

    def tree(
        self, folder: Path, skip: Iterable[str] = (), fragments: bool = True, root: Path | None = None
    ) -> list[Path]:
        """Scrub every regular file under a folder, following no symbolic link from `root` (default: the
        folder itself) down; returns those that held a value."""
        skipped = set(skip)
        scrubbed: list[Path] = []
        if not self._needles:
            return scrubbed
        try:
            top = files.open_folder(folder, root if root is not None else folder)
        except (OSError, files.LinkRefused):
            return scrubbed
        try:
            for where, dirs, names, dir_fd in os.fwalk(".", dir_fd=top):  # links to folders are not entered
                dirs[:] = [d for d in dirs if d not in skipped]
                base = folder / where
                scrubbed += [base / name for name in names if self._file_in(dir_fd, name, base / name, fragments)]
        finally:
            os.close(top)
        return [Path(os.path.normpath(path)) for path in scrubbed]

    def stream(self, sink: Sink) -> StreamRedactor:
        return StreamRedactor(self, sink)


def _overwrite(dir_fd: int, name: str, was: os.stat_result, cleaned: bytes) -> None:
    """Write `cleaned` over the file that was read (the same one, not one put there since), then cut it."""
    fd = os.open(name, os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        now = os.fstat(fd)
        if (now.st_dev, now.st_ino) == (was.st_dev, was.st_ino):
            files.write_all(fd, cleaned)
            os.ftruncate(fd, len(cleaned))
    finally:
        os.close(fd)


class StreamRedactor:
    """Redacts a byte stream chunk by chunk: a value split across two chunks is still caught, because the
    last len(longest)-1 bytes wait for the next chunk (or the end)."""

    def __init__(self, redactor: Redactor, sink: Sink) -> None:
        self.redactor = redactor
        self.sink = sink
        self._held = b""

    def write(self, chunk: bytes) -> None:
        buffer = self._held + chunk
        keep = max(self.redactor.longest - 1, 0)
        cut = max(len(buffer) - keep, 0)
        for start, end in self.redactor.spans(buffer):
            if start < cut < end:
                cut = end  # a value straddling the cut goes out whole, redacted
        self.sink.write(self.redactor.binary(buffer[:cut]))
        self._held = buffer[cut:]

    def close(self) -> None:
        self.sink.write(self.redactor.binary(self._held))
        self._held = b""
        self.sink.flush()


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
    first `head` and last `tail` bytes (testbed.logcap), following no link from `root` down.

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
                    chunk = os.read(read_fd, _CHUNK)
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
            if not os.read(read_fd, _CHUNK):
                return
        elif done.is_set():
            return
