"""The fault-injection cases not covered beside their feature: each asserts its exit code, a one-line
message naming the cause, that nothing of the run is left, and that the suite's secret is nowhere."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import (
    FIXTURES,
    clean_env,
    cli,
    leftovers,
    run,
    run_folder_of,
    run_testbed,
    run_testbed_argv,
    secret_hits,
    unique_run_id,
)

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


# --- issue 23: run folders that are (or become) links, full disks ---------------------------------------

MiB = 1024 * 1024


@pytest.fixture
def survivors(tmp_path: Path) -> Path:
    """The service whose tests misbehave on purpose (tests/fixtures/services/survivors)."""
    target = tmp_path / "survivors"
    shutil.copytree(FIXTURES / "services" / "survivors", target)
    return target


@pytest.fixture
def runtime_root() -> Iterator[Path]:
    """A folder for TESTBED_RUNTIME_DIR that the servers' account can reach (pytest's tmp_path is 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="testbed-small-root-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(f"{folder}.out", ignore_errors=True)


def _on_small_disk(size: str, folder: Path, argv: list[str], env: dict[str, str], *,
                   filled: bool = False) -> subprocess.CompletedProcess[str]:
    """argv with a tmpfs of `size` on `folder`, in a mount namespace of its own (the tmpfs goes with it; what
    it held is copied to <folder>.out for the test to read); `filled`: full before argv starts."""
    script = (
        'size=$1 dir=$2 filled=$3; shift 3; mount -t tmpfs -o "size=$size,mode=0755" tmpfs "$dir" || exit 99; '
        'if [ "$filled" = 1 ]; then dd if=/dev/zero of="$dir/filler" bs=4k 2>/dev/null; fi; '
        '"$@"; rc=$?; mkdir -p "$dir.out"; cp -a "$dir/." "$dir.out/"; exit $rc'
    )
    folder.mkdir(parents=True, exist_ok=True)
    return run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", size, str(folder),
                "1" if filled else "0", *argv], env=env)


def _unreadable(folder: Path) -> list[str]:
    """Every JSON and XML file under `folder` that does not parse: testbed's files are whole or absent."""
    bad = []
    for path in folder.rglob("*"):
        try:
            if path.suffix == ".json" and path.is_file() and not path.is_symlink():
                json.loads(path.read_text(encoding="utf-8"))
            elif path.suffix == ".xml" and path.is_file() and not path.is_symlink():
                ET.parse(path)
        except (ValueError, ET.ParseError) as exc:
            bad.append(f"{path}: {exc}")
    return bad


def test_test_output_filling_the_run_folder_s_disk_is_named_at_once(survivors: Path, runs: Path) -> None:
    """8 MB of output on a 2 MiB filesystem: stopped when pytest.log's write fails (not at tests.deadline),
    one line naming the filesystem, exit 12, torn down; every file testbed wrote parses."""
    config = survivors / "testbed.yml"
    config.write_text(config.read_text().replace("  paths: [tests]\n", "  paths: [tests]\n  deadline: 300\n"))
    run_id = unique_run_id("disk-output")
    argv = run_testbed_argv(survivors, runs, "--", "-k", "prints_a_lot", "-s", run_id=run_id)
    result = _on_small_disk("2m", runs, argv, clean_env(SURVIVORS_RUN_ROOT=str(runs), SURVIVORS_PRINT_MB="8"))
    assert result.returncode == 12, result.stdout + result.stderr
    line = _one_failure_line(result.stdout)
    assert line.startswith(f"❌ Tests: no space left on device: the filesystem at {runs} (tmpfs, 2.0 MiB) is full "
                           f"(writing {runs / run_id / 'pytest.log'})"), line
    assert "Traceback" not in result.stdout + result.stderr
    kept = Path(f"{runs}.out") / run_id
    assert (kept / "pytest.log").read_bytes().rstrip().endswith(b"the rest of this log was dropped]")
    assert json.loads((kept / "report.json").read_text())["exit_code"] == 12
    assert _unreadable(kept) == [] and leftovers(run_id) == []


