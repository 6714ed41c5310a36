"""The one place that replaces a secret's every form in what a run writes or prints (the forms themselves
are testbed.core.secret_forms): in text and bytes, in JSON-shaped values, in files (JSON and XML
structurally, so they stay valid), in folders (never through a link), and in streams chunk by chunk."""

from __future__ import annotations

import json
import os
import stat
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from testbed.core import files
from testbed.core.secret_forms import MIN_SECRET_LENGTH, forms, secret_parts
from testbed.core.xml_input import parse_xml

MASK = "***"


class Sink(Protocol):
    """Where a redacted stream goes: a binary file, or a capped log (testbed.core.logcap)."""

    def write(self, data: bytes, /) -> object: ...

    def flush(self) -> object: ...


CHUNK = 65536


def _windows(source: str) -> Iterator[bytes]:
    """Each MIN_SECRET_LENGTH-byte run of a source's UTF-8 form that stays on one line (a mask must not
    swallow the newline after a value's last line)."""
    data, size = source.encode(), MIN_SECRET_LENGTH
    for start in range(len(data) - size + 1):
        window = data[start : start + size]
        if b"\n" not in window and b"\r" not in window:
            yield window


class Redactor:
    """Replaces every known secret value by MASK in text, bytes, JSON-shaped data and files."""

    def __init__(self, values: Iterable[str | None] = ()) -> None:
        self._needles: set[str] = set()
        self._sources: set[str] = set()
        self._encoded: list[bytes] = []
        self._grams: frozenset[bytes] = frozenset()
        self.add(values)

    def add(self, values: Iterable[str | None]) -> None:
        for value in values:
            if value:
                pieces, sources = secret_parts(value)
                # A form that starts or ends with whitespace would swallow the newline after a value's last
                # line (the stripped value is a piece of its own).
                self._needles |= {form for piece in pieces for form in forms(piece) if form == form.strip()}
                self._sources |= {form for source in sources for form in forms(source)}
        self._encoded = sorted({n.encode() for n in self._needles})
        self._grams = frozenset(window for source in self._sources for window in _windows(source))

    def __bool__(self) -> bool:
        return bool(self._needles)

    @property
    def longest(self) -> int:
        """Bytes of the longest encoded needle: how much a stream must hold back at a chunk boundary."""
        return max((len(n.encode()) for n in self._needles), default=0)

    def _fragment_spans(self, data: bytes) -> list[tuple[int, int]]:
        """Runs of consecutive 8-byte windows of a fragment source: a set lookup per position (a regex
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
        if not self._encoded:
            return []
        found = []
        # Every occurrence of every form, overlaps merged below: bytes.find per form is twenty times faster
        # than one regex alternation of hundreds of them.
        for needle in self._encoded:
            start = data.find(needle)
            while start != -1:
                found.append((start, start + len(needle)))
                start = data.find(needle, start + 1)
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

    def text(self, value: str, fragments: bool = True) -> str:
        if not self._needles:
            return value
        return self.binary(value.encode("utf-8", "surrogateescape"), fragments).decode("utf-8", "surrogateescape")

    def data(self, value: Any, fragments: bool = True) -> Any:  # noqa: ANN401 - any JSON shape in, the same shape out
        """A JSON-shaped value (report.json, module results) with every string redacted: values, and keys
        where a key holds one. A number whose digits hold a value becomes MASK."""
        return self._cleaned(value, fragments)[0]

    def _cleaned(self, value: Any, fragments: bool) -> tuple[Any, bool]:  # noqa: ANN401 - as data()
        """data(), and whether anything changed."""
        if isinstance(value, str):
            cleaned = self.text(value, fragments)
            return cleaned, cleaned != value
        if isinstance(value, dict):
            changed = False
            result = {}
            for key, item in value.items():
                new_key, key_changed = self._cleaned(key, fragments) if isinstance(key, str) else (key, False)
                result[new_key], item_changed = self._cleaned(item, fragments)
                changed = changed or key_changed or item_changed
            return result, changed
        if isinstance(value, list | tuple):
            items = [self._cleaned(item, fragments) for item in value]
            return [item for item, _ in items], any(changed for _, changed in items)
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if number and self._needles and self.spans(repr(value).encode(), fragments):
            return MASK, True
        return value, False

    def _json(self, data: bytes, fragments: bool) -> bytes | None:
        """A JSON file redacted value by value, written back the way it was laid out (indented or not);
        None when it does not parse."""
        try:
            document = json.loads(data)
        except ValueError:
            return None
        cleaned, changed = self._cleaned(document, fragments)
        if not changed:
            return data
        indent = 2 if b"\n" in data.strip() else None
        return json.dumps(cleaned, indent=indent).encode() + (b"\n" if data.endswith(b"\n") else b"")

    def _xml(self, data: bytes, fragments: bool) -> bytes | None:
        """An XML file redacted string by string (text, tails, attribute values, comments); None when it does
        not parse, or has a DTD."""
        try:
            root = parse_xml(data, comments=True)
        except (ET.ParseError, ValueError):
            return None
        changed = False
        for element in root.iter():
            for name, value in list(element.attrib.items()):
                element.attrib[name] = self.text(value, fragments)
                changed = changed or element.attrib[name] != value
            for field in ("text", "tail"):
                value = getattr(element, field)
                if value:
                    setattr(element, field, cleaned := self.text(value, fragments))
                    changed = changed or cleaned != value
        if not changed:
            return data
        written: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
        return written + (b"\n" if data.endswith(b"\n") else b"")

    def file(self, path: Path, fragments: bool = True, root: Path | None = None) -> bool:
        """Scrub one regular file in place; True when it held a value. No symbolic link is followed from
        `root` (default: the file's folder) down, the file itself included. JSON and XML files are redacted
        structurally (they stay valid), others as text. Without `fragments` only whole
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
        structured = {".json": self._json, ".xml": self._xml}.get(Path(name).suffix.lower())
        try:
            cleaned = structured(data, fragments) if structured else None
        except RecursionError:  # nested deeper than Python recurses: as text
            cleaned = None
        # A value spread over the syntax (or a file that does not parse) is still caught as text.
        cleaned = self.binary(data if cleaned is None else cleaned, fragments)
        if cleaned == data:
            return False
        try:
            files.replace_in(dir_fd, name, cleaned, stat.S_IMODE(info.st_mode), shown)
        except files.DiskFull:
            # No room for the copy: overwrite in place, which needs none as long as the result is not longer
            # (a mask is shorter than a value; a structured rewrite can be longer: then as text).
            _overwrite(dir_fd, name, info, cleaned if len(cleaned) <= len(data) else self.binary(data, fragments))
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
