"""Finding and reading a folder of migration files: names, numbering, encoding and the no-transaction marker.

The rules of testbed.migrations (see its docstring) that need no database: preflight checks a service's
files with them before any server starts, without loading psycopg."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEFAULT_SCHEMA", "NO_TRANSACTION_MARKER", "Migration", "MigrationError", "discover", "one_line"]

NO_TRANSACTION_MARKER = "-- testbed:no-transaction"
#: The schema holding the tracking table. Not ``testbed``: that is the catalogue's default database user, and
#: PostgreSQL's default search_path (``"$user", public``) would put a schema of that name first.
DEFAULT_SCHEMA = "testbed_migrations"

_BIGINT_MAX = 2**63 - 1
_VERSION_RE = re.compile(r"([0-9]+)")
_MARKER_RE = re.compile(r"[ \t]*--[ \t]*testbed:no-transaction(?:\s.*)?")
_HEADER_LINE_RE = re.compile(r"[ \t\f\v]*(?:--.*)?")


class MigrationError(Exception):
    """A migration could not be discovered or applied. The message is one line naming the file and cause."""


@dataclass(frozen=True)
class Migration:
    """One ``<version>_<name>.sql`` file. ``name`` is the file name; ``sql`` its text (UTF-8, no BOM)."""

    version: int
    name: str
    path: Path
    sql: str
    checksum: str
    transactional: bool


def one_line(message: str) -> str:
    return " ".join(message.split())


# --------------------------------------------------------------------------------------------- discovery


def discover(folder: Path) -> list[Migration]:
    """Read the ``*.sql`` files of ``folder``, sorted by version; MigrationError on a bad folder or file."""
    folder = Path(folder)
    if not folder.exists():
        raise MigrationError(f"migrations folder {folder} does not exist")
    if not folder.is_dir():
        raise MigrationError(f"migrations folder {folder} is not a directory")
    try:
        paths = sorted(p for p in folder.iterdir() if p.name.endswith(".sql") and p.is_file())
    except OSError as e:
        raise MigrationError(f"cannot list migrations folder {folder}: {one_line(e.strerror or str(e))}") from e

    by_version: dict[int, Migration] = {}
    problems: list[str] = []  # every bad file at once, in one line: fixing them one run at a time is slow
    for path in paths:
        try:
            migration = _read(path)
        except MigrationError as e:
            problems.append(str(e))
            continue
        other = by_version.get(migration.version)
        if other is not None:
            problems.append(f"duplicate migration version {migration.version}: {other.name} and {migration.name}")
            continue
        by_version[migration.version] = migration
    if problems:
        raise MigrationError("; ".join(problems))
    return [by_version[v] for v in sorted(by_version)]


def _read(path: Path) -> Migration:
    name = path.name
    match = _VERSION_RE.match(name)
    if match is None:
        raise MigrationError(f"{name}: migration file names must start with a numeric version, e.g. 0001_{name}")
    version = int(match.group(1))
    if version > _BIGINT_MAX:
        raise MigrationError(f"{name}: version {match.group(1)} does not fit in a bigint")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise MigrationError(f"{name}: cannot read: {one_line(e.strerror or str(e))}") from e
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise MigrationError(f"{name}: not valid UTF-8 (byte {e.start})") from e
    text = text.removeprefix("\ufeff")
    return Migration(
        version=version,
        name=name,
        path=path,
        sql=text,
        checksum=hashlib.sha256(data).hexdigest(),
        transactional=not _has_no_transaction_marker(name, text),
    )


def _has_no_transaction_marker(name: str, text: str) -> bool:
    in_header = True
    for number, line in enumerate(text.splitlines(), start=1):
        is_marker = _MARKER_RE.fullmatch(line) is not None
        if in_header and is_marker:
            return True
        in_header = in_header and _HEADER_LINE_RE.fullmatch(line) is not None
        if is_marker:
            raise MigrationError(
                f"{name} line {number}: {NO_TRANSACTION_MARKER!r} must be among the comment lines "
                "at the top of the file, before any SQL"
            )
    return False