def test_pytest_log_keeps_its_head_and_tail(survivors: Path, runs: Path) -> None:
    """12 MB of output: pytest.log keeps the first 2 MiB and the last 8 MiB, and says what was cut."""
    run_id = unique_run_id("disk-capped")
    result = run_testbed(survivors, runs, "--", "-k", "prints_a_lot", "-s", run_id=run_id,
                         env=clean_env(SURVIVORS_RUN_ROOT=str(runs), SURVIVORS_PRINT_MB="12"))
    assert result.returncode == 0, result.stdout + result.stderr
    log = (runs / run_id / "pytest.log").read_bytes()
    assert 10 * MiB < len(log) < 10 * MiB + 1024
    assert b"line 00000000 " in log[: 2 * MiB] and b"the last line" in log[-8 * MiB :]
    assert b" bytes cut here; this log keeps its first 2 MiB and its last 8 MiB]" in log
    assert leftovers(run_id) == []


CHATTY = """\
import os, socket, sys

listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", int(sys.argv[1])))
os.write(1, b"first line\\n")
for _ in range(50 * 1024):  # 50 MB, as fast as it goes
    os.write(1, b"x" * 1023 + b"\\n")
os.write(1, b"last line\\n")
listener.listen()
while True:
    listener.accept()[0].close()
"""


def _chatty_service(tmp_path: Path) -> Path:
    """A service with one declared server that writes 50 MB to its log before it listens."""
    service = tmp_path / "chatty"
    (service / "tests").mkdir(parents=True)
    (service / "chatty.py").write_text(CHATTY)
    (service / "tests" / "test_chatty.py").write_text("def test_passes():\n    pass\n")
    (service / "testbed.yml").write_text(
        "name: chatty\nservers:\n  - chatty:\n      port: 15999\n"
        f"      native: {{command: [{sys.executable}, {service / 'chatty.py'}, \"{{{{ port }}}}\"]}}\n"
        "tests:\n  paths: [tests]\ninstall: none\n"
    )
    return service


def test_a_declared_server_flooding_its_log_is_capped(tmp_path: Path, runs: Path) -> None:
    run_id = unique_run_id("disk-flood")
    result = run_testbed(_chatty_service(tmp_path), runs, run_id=run_id)
    assert result.returncode == 0, result.stdout + result.stderr
    log = (runs / run_id / "logs" / "chatty.log").read_bytes()
    assert 5 * MiB < len(log) < 5 * MiB + 1024
    assert log.startswith(b"first line\n") and log.endswith(b"last line\n")
    assert b" bytes cut here; this log keeps its first 1 MiB and its last 4 MiB]" in log
    assert leftovers(run_id) == []


def test_a_declared_server_filling_the_run_folder_s_disk_is_named(tmp_path: Path, runs: Path) -> None:
    """The log pump cannot write: the server goes on (its output is dropped), readiness names the disk."""
    run_id = unique_run_id("disk-floodfull")
    result = _on_small_disk("2m", runs, run_testbed_argv(_chatty_service(tmp_path), runs, run_id=run_id), clean_env())
    assert result.returncode == 12, result.stdout + result.stderr
    line = _one_failure_line(result.stdout)
    assert line.startswith(f"❌ Readiness: no space left on device: the filesystem at {runs} (tmpfs, 2.0 MiB) is "
                           f"full (writing {runs / run_id / 'logs' / 'chatty.log'})"), line
    assert "Traceback" not in result.stdout + result.stderr
    assert _unreadable(Path(f"{runs}.out")) == [] and leftovers(run_id) == []


@pytest.mark.parametrize("size", ["16m", "256k"], ids=["too-small-for-postgres", "full-before-the-run"])
def test_a_full_runtime_folder_is_named_and_leaves_nothing(survivors: Path, runs: Path, runtime_root: Path,
                                                           size: str) -> None:
    root = runtime_root
    run_id = unique_run_id("disk-root")
    argv = run_testbed_argv(survivors, runs, "--", "-k", "passes", run_id=run_id)
    result = _on_small_disk(size, root, argv, clean_env(TESTBED_RUNTIME_DIR=str(root)), filled=size == "256k")
    assert result.returncode == 12, result.stdout + result.stderr
    said = [line for line in (result.stdout + result.stderr).splitlines() if "no space left on device" in line]
    assert len(said) == 1 and f"the filesystem at {root} (tmpfs, " in said[0], result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    left = {p.name for p in Path(f"{root}.out").iterdir()} - {"templates", "filler"}
    assert left == set(), left  # no run's folder, no private folder
    assert leftovers(run_id) == []


