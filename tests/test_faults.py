"""The fault-injection cases not covered beside their feature: each asserts its exit code, a one-line
message naming the cause, that nothing of the run is left, and that the suite's secret is nowhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import clean_env, cli, leftovers, run_folder_of, run_testbed, secret_hits

pytestmark = pytest.mark.slow


def _one_failure_line(output: str) -> str:
    failures = [line for line in output.splitlines() if line.startswith("❌")]
    assert len(failures) == 1, output
    return failures[0]


def test_missing_server_binary_fails_before_anything_starts(service: Path, runs: Path, tmp_path: Path) -> None:
    result = run_testbed(service, runs, env=clean_env(TESTBED_PG_BINDIR=str(tmp_path / "no-postgres-here")))
    assert result.returncode == 12, result.stdout
    line = _one_failure_line(result.stdout)
    assert "missing server binaries: PostgreSQL 15" in line and "setup-native" in line
    assert not runs.exists() or all(not leftovers(p.name) for p in runs.iterdir())
    assert secret_hits(result.stdout, result.stderr) == []


def test_hanging_test_is_stopped_by_the_per_test_timeout(service: Path, runs: Path) -> None:
    config = service / "testbed.yml"
    config.write_text(config.read_text().replace("  coverage: [basic_app]", "  coverage: [basic_app]\n  timeout: 2"))
    (service / "tests" / "test_hangs.py").write_text("import time\n\ndef test_hangs():\n    time.sleep(60)\n")
    result = run_testbed(service, runs)
    assert result.returncode == 1, result.stdout
    assert "❌ Tests: 4 passed, 1 failed" in _one_failure_line(result.stdout)
    folder = run_folder_of(result.stdout)
    assert "Timeout" in (folder / "junit.xml").read_text()
    assert leftovers(folder.name) == []
    assert secret_hits(folder, result.stdout, result.stderr) == []


def test_changed_migration_checksum_fails_naming_the_file(service: Path, runs: Path) -> None:
    up = cli("up", "--service", str(service), "--backend", "native", "--ports", "auto", "--run-folder", str(runs))
    assert up.returncode == 0, up.stdout + up.stderr
    run_id = next(runs.iterdir()).name
    try:
        (service / "migrations" / "0003_more.sql").write_text("ALTER TABLE items ADD COLUMN size int;\n")
        added = cli("up", "--service", str(service))
        assert added.returncode == 0 and "Applied successfully (1 new)" in added.stdout, added.stdout
        first = service / "migrations" / "0001_items.sql"
        first.write_text(first.read_text() + "-- edited after it was applied\n")
        changed = cli("up", "--service", str(service))
        assert changed.returncode == 13, changed.stdout
        line = _one_failure_line(changed.stdout)
        assert "0001_items.sql" in line and "checksum changed" in line
    finally:
        assert cli("down", "--service", str(service)).returncode == 0
    assert leftovers(run_id) == []
    assert secret_hits(runs, up.stdout, changed.stdout) == []


def test_secret_reaches_the_tests_and_nothing_else(service: Path, runs: Path) -> None:
    result = run_testbed(service, runs)
    assert result.returncode == 0, result.stdout
    folder = run_folder_of(result.stdout)
    assert "✅ Secrets: 1 resolved" in result.stdout
    assert secret_hits(folder, result.stdout, result.stderr) == []
    assert leftovers(folder.name) == []
