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
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

MASK = "***"
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

    def file(self, path: Path, fragments: bool = True) -> bool:
        """Scrub one regular file in place (never through a symlink); True when it held a value. Without
        `fragments` only whole values are looked for (fast, for large trees such as htmlcov)."""
        if not self._needles:
            return False
        try:
            info = path.lstat()
            if not stat.S_ISREG(info.st_mode):
                return False
            data = path.read_bytes()
        except OSError:
            return False
        cleaned = self.binary(data, fragments)
        if cleaned == data:
            return False
        tmp = path.with_name(f".{path.name}.redacted")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, stat.S_IMODE(info.st_mode))
        with os.fdopen(fd, "wb") as handle:
            handle.write(cleaned)
        tmp.replace(path)
        return True

    def tree(self, folder: Path, skip: Iterable[str] = (), fragments: bool = True) -> list[Path]:
        """Scrub every regular file under a folder (not following symlinks); returns those that held a value."""
        skipped = set(skip)
        scrubbed: list[Path] = []
        if not self._needles or not folder.is_dir():
            return scrubbed
        for root, dirs, files in os.walk(folder):
            dirs[:] = [d for d in dirs if d not in skipped]
            scrubbed += [Path(root) / name for name in files if self.file(Path(root) / name, fragments)]
        return scrubbed

    def stream(self, sink: IO[bytes]) -> StreamRedactor:
        return StreamRedactor(self, sink)


class StreamRedactor:
    """Redacts a byte stream chunk by chunk: a value split across two chunks is still caught, because the
    last len(longest)-1 bytes wait for the next chunk (or the end)."""

    def __init__(self, redactor: Redactor, sink: IO[bytes]) -> None:
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


@contextlib.contextmanager
def redacting_log(path: Path, redactor: Redactor) -> Iterator[int]:
    """A pipe's write end for a child's stdout/stderr; what comes through it lands in `path` redacted.

    The pump stops when the child's copy closes or, once the block ends, after draining what is buffered:
    a grandchild that keeps the pipe open (a daemon the tests started) cannot hold the run up."""
    read_fd, write_fd = os.pipe()
    done = threading.Event()

    def pump() -> None:
        with path.open("wb") as log:
            stream = redactor.stream(log)
            try:
                while True:
                    ready, _, _ = select.select([read_fd], [], [], 0.1)
                    if ready:
                        chunk = os.read(read_fd, _CHUNK)
                        if not chunk:
                            break
                        stream.write(chunk)
                    elif done.is_set():
                        break
            finally:
                stream.close()

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    try:
        yield write_fd
    finally:
        os.close(write_fd)
        done.set()
        thread.join()
        os.close(read_fd)
