"""The installers: uv when it can be had, pip when asked or when there is none; testbed's cache where it is told."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.core import installers
from testbed.core.errors import ExitCode, TestbedError


@pytest.fixture
def no_uv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine without uv: none beside this Python is seen (PATH and the cache are empty)."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))
    monkeypatch.setenv("TESTBED_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(installers.sys, "executable", str(tmp_path / "bin" / "python"))


def test_the_cache_is_the_variable_s_or_xdg_s(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TESTBED_CACHE_DIR", str(tmp_path / "c"))
    assert installers.cache_home() == tmp_path / "c"
    monkeypatch.delenv("TESTBED_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert installers.cache_home() == tmp_path / "xdg" / "testbed"


@pytest.mark.usefixtures("no_uv")
def test_without_uv_pip_does_the_work(tmp_path: Path) -> None:
    assert installers.uv() is None
    assert installers.venv_argv(tmp_path / "v") == [str(tmp_path / "bin" / "python"), "-m", "venv", str(tmp_path / "v")]
    assert installers.pip_install_argv(tmp_path / "v" / "bin" / "python", "x==1")[1:] == [
        "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "x==1"]


@pytest.mark.usefixtures("no_uv")
def test_uv_in_the_cache_is_used_and_pip_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cached = tmp_path / "cache" / "tools" / "uv" / "bin" / "uv"
    cached.parent.mkdir(parents=True)
    cached.write_text("#!/bin/sh\n")
    cached.chmod(0o755)
    assert installers.uv() == str(cached)
    assert installers.venv_argv(tmp_path / "v")[:4] == [str(cached), "venv", "--quiet", "--seed"]
    monkeypatch.setenv(installers.INSTALLER_VARIABLE, "pip")
    assert installers.uv() is None


@pytest.mark.parametrize(("choice", "message"), [
    ("uv", "TESTBED_INSTALLER=uv but no uv is installed; pip install uv"),
    ("conda", "TESTBED_INSTALLER='conda': expected auto, uv or pip"),
])
@pytest.mark.usefixtures("no_uv")
def test_an_installer_that_cannot_be_had_is_one_line(
    monkeypatch: pytest.MonkeyPatch, choice: str, message: str
) -> None:
    monkeypatch.setenv(installers.INSTALLER_VARIABLE, choice)
    with pytest.raises(TestbedError) as caught:
        installers.uv()
    assert (str(caught.value), caught.value.exit_code) == (message, ExitCode.CONFIG)


@pytest.mark.usefixtures("no_uv")
def test_this_python_s_uv_comes_before_the_cache_s(tmp_path: Path) -> None:
    for uv in (tmp_path / "cache" / "tools" / "uv" / "bin" / "uv", tmp_path / "bin" / "uv"):
        uv.parent.mkdir(parents=True, exist_ok=True)
        uv.write_text("#!/bin/sh\n")
        uv.chmod(0o755)
    assert installers.uv() == str(tmp_path / "bin" / "uv")
