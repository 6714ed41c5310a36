"""Capped logs: head and tail kept, a full disk named once while the old file stays whole, a log going on from an
earlier one."""

from __future__ import annotations

from pathlib import Path

from support import python_on_small_tmpfs
from testbed.core import files, logcap


def test_a_capped_log_keeps_its_head_and_tail(tmp_path: Path) -> None:
    path = tmp_path / "server.log"
    log = logcap.CappedLog(files.open_log_fd(path), path, head=100, tail=200)
    log.write(b"h" * 150)
    assert path.read_bytes() == b"h" * 150  # under the cap: as it comes
    for _ in range(100):
        log.write(b"m" * 50)
    log.write(b"t" * 200)
    log.close()
    data = path.read_bytes()
    marker = f"\n[testbed: {150 + 5000 + 200 - 300} bytes cut here; this log keeps its first".encode()
    assert data.startswith(b"h" * 100 + marker) and data.endswith(b"]\n" + b"t" * 200)
    assert logcap.head_and_tail(b"h" * 150 + b"m" * 5000 + b"t" * 200, 100, 200) == data  # a container's log


def test_a_full_disk_is_one_disk_full_and_the_old_file_stays_whole(tmp_path: Path) -> None:
    done = python_on_small_tmpfs(tmp_path, """
        import json
        from pathlib import Path
        from testbed.core import files
        folder = Path(FOLDER)
        files.write(folder / "state.json", json.dumps({"run_id": "x"}))
        try:
            with (folder / "filler").open("wb", buffering=0) as filler:
                while True:
                    filler.write(b"0" * 4096)
        except OSError:
            pass
        try:
            files.write(folder / "state.json", json.dumps({"run_id": "x", "more": "y" * 65536}))
        except files.DiskFull as full:
            print(full.exit_code, full)
        print(json.loads((folder / "state.json").read_text()))
        print(sorted(p.name for p in folder.iterdir()))
    """)
    assert done.returncode == 0, done.stderr
    code, state, names = done.stdout.splitlines()
    disk = tmp_path / "disk"
    assert code.startswith(f"12 no space left on device: the filesystem at {disk} (tmpfs, 64.0 KiB) is full "
                           f"(writing {disk / 'state.json'})")
    assert state == "{'run_id': 'x'}" and names == "['filler', 'state.json']"  # no temporary file left


def test_a_capped_log_goes_on_from_an_earlier_one(tmp_path: Path) -> None:
    """A server restarted on a new port (a lost port race) appends to its log; a new pump takes it up."""
    path = tmp_path / "server.log"
    first = logcap.CappedLog(files.open_log_fd(path), path, head=100, tail=200)
    first.write(b"a" * 250)
    first.close()
    again = logcap.CappedLog(files.open_log_fd(path), path, head=100, tail=200)
    again.write(b"b" * 100)
    again.close()
    data = path.read_bytes()
    assert data.startswith(b"a" * 100 + b"\n[testbed: 50 bytes cut here;") and data.endswith(b"a" * 100 + b"b" * 100)


def test_a_log_that_filled_its_disk_gives_back_room_for_the_run_s_records(tmp_path: Path) -> None:
    """The log fills a 64 KiB disk before reaching its head: cutting it back to the head would free nothing,
    so it gives back part of itself, and report.json can still be written whole."""
    done = python_on_small_tmpfs(tmp_path, """
        import json
        from pathlib import Path
        from testbed.core import files, logcap
        folder = Path(FOLDER)
        path = folder / "pytest.log"
        log = logcap.CappedLog(files.open_log_fd(path), path, head=1 << 20, tail=1 << 20)
        try:
            while True:
                log.write(b"x" * 1000 + b"\\n")
        except files.DiskFull as full:
            log.give_up(full.summary)
        log.close()
        files.write(folder / "report.json", json.dumps({"exit_code": 12, "pad": "r" * 4000}))
        print(json.loads((folder / "report.json").read_text())["exit_code"])
        print(path.read_bytes().rstrip().endswith(b"the rest of this log was dropped]"))
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["12", "True"]
