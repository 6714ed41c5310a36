"""testbed.core.files and what uses it: no write or scrub follows a symbolic link from a run's folder down, a rewrite
is whole or not at all, a full disk is one DiskFull naming the filesystem; testbed.core.logcap keeps a log's head and
tail. The full disks are real: a small tmpfs in a mount namespace of the test's own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support import python_on_small_tmpfs
from testbed.core import files
from testbed.core.errors import ExitCode
from testbed.core.redact import Redactor
from testbed.run.store import RunState
from testbed.teardown.teardown import _inside

VALUE = "a-secret-value-of-some-length"


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """What a link might point at (/etc/apt, say): a file holding the value."""
    folder = tmp_path / "victim"
    folder.mkdir()
    (folder / "sources.list").write_text(f"deb http://mirror/{VALUE} main\n")
    return folder


def _untouched(victim: Path) -> bool:
    return sorted(p.name for p in victim.iterdir()) == ["sources.list"] and VALUE in (
        victim / "sources.list"
    ).read_text()


def test_a_linked_folder_is_refused_naming_the_link(tmp_path: Path, victim: Path) -> None:
    run_folder = tmp_path / "run"
    run_folder.symlink_to(victim, target_is_directory=True)
    with pytest.raises(files.LinkRefused) as refused:
        files.write(run_folder / "report.json", "{}", root=run_folder)
    assert refused.value.exit_code == ExitCode.CONFIG
    assert str(refused.value).startswith(f"{run_folder} is a symbolic link (to {victim}): ")
    real = tmp_path / "real"
    real.mkdir()
    (real / "diagnostics").symlink_to(victim, target_is_directory=True)  # a folder on the way down
    with pytest.raises(files.LinkRefused):
        files.write(real / "diagnostics" / "config.json", "{}", root=real)
    (real / "pytest.log").symlink_to(victim / "sources.list")  # a log in a run folder
    with pytest.raises(files.LinkRefused):
        files.open_log_fd(real / "pytest.log", root=real)
    assert _untouched(victim)


def test_a_link_in_a_file_s_place_is_replaced_not_followed(tmp_path: Path, victim: Path) -> None:
    (tmp_path / "report.json").symlink_to(victim / "sources.list")
    files.write(tmp_path / "report.json", '{"ok": true}')
    assert not (tmp_path / "report.json").is_symlink()
    assert json.loads((tmp_path / "report.json").read_text()) == {"ok": True}
    assert _untouched(victim)


def test_scrubbing_follows_no_link(tmp_path: Path, victim: Path) -> None:
    redactor = Redactor([VALUE])
    run_folder = tmp_path / "run"
    (run_folder / "logs").mkdir(parents=True)
    (run_folder / "logs" / "server.log").write_text(f"said {VALUE}\n")
    (run_folder / "apt").symlink_to(victim, target_is_directory=True)
    (run_folder / "sources.list").symlink_to(victim / "sources.list")
    linked = tmp_path / "linked-run"
    linked.symlink_to(victim, target_is_directory=True)
    assert redactor.tree(linked) == []
    assert not redactor.file(linked / "sources.list")
    assert redactor.tree(run_folder) == [run_folder / "logs" / "server.log"]
    assert (run_folder / "logs" / "server.log").read_text() == "said ***\n"
    assert _untouched(victim)


def test_the_state_file_is_not_mirrored_into_a_linked_run_folder(
    tmp_path: Path, victim: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TESTBED_RUNTIME_DIR", str(tmp_path / "root"))
    run_folder = tmp_path / "runs" / "files-mirror"
    state = RunState.create("files-mirror", run_folder, None, {})
    run_folder.rename(run_folder.with_name("moved"))
    run_folder.symlink_to(victim, target_is_directory=True)
    state.record({"kind": "directory", "service": "x", "path": str(state.runtime_dir / "x")})
    assert state.load().resources  # the canonical copy is written
    assert _untouched(victim)
    planted = tmp_path / "runs" / "files-planted"
    planted.symlink_to(victim, target_is_directory=True)
    with pytest.raises(files.LinkRefused):
        RunState.create("files-planted", planted, None, {})
    assert _untouched(victim)


def test_teardown_removes_no_folder_reached_through_a_link(tmp_path: Path, victim: Path) -> None:
    run_folder = tmp_path / "run"
    run_folder.mkdir()
    (run_folder / "data").mkdir()
    assert _inside(run_folder / "data", (run_folder,))
    (run_folder / "etc").symlink_to(victim, target_is_directory=True)
    assert not _inside(run_folder / "etc" / "apt", (run_folder,))
    linked = tmp_path / "linked"
    linked.symlink_to(victim, target_is_directory=True)
    assert not _inside(linked / "sources.d", (linked,))




def test_scrubbing_on_a_full_disk_rewrites_in_place(tmp_path: Path) -> None:
    done = python_on_small_tmpfs(tmp_path, f"""
        from pathlib import Path
        from testbed.core.redact import Redactor
        folder = Path(FOLDER)
        (folder / "pytest.log").write_text("before {VALUE} after\\n")
        try:
            with (folder / "filler").open("wb", buffering=0) as filler:
                while True:
                    filler.write(b"0" * 4096)
        except OSError:
            pass
        print(Redactor([{VALUE!r}]).tree(folder))
        print((folder / "pytest.log").read_text(), end="")
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1] == "before *** after"


