"""Read the JUnit XML file that a service's pytest run writes into the run folder.

junitparser reads the file (merge.py writes merged ones with it too); this module only adds what pytest's
files need on top: counts per ``<testcase>`` the way pytest's terminal summary counts them (a test that
fails and then errors in teardown counts once in each), and where each failure happened.

pytest writes ``file``/``line`` attributes only with ``junit_family=xunit1``; with the default
family the file is derived from the dotted ``classname`` and the line from the traceback text
(``path:LINE: ...`` entries, or ``File "path", line N`` with ``--tb=native``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any, cast

import junitparser

from testbed.core.xml_input import parse_xml

__all__ = ["Failure", "JUnitSummary", "load", "parse", "suites", "summarise"]

_MESSAGE_MAX = 500
_TRACE_LINE = re.compile(r"^(?P<path>[^\s:][^:\n]*?\.py):(?P<line>\d+):", re.MULTILINE)
_CRASHED = re.compile(r"worker '[^'\n]*' crashed while running ")
_NATIVE_LINE = re.compile(r'^\s*File "(?P<path>[^"\n]+\.py)", line (?P<line>\d+)', re.MULTILINE)
_ENCODING = re.compile(rb"""^(?:\xef\xbb\xbf)?\s*<\?xml[^>]*?\bencoding\s*=\s*["']([^"']*)["']""")


@dataclass(frozen=True)
class Failure:
    """One failed or errored test case."""

    test: str  # "classname::name"
    message: str  # first non-empty line of the failure message
    file: str | None = None  # as pytest printed it (relative to its rootdir when it could)
    line: int | None = None  # 1-based
    kind: str = "failure"  # "failure" or "error"


@dataclass(frozen=True)
class JUnitSummary:
    """Counts and failures of one JUnit file."""

    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    duration: float = 0.0
    failures: tuple[Failure, ...] = field(default=())
    problem: str | None = None  # set when the file was empty or not valid XML

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.errors + self.skipped

    def counts(self) -> dict[str, Any]:
        """The shape of ``report["tests"]``."""
        return {
            "passed": self.passed,
            "failed": self.failed,
            "errors": self.errors,
            "skipped": self.skipped,
            "duration": round(self.duration, 3),
        }


def parse(path: str | PurePath, *, root: str | PurePath | None = None) -> JUnitSummary | None:
    """Summarise the JUnit file at ``path``.

    Returns None when the file does not exist (the tests never ran), and a zero-count summary
    with ``problem`` set when it is empty or not well-formed (pytest killed while writing it).
    ``root`` is pytest's rootdir, used to tell which part of a dotted classname is the module.
    """
    file_path = Path(path)
    try:
        data = file_path.read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        return JUnitSummary(problem=f"{file_path} is a directory")
    try:
        xml = load(data)
    except ValueError as exc:
        return JUnitSummary(problem=f"{file_path} {exc}")
    return summarise(xml, root=root)


def load(data: bytes) -> junitparser.JUnitXml:
    """A JUnit report from bytes another process wrote (a test run's, a shard's): UTF-8 and no document type
    declaration, which pytest never writes and which is how entity bombs and external entities get in (with
    lxml installed junitparser parses with it, and lxml expands entities). ValueError says what is wrong."""
    if not data.strip():
        raise ValueError("is empty")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"is not UTF-8 (byte {exc.start})") from exc
    declared = _ENCODING.match(data)
    if declared and declared[1].lower() not in (b"utf-8", b"utf8"):
        raise ValueError(f"declares encoding {declared[1].decode('ascii', 'replace')!r}; pytest writes UTF-8")
    try:
        return _Report.fromroot(cast("junitparser.junitparser.Element", parse_xml(data)))
    except (SyntaxError, junitparser.JUnitXmlError) as exc:  # SyntaxError: ElementTree's ParseError
        raise ValueError(f"is not valid JUnit XML: {exc}") from exc


def suites(xml: junitparser.JUnitXml | junitparser.TestSuite) -> list[junitparser.TestSuite]:
    """The test suites of a report (junitparser before 5 returns a lone <testsuite> as the suite itself)."""
    return [xml] if isinstance(xml, junitparser.TestSuite) else list(xml)


class _Case(junitparser.TestCase):
    """pytest's xunit1 family adds where the test is defined."""

    file = junitparser.Attr("file")
    line = junitparser.Attr("line")


class _Suite(junitparser.TestSuite):
    testcase = _Case


class _Report(junitparser.JUnitXml):
    testsuite = _Suite