def test_a_test_filling_the_runtime_folder_is_named(survivors: Path, runs: Path, runtime_root: Path) -> None:
    """Full while Ansible writes its events there: one line naming the disk (whichever part noticed), exit 12."""
    root = runtime_root
    run_id = unique_run_id("disk-filled")
    argv = run_testbed_argv(survivors, runs, "--", "-k", "fills_the_runtime_folder", run_id=run_id)
    result = _on_small_disk("128m", root, argv, clean_env(TESTBED_RUNTIME_DIR=str(root)))
    assert result.returncode == 12, result.stdout + result.stderr
    line = _one_failure_line(result.stdout)
    assert f"no space left on device: the filesystem at {root} (tmpfs, 128.0 MiB) is full" in line, line
    assert "Traceback" not in result.stdout + result.stderr
    assert [p.name for p in Path(f"{root}.out").iterdir()] in ([], ["templates"])
    assert _unreadable(runs) == [] and leftovers(run_id) == []


def _linked_run(survivors: Path, runs: Path, victim: Path, run_id: str,
                *extra: str) -> subprocess.CompletedProcess[str]:
    """A run whose secret is in the victim folder's file, as a link's target might hold anything."""
    value = "victim-" + secrets.token_hex(8)
    victim.mkdir()
    (victim / "sources.list").write_text(f"deb http://mirror/{value} main\n")
    config = survivors / "testbed.yml"
    config.write_text(config.read_text() + "secrets:\n  BASIC_TOKEN:\n    parameter: /p\n")
    return run_testbed(survivors, runs, *extra, run_id=run_id,
                       env=clean_env(SURVIVORS_RUN_ROOT=str(runs), SURVIVORS_VICTIM=str(victim), BASIC_TOKEN=value))


def test_a_run_folder_that_becomes_a_link_is_not_written_through(survivors: Path, runs: Path,
                                                                  tmp_path: Path) -> None:
    """A test replaces its run folder with a link: teardown scrubs nothing and writes no state there."""
    victim = tmp_path / "victim"
    run_id = unique_run_id("disk-link")
    result = _linked_run(survivors, runs, victim, run_id, "--", "-k", "links_its_run_folder")
    assert result.returncode == 10, result.stdout + result.stderr
    line = _one_failure_line(result.stdout)
    assert line == (f"❌ Teardown: {runs / run_id} is a symbolic link (to {victim}): testbed follows no link in a "
                    "run's folders, so nothing was written or scrubbed through it; remove the link"), line
    assert "deb http://mirror/victim-" in (victim / "sources.list").read_text()  # not scrubbed
    # pytest's own reports (its command line names the run folder) went where the link points; nothing of testbed's
    assert {p.name for p in victim.iterdir()} <= {"sources.list", "junit.xml", "durations.json"}
    assert (runs / f"{run_id}.moved" / "pytest.log").is_file()
    assert leftovers(run_id) == []


def test_a_run_folder_that_is_a_link_is_refused_before_anything(survivors: Path, runs: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    run_id = unique_run_id("disk-planted")
    runs.mkdir()
    (runs / run_id).symlink_to(victim, target_is_directory=True)
    result = _linked_run(survivors, runs, victim, run_id, "--", "-k", "passes")
    assert result.returncode == 10, result.stdout + result.stderr
    line = _one_failure_line(result.stdout)
    assert line.startswith(f"❌ Preflight: {runs / run_id} is a symbolic link (to {victim}): "), line
    assert [p.name for p in victim.iterdir()] == ["sources.list"]
    assert "deb http://mirror/victim-" in (victim / "sources.list").read_text()
    assert leftovers(run_id) == []
