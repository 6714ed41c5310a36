"""A shard's run folder as `testbed merge` reads it: untrusted input.

A shard folder is an artifact another job wrote: on GitHub possibly a job of a fork's pull request, on a
fleet another host. So every file is read through one door (`read`): never through a symlink (the file or a
folder on the way), only a regular file (not /dev/zero, not a FIFO), and at most `LIMITS[name]` bytes. Every
value taken from it is checked (`Fields`, against testbed.shards.schema): types, ranges, single-line text.
Anything else is a one-line refusal (exit 10) naming the shard folder, the file and what is wrong. Nothing in
a shard folder is ever imported or run."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

import junitparser

from testbed.core import junit
from testbed.core.errors import ExitCode, TestbedError
from testbed.parallel import split
from testbed.run.store import check_run_id

MAX_SECONDS = split.MAX_SECONDS  # a duration
MAX_PATH = 4096  # PATH_MAX
_EXIT_CODES = tuple(int(code) for code in ExitCode)

REPORT = "report.json"


STATE = "state.json"


CONFIG = "diagnostics/config.json"


JUNIT = "junit.xml"


COVERAGE = "coverage.data"


# What merge reads of a shard folder, and the most of each it reads (bytes): generous for a real run
# (a junit.xml with captured output, coverage with contexts), small enough to hold in memory.
LIMITS: dict[str, int] = {
    REPORT: 1 << 20,
    STATE: 4 << 20,
    CONFIG: 1 << 20,
    JUNIT: 64 << 20,
    COVERAGE: 256 << 20,
    split.BEFORE_FILE: 16 << 20,
    split.MEASURED_FILE: 16 << 20,
}


# C0 and C1 control characters and DEL: no single-line value a run writes holds one.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


T = TypeVar("T")


def refusal(folder: Path, name: str, problem: str) -> TestbedError:
    """The one line every refusal of a shard's file is: the folder, the file, what is wrong."""
    return TestbedError(f"merge: shard folder {folder} is unreadable: {name}: {problem}", ExitCode.CONFIG)


def shown(value: object, width: int = 60, *, quoted: bool = True) -> str:
    """A value from a shard, as a message shows it: escaped (no terminal or workflow commands), cut short."""
    text = ascii(value)
    if not quoted and isinstance(value, str):
        text = text[1:-1]
    return text if len(text) <= width else text[: width - 1] + "…"


@contextlib.contextmanager
def _opened(folder: Path, name: str) -> Iterator[IO[bytes] | None]:
    """`name` (a path under `folder`) opened for reading, None when it is absent; never through a symlink."""
    parts = name.split("/")
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_CLOEXEC | os.O_DIRECTORY)
    except OSError as exc:
        raise refusal(folder, name, f"cannot open the folder ({exc.strerror})") from exc
    try:
        for depth, part in enumerate(parts):
            where, last = "/".join(parts[: depth + 1]), depth == len(parts) - 1
            try:
                mode = os.stat(part, dir_fd=fd, follow_symlinks=False).st_mode
            except FileNotFoundError:
                yield None
                return
            if stat.S_ISLNK(mode):
                raise refusal(folder, where, "is a symlink; merge follows none in a shard folder (a run writes none)")
            if not (stat.S_ISREG(mode) if last else stat.S_ISDIR(mode)):
                raise refusal(folder, where, f"is not a {'regular file' if last else 'folder'}")
            # O_NOFOLLOW: a symlink swapped in since the stat is refused by the kernel, not followed.
            # O_NONBLOCK: a FIFO swapped in does not hang the open.
            extra = os.O_NONBLOCK if last else os.O_DIRECTORY
            try:
                opened = os.open(part, flags | extra, dir_fd=fd)
            except OSError as exc:
                raise refusal(folder, where, f"cannot be opened ({exc.strerror})") from exc
            os.close(fd)
            fd = opened
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise refusal(folder, name, "is not a regular file")
        with os.fdopen(fd, "rb") as stream:
            fd = -1
            yield stream
    finally:
        if fd >= 0:
            os.close(fd)


def read(folder: Path, name: str, into: IO[bytes] | None = None) -> bytes | None:
    """The bytes of `name` in a shard folder (None when absent), at most LIMITS[name]; with `into`, copied there
    in pieces instead (returns b"")."""
    limit = LIMITS[name]
    with _opened(folder, name) as stream:
        if stream is None:
            return None
        size = os.fstat(stream.fileno()).st_size
        if size > limit:
            raise refusal(folder, name, f"is {size} bytes; merge reads at most {limit} of it")
        chunks: list[bytes] = []
        total = 0
        while chunk := stream.read(min(1 << 20, limit + 1 - total)):
            total += len(chunk)
            if total > limit:  # it grew since the fstat
                raise refusal(folder, name, f"is more than {limit} bytes; merge reads at most {limit} of it")
            if into is None:
                chunks.append(chunk)
            else:
                into.write(chunk)
    return b"".join(chunks)


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def read_json(folder: Path, name: str) -> object:
    """A JSON file of a shard folder (None when absent)."""
    data = read(folder, name)
    if data is None:
        return None
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than Python's stack
        raise refusal(folder, name, f"not valid JSON ({exc or 'nested too deep'})") from exc


