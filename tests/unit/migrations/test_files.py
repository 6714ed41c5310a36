"""Finding the migration files: numeric versions in order, checksums, the no-transaction marker, and what is refused."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from support import write_lines
from testbed.migrations.files import MigrationError, discover


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "migrations"
    path.mkdir()
    return path


def test_discover_sorts_by_numeric_version_and_reads_files(folder: Path) -> None:
    write_lines(folder, "10_ten.sql", "SELECT 10;")
    write_lines(folder, "2_two.sql", "-- a comment", "", "-- testbed:no-transaction", "SELECT 2;")
    write_lines(folder, "0001_one.sql", "SELECT 1;")
    write_lines(folder, "README.md", "not a migration")
    (folder / "subdir.sql").mkdir()

    found = discover(folder)

    assert [(m.version, m.name) for m in found] == [(1, "0001_one.sql"), (2, "2_two.sql"), (10, "10_ten.sql")]
    one = found[0]
    assert one.path == folder / "0001_one.sql"
    assert one.sql == "SELECT 1;\n"
    assert one.checksum == hashlib.sha256(b"SELECT 1;\n").hexdigest()
    assert [m.transactional for m in found] == [True, False, True]


def test_discover_empty_folder_is_fine(folder: Path) -> None:
    assert discover(folder) == []


def test_marker_after_sql_is_rejected(folder: Path) -> None:
    write_lines(folder, "1_late_marker.sql", "SELECT 1;", "-- testbed:no-transaction", "SELECT 2;")
    with pytest.raises(
        MigrationError, match=r"^1_late_marker\.sql line 2: .*must be among the comment lines"
    ):
        discover(folder)


def test_file_without_numeric_prefix_is_rejected(folder: Path) -> None:
    write_lines(folder, "1_ok.sql", "SELECT 1;")
    write_lines(folder, "create_users.sql", "SELECT 1;")
    with pytest.raises(MigrationError, match=r"create_users\.sql: .*numeric version"):
        discover(folder)