def summarise(xml: junitparser.JUnitXml, *, root: str | PurePath | None = None) -> JUnitSummary:
    """Counts and failures of a parsed report (`load`); `root` as for `parse`."""
    folder = Path(root) if root is not None else None
    passed = failed = errors = skipped = 0
    failures: list[Failure] = []
    every = suites(xml)
    for suite in every:
        for case in cast("Iterable[_Case]", suite):  # _Suite.testcase makes them _Case
            results = case.result
            failure = next((r for r in results if isinstance(r, junitparser.Failure)), None)
            error = next((r for r in results if isinstance(r, junitparser.Error)), None)
            if failure is not None:
                failed += 1
                failures.append(_failure(case, failure, "failure", folder))
            elif error is not None and _CRASHED.match(error.text or ""):
                # pytest-xdist's report for a test whose worker died ("node down"): its junit writer calls it
                # an error "on setup", its terminal summary (and testbed) a failure.
                failed += 1
                failures.append(_failure(case, error, "failure", folder))
            elif error is not None:
                errors += 1
                failures.append(_failure(case, error, "error", folder))
            elif results:
                skipped += 1
            else:
                passed += 1
    return JUnitSummary(
        passed=passed,
        failed=failed,
        errors=errors,
        skipped=skipped,
        duration=sum(_seconds(suite) for suite in every),
        failures=tuple(failures),
    )


def _seconds(suite: junitparser.TestSuite) -> float:
    """The suite's time (junitparser sums its cases' when the attribute is missing)."""
    try:
        return float(suite.time or 0.0)
    except ValueError:
        return 0.0


def _failure(case: _Case, result: junitparser.Failure | junitparser.Error, kind: str, root: Path | None) -> Failure:
    classname = case.classname or ""
    name = case.name or "?"
    text = result.text or ""
    file, line = _location(classname, case.file, case.line, text, root)
    crashed = _CRASHED.match(text)  # its message wraps the text in "failed on setup with …": say the text
    return Failure(
        test=f"{classname}::{name}" if classname else name,
        message=(_first_line(text) if crashed else _first_line(result.message or "")) or _first_line(text) or kind,
        file=file,
        line=line,
        kind=kind,
    )


def _first_line(text: str) -> str:
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped:
            return stripped if len(stripped) <= _MESSAGE_MAX else stripped[: _MESSAGE_MAX - 1] + "…"
    return ""


def _trace_entries(text: str) -> list[tuple[str, int]]:
    """``(path, 1-based line)`` of every traceback entry, in order."""
    found: list[tuple[int, str, int]] = [(m.start(), m["path"], int(m["line"])) for m in _TRACE_LINE.finditer(text)]
    found += [(m.start(), m["path"], int(m["line"])) for m in _NATIVE_LINE.finditer(text)]
    return [(p, n) for _, p, n in sorted(found)]


def _module_parts(path: str) -> tuple[str, ...]:
    return PurePath(path).with_suffix("").parts


def _location(
    classname: str, file_attr: str | None, line_attr: str | None, text: str, root: Path | None
) -> tuple[str | None, int | None]:
    entries = _trace_entries(text)
    file = file_attr or _file_from_trace(classname, entries) or _file_from_classname(classname, root)
    if file is None:
        # Nothing ties the test to a file: the first entry is where the traceback entered it.
        return (entries[0][0], entries[0][1]) if entries else (None, None)
    file = _relative(file, root)
    wanted = _module_parts(file)
    in_file = [n for p, n in entries if _module_parts(_relative(p, root))[-len(wanted) :] == wanted]
    if in_file:
        # The deepest entry in the test's own file is the line that failed there.
        return file, in_file[-1]
    if line_attr is not None and line_attr.isdigit():
        return file, int(line_attr) + 1  # xunit1's line is 0-based (the test's def line)
    return file, None


def _file_from_trace(classname: str, entries: list[tuple[str, int]]) -> str | None:
    """The traceback path whose module path is the longest leading part of ``classname``."""
    parts = tuple(classname.split(".")) if classname else ()
    best: tuple[int, str] | None = None
    for path, _ in entries:
        module = _module_parts(path)
        for size in range(len(parts), 0, -1):
            if module[-size:] == parts[:size]:
                if best is None or size > best[0]:
                    best = (size, path)
                break
    return best[1] if best else None


def _file_from_classname(classname: str, root: Path | None) -> str | None:
    if not classname:
        return None
    parts = classname.split(".")
    if root is not None:
        for size in range(len(parts), 0, -1):
            candidate = PurePath(*parts[:size]).with_suffix(".py")
            if (root / candidate).is_file():
                return candidate.as_posix()
    # Without a rootdir to look in: test classes are CamelCase, modules and packages are not.
    while len(parts) > 1 and parts[-1][:1].isupper():
        parts.pop()
    return PurePath(*parts).as_posix() + ".py"


def _relative(path: str, root: Path | None) -> str:
    pure = PurePath(path)
    if root is not None and pure.is_absolute():
        try:
            return pure.relative_to(root).as_posix()
        except ValueError:
            return path
    return path
