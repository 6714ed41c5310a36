"""The check that --run-folder can be made and written, run by many runs at once into one new folder (the
shards of one run do so): none may remove the folder from under another, and none leaves anything behind."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from testbed.cli.common import _usable_run_root
from testbed.core.errors import TestbedError


def test_checks_at_once_into_one_new_folder_all_pass_and_leave_nothing(tmp_path: Path) -> None:
    root = tmp_path / "runs" / "shards"
    failures: list[str] = []

    def check() -> None:
        for _ in range(300):
            try:
                _usable_run_root(root)
            except TestbedError as exc:
                failures.append(str(exc))

    threads = [threading.Thread(target=check) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_exists_is_kept_and_one_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    _usable_run_root(tmp_path / "runs")
    assert list(tmp_path.iterdir()) == [tmp_path / "runs"]
    assert list((tmp_path / "runs").iterdir()) == []
    (tmp_path / "file").write_text("")
    with pytest.raises(TestbedError, match=r"^--run-folder .*/file/runs: cannot create or write it \(.*not a folder\)"):
        _usable_run_root(tmp_path / "file" / "runs")
