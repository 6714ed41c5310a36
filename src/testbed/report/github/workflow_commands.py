"""GitHub Actions workflow commands: masks, log groups and annotations, written to the job's stdout.

Workflow commands follow the runner's rules: data is escaped ``%``/CR/LF, property values also ``:`` and ``,``.
"""

# No `from __future__ import annotations`: it would clash with the public `annotations()`.
import contextlib
import io
import os
import stat
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO

from testbed.core.junit import Failure

ANNOTATION_LIMIT = 10  # GitHub shows at most 10 error annotations per step


def escape_data(value: str) -> str:
    """Escape a workflow command's message."""
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: str) -> str:
    """Escape a workflow command's property value."""
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


def _refuse_regular_file(stream: IO[str]) -> None:
    try:
        mode = os.fstat(stream.fileno()).st_mode
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return  # in-memory or closed-fd streams are not files on disk
    if stat.S_ISREG(mode):
        raise ValueError("mask commands carry secret values: write them to the job's stdout, not to a file")


def mask(values: Iterable[str | None], stream: IO[str] | None = None) -> int:
    """Tell the runner to mask each secret value in the log; returns how many masks were written.

    Multi-line values are masked line by line (the runner matches per line). Empty values are
    skipped: masking "" is an error for the runner. ``stream`` must be the job's real stdout.
    """
    out = sys.stdout if stream is None else stream
    _refuse_regular_file(out)
    seen: set[str] = set()
    for value in values:
        if not value:
            continue
        lines = value.splitlines() if ("\n" in value or "\r" in value) else [value]
        for line in lines:
            piece = line.strip()
            if piece and piece not in seen:
                seen.add(piece)
                out.write(f"::add-mask::{escape_data(piece)}\n")
    out.flush()
    return len(seen)


def begin_group(title: str, stream: IO[str] | None = None) -> None:
    out = sys.stdout if stream is None else stream
    out.write(f"::group::{escape_data(title)}\n")
    out.flush()


def end_group(stream: IO[str] | None = None) -> None:
    out = sys.stdout if stream is None else stream
    out.write("::endgroup::\n")
    out.flush()


@contextlib.contextmanager
def group(title: str, stream: IO[str] | None = None) -> Iterator[None]:
    """Fold everything written inside the block into one collapsible log group."""
    begin_group(title, stream)
    try:
        yield
    finally:
        end_group(stream)


def annotations(failures: Sequence[Failure], limit: int = ANNOTATION_LIMIT, *, path_prefix: str = "") -> list[str]:
    """``::error`` lines for the first ``limit`` failures, and a ``::notice`` for the rest.

    ``path_prefix`` turns pytest's paths (relative to the service) into repository paths.
    """
    limit = max(0, limit)
    lines: list[str] = []
    for failure in failures[:limit]:
        props: list[str] = []
        if failure.file:
            file = failure.file
            if path_prefix and not Path(file).is_absolute():
                file = f"{path_prefix.rstrip('/')}/{file}"
            props.append(f"file={escape_property(file)}")
            if failure.line is not None:
                props.append(f"line={failure.line}")
        props.append(f"title={escape_property(failure.test)}")
        lines.append(f"::error {','.join(props)}::{escape_data(failure.message)}")
    more = len(failures) - limit
    if more > 0:
        noun = "failure" if more == 1 else "failures"
        lines.append(f"::notice::{more} more {noun} not annotated (see the step summary and junit.xml)")
    return lines
