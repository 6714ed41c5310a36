"""`testbed gc` and ansible-runner's private folders (`runner-<run id>`): one whose owner is gone goes; one
a wrapper has just made, before it wrote its owner file, stays (two runs starting at once: the first one's gc
must not pull the second's folder away). No process starts: the folders are what the wrapper writes."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from testbed.core.paths import OWNER_FILE
from testbed.core.processes import ProcessIdentity
from testbed.teardown import gc


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "runtime"
    root.mkdir(mode=0o700)
    monkeypatch.setenv("TESTBED_RUNTIME_DIR", str(root))
    monkeypatch.setenv("TESTBED_CACHE_DIR", str(tmp_path / "cache"))
    return root


def _private(runtime: Path, name: str, owner: int | None, age: float = 0.0) -> Path:
    folder = runtime / f"runner-{name}"
    folder.mkdir(mode=0o700)
    if owner is not None:
        identity = ProcessIdentity.of(owner)
        assert identity is not None
        (folder / OWNER_FILE).write_text(json.dumps(identity.as_dict()))
    then = time.time() - age
    os.utime(folder, (then, then))
    return folder


def test_gc_removes_a_private_folder_only_once_it_is_nobody_s(runtime: Path) -> None:
    mine = _private(runtime, "alive", os.getpid())
    being_made = _private(runtime, "starting", None)  # its wrapper is about to write the owner file
    abandoned = _private(runtime, "abandoned", None, age=3600)  # killed between the two
    gone = _private(runtime, "gone", None)
    (gone / OWNER_FILE).write_text(json.dumps({"pid": 1, "start_time": 1, "boot_id": "another boot"}))
    gc.gc()
    assert mine.is_dir() and being_made.is_dir()
    assert not abandoned.exists() and not gone.exists()
