"""Coverage of a split: the shards' data copied into merge's own folder (its SQLite schema checked first),
combined through coverage.py's data API from measurements of the service's own Python sources only (each
shard's recorded service folder, checked, maps its paths onto this one's), and the XML and HTML reports made
in an isolated interpreter (`python -I`) in the service folder the user named, never a shard's."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from testbed.config.service import nearest_service_dir
from testbed.core.coverage_xml import coverage_percent
from testbed.core.errors import TestbedError
from testbed.shards.folder import (
    COVERAGE,
    check_path,
    read,
    refusal,
    shown,
)
from testbed.shards.schema import MAX_LINE

if TYPE_CHECKING:
    from testbed.shards.shard import Shard


@dataclass
class _Combined:
    """The shards' coverage data combined in merge's own folder: what was kept and what was dropped."""

    data: Path
    service_dir: Path
    kept: int = 0
    dropped: list[str] = field(default_factory=list)


def _service_dir(given: Path | None, shards: Sequence[Path]) -> Path:
    """The service folder whose sources the coverage reports show: --service, else the one merge runs in (as
    for every command). Never a folder a shard records: that would let a shard choose settings and files."""
    if given is None:
        try:
            given = nearest_service_dir(Path.cwd())
        except TestbedError:
            raise TestbedError(
                "merge: the shards measured coverage, and its reports need the service's sources: pass --service "
                "DIR (or run merge in the service's folder)"
            ) from None
    service = given.resolve()
    if not service.is_dir():
        raise TestbedError(f"merge: --service {given} is not a folder; pass the service's folder")
    inside = next((f for f in shards if service == f or service.is_relative_to(f)), None)
    if inside is not None:
        raise TestbedError(f"merge: the service folder {service} is in shard folder {inside}; pass --service DIR")
    return service


def _source(name: str, recorded: str | None, service: Path, avoid: Sequence[Path]) -> str | None:
    """The service's own Python source a shard's measured file is, here; None for anything else (a file
    outside the service folder, in a shard or the merged folder, not Python)."""
    root = str(service)
    if not Path(name).is_absolute():
        path = str(Path(root, name))  # relative_files: relative to the service folder
    elif recorded is not None and (name + "/").startswith(recorded + "/"):
        path = root + name[len(recorded) :]  # measured where the shard ran: here, the same file in this folder
    else:
        path = name
    path = os.path.normpath(path)
    if not path.endswith(".py") or not path.startswith(root + os.sep):
        return None
    real = Path(os.path.realpath(path))
    if not real.is_relative_to(service) or any(real.is_relative_to(a) for a in avoid):
        return None
    return str(real)


def combine(shards: Sequence[Shard], given: Path | None, scratch: Path, avoid: Sequence[Path]) -> _Combined | None:
    """The shards' coverage data as one data file in merge's folder: only the service's own Python sources, the
    shards' paths mapped onto this machine's service folder. None when no shard measured coverage."""
    from coverage import CoverageData  # noqa: PLC0415
    from coverage.exceptions import CoverageException  # noqa: PLC0415

    measured = [s for s in shards if s.coverage is not None]
    if not measured:
        return None
    service = _service_dir(given, [s.folder for s in shards])
    combined = _Combined(scratch / "combined.coverage", service)
    into = CoverageData(basename=str(combined.data))
    kept: set[str] = set()
    for item in measured:
        try:
            data = CoverageData(basename=str(item.coverage))
            data.read()
            lines: dict[str, set[int]] = {}
            arcs: dict[str, set[tuple[int, int]]] = {}
            for name in sorted(data.measured_files()):
                local = _source(check_path(item.folder, COVERAGE, name), item.recorded_dir, service, avoid)
                if local is None:
                    combined.dropped.append(name)
                elif data.has_arcs():
                    arcs.setdefault(local, set()).update(data.arcs(name) or ())
                else:
                    lines.setdefault(local, set()).update(data.lines(name) or ())
                if local is not None:
                    kept.add(local)
            if data.has_arcs():
                into.add_arcs(arcs)
            else:
                into.add_lines(lines)
        except (CoverageException, sqlite3.Error) as exc:
            raise refusal(item.folder, COVERAGE, f"coverage.py cannot combine it ({exc})") from exc
    combined.kept = len(kept)
    return combined


def coverage_reports(combined: _Combined, out: Path) -> float | None:
    """The combined data into `out`, then its XML and HTML reports from the service's own coverage settings:
    run in the service folder (its relative omit patterns and file names mean what they mean in one run), in
    an isolated interpreter (-I: neither that folder nor PYTHONPATH on sys.path), over data merge wrote."""
    data = out / "coverage.data"
    shutil.copyfile(combined.data, data)
    if not combined.kept:
        return None
    coverage = [sys.executable, "-I", "-m", "coverage"]
    steps = [
        [*coverage, "xml", "-i", f"--data-file={data}", "-o", str(out / "coverage.xml")],
        [*coverage, "html", "-i", f"--data-file={data}", "-d", str(out / "htmlcov")],
    ]
    for argv in steps:
        result = subprocess.run(argv, cwd=combined.service_dir, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            last = (result.stderr.strip() or result.stdout.strip()).splitlines() or ["no output"]
            raise TestbedError(f"merge: coverage {argv[4]} failed (exit {result.returncode}): {last[-1]}")
    return coverage_percent(out / "coverage.xml")


# The tables and automatic indexes of coverage.py's SQLite data file (coverage/sqldata.py, schema 7);
# anything else (a view, a trigger) is code the file would run when coverage.py reads it.
_COVERAGE_TABLES = frozenset({"coverage_schema", "meta", "file", "context", "line_bits", "arc", "tracer"})


def copy_coverage(folder: Path, dest: Path) -> bool:
    """The shard's coverage data copied to `dest` (a folder of merge's own), its schema checked: only
    coverage.py's tables, and numbers no line of code has. False when the shard has none."""
    with dest.open("xb") as out:
        found = read(folder, COVERAGE, into=out) is not None
    if not found:
        dest.unlink()
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"{dest.as_uri()}?mode=ro", uri=True)) as db:
            for kind, name in db.execute("SELECT type, name FROM sqlite_master"):
                if kind == "table" and name in _COVERAGE_TABLES:
                    # A generated column is an expression of the file's choosing, run on every read.
                    if any(column[6] for column in db.execute(f"PRAGMA table_xinfo({name})")):
                        raise refusal(folder, COVERAGE, f"table {name} has generated columns; coverage.py writes none")
                    continue
                if kind == "index" and str(name).startswith("sqlite_autoindex_"):
                    continue
                raise refusal(folder, COVERAGE, f"holds {kind} {shown(name)}, which coverage.py never writes")
            if _COVERAGE_TABLES - {name for (name,) in db.execute("SELECT name FROM sqlite_master")}:
                raise refusal(folder, COVERAGE, "lacks tables of coverage.py's data file")
            # Numbits are a bitmap of line numbers: a long one is a line no source file has (and a long decode).
            longest = db.execute("SELECT max(length(numbits)) FROM line_bits").fetchone()[0] or 0
            if longest > MAX_LINE // 8:
                raise refusal(folder, COVERAGE, f"records line numbers above {MAX_LINE}")
            far = "SELECT count(*) FROM arc WHERE abs(fromno) > ? OR abs(tono) > ?"
            if db.execute(far, (MAX_LINE, MAX_LINE)).fetchone()[0]:
                raise refusal(folder, COVERAGE, f"records line numbers above {MAX_LINE}")
    except sqlite3.Error as exc:
        raise refusal(folder, COVERAGE, f"is not coverage.py's data file ({exc})") from exc
    return True
