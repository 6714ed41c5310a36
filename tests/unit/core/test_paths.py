"""Where testbed keeps a run's files on this machine: a runtime root trusted only when it is ours and writable only
by us; the templates below it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from testbed.core import paths
from testbed.core.errors import ExitCode, TestbedError

NOBODY = 65534


def test_the_runtime_root_is_the_variable_s_or_one_per_user_in_the_temp_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TESTBED_RUNTIME_DIR", str(tmp_path / "mine"))
    assert paths.runtime_root() == tmp_path / "mine"
    assert paths.template_root() == tmp_path / "mine" / "templates"
    monkeypatch.delenv("TESTBED_RUNTIME_DIR")
    assert paths.runtime_root() == Path(tempfile.gettempdir()) / f"testbed-{os.getuid()}"


def test_a_fresh_root_is_made_0755_and_trusted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TESTBED_RUNTIME_DIR", str(tmp_path / "fresh"))
    root = paths.trusted_runtime_root()
    assert root == tmp_path / "fresh" and (root.stat().st_mode & 0o777) == 0o755


@pytest.mark.parametrize(("plant", "expected"), [
    ("writable", "is writable by group or others (mode 777); `chmod go-w "),
    ("foreign", f"belongs to uid {NOBODY}, not to you"),
    ("link", "is not a plain folder (a link or a file)"),
    ("file", "is not a plain folder (a link or a file)"),
])
def test_a_root_another_user_could_plant_in_is_refused(tmp_path: Path, plant: str, expected: str) -> None:
    root = tmp_path / "root"
    if plant == "file":
        root.write_text("")
    elif plant == "link":
        (tmp_path / "real").mkdir()
        root.symlink_to(tmp_path / "real")
    elif plant == "writable":
        root.mkdir()
        root.chmod(0o777)
    else:
        root.mkdir()
        os.chown(root, NOBODY, NOBODY)
    with pytest.raises(TestbedError) as caught:
        paths.check_trusted(root, "testbed's runtime folder")
    assert caught.value.exit_code == ExitCode.CONFIG
    assert str(caught.value).startswith(f"testbed's runtime folder {root} ") and expected in str(caught.value)
    assert "TESTBED_RUNTIME_DIR" in str(caught.value)


def test_owned_by_us_is_false_for_another_user_s_or_a_missing_path(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, NOBODY, NOBODY)
    assert paths.owned_by_us(tmp_path) and not paths.owned_by_us(theirs) and not paths.owned_by_us(tmp_path / "x")