class Fields:
    """One JSON object of a shard's file, read key by key against its schema."""

    def __init__(self, folder: Path, name: str, data: object, where: str = "") -> None:
        self.folder, self.name, self.where = folder, name, where
        if not isinstance(data, dict):
            raise refusal(folder, name, f"{where or 'the file'} is not a JSON object")
        self.data: dict[str, Any] = data

    def fail(self, key: str, problem: str) -> TestbedError:
        return refusal(self.folder, self.name, f'"{self.where}{key}" {problem}')

    def _get(self, key: str, kind: Callable[[object], T | None], default: T, what: str) -> T:
        value = self.data.get(key)
        if value is None:
            return default
        checked = kind(value)
        if checked is None:
            raise self.fail(key, f"is {shown(value)}: expected {what}")
        return checked

    def integer(self, key: str, low: int, high: int, default: int = 0) -> int:
        def check(value: object) -> int | None:
            if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
                return value
            return None

        return self._get(key, check, default, f"a whole number from {low} to {high}")

    def exit_code(self, key: str) -> int:
        value = self.data.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value not in _EXIT_CODES:
            raise self.fail(key, f'is {shown(value)}: expected one of testbed\'s exit codes (README "Exit codes")')
        return int(value)

    def number(self, key: str, low: float, high: float) -> float | None:
        def check(value: object) -> float | None:
            if isinstance(value, bool) or not isinstance(value, int | float):
                return None
            number = float(value)
            return number if math.isfinite(number) and low <= number <= high else None

        return self._get(key, check, None, f"a number from {low:g} to {high:g}")

    def text(self, key: str, pattern: re.Pattern[str] | None = None, width: int = 200, what: str = "") -> str:
        def check(value: object) -> str | None:
            if not isinstance(value, str) or len(value) > width or _CONTROL.search(value):
                return None
            return value if pattern is None or pattern.fullmatch(value) else None

        return self._get(key, check, "", what or f"one line of text (at most {width} characters)")

    def choice(self, key: str, allowed: tuple[str, ...], default: str) -> str:
        value = self.data.get(key, default)
        if value not in allowed:
            raise self.fail(key, f"is {shown(value)}: expected one of {', '.join(map(repr, allowed))}")
        return str(value)

    def run_id(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, str) and not _CONTROL.search(value):  # check_run_id's $ allows a trailing newline
            with contextlib.suppress(TestbedError):
                return check_run_id(value)
        raise self.fail(key, f"is {shown(value)}: expected a run id (lowercase letters, digits, '-')")

    def child(self, key: str) -> Fields | None:
        value = self.data.get(key)
        return None if value is None else Fields(self.folder, self.name, value, f"{self.where}{key}.")

    def children(self, key: str, most: int) -> list[Fields]:
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list) or len(value) > most:
            raise self.fail(key, f"is not a list of at most {most} entries")
        return [Fields(self.folder, self.name, item, f"{self.where}{key}[{n}].") for n, item in enumerate(value)]


def recorded_service_dir(folder: Path) -> str | None:
    """The service folder the shard measured (diagnostics/config.json "directory"): an absolute, normalised,
    single-line path, used only to map the shard's coverage paths onto this machine's service folder."""
    data = read_json(folder, CONFIG)
    if data is None:
        return None
    fields = Fields(folder, CONFIG, data)
    directory = fields.data.get("directory")
    if directory is None:
        return None
    if (
        not isinstance(directory, str)
        or not directory.startswith("/")
        or len(directory) > MAX_PATH
        or _CONTROL.search(directory)
    ):
        raise fields.fail("directory", f"is {shown(directory)}: expected an absolute path on one line")
    normal = os.path.normpath(directory)
    if normal == "/":
        raise fields.fail("directory", "is /: a service folder is never the root")
    return normal


def load_junit(folder: Path) -> junitparser.JUnitXml | None:
    """The shard's junit.xml, parsed (None when it has none: it stopped before its tests)."""
    data = read(folder, JUNIT)
    if data is None:
        return None
    try:
        xml = junit.load(data)
    except ValueError as exc:
        raise refusal(folder, JUNIT, str(exc)) from exc
    for suite in junit.suites(xml):
        for case in suite:
            try:
                seconds = case.time
            except ValueError:  # junitparser reads the attribute as a float
                seconds = math.nan
            if seconds is not None and not (math.isfinite(seconds) and 0 <= seconds <= MAX_SECONDS):
                problem = f"test {shown(case.name)} has time {shown(case._elem.get('time'))}"
                raise refusal(folder, JUNIT, f"{problem}: expected seconds from 0 to {MAX_SECONDS:g}")
    return xml


def read_durations(folder: Path, name: str) -> dict[str, float] | None:
    """A durations file of the shard (None when absent)."""
    data = read(folder, name)
    if data is None:
        return None
    try:
        return split.parse_durations(data.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise refusal(folder, name, str(exc) or "nested too deep") from exc


def check_path(folder: Path, name: str, path: object) -> str:
    """A file name from the shard's coverage data: one line, at most PATH_MAX."""
    if not isinstance(path, str) or not path or len(path) > MAX_PATH or _CONTROL.search(path):
        raise refusal(folder, name, f"names a measured file {shown(path)}: expected a path on one line")
    return path
