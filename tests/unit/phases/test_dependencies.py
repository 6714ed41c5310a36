"""The service's dependencies: how they install (Poetry, pip or none, as its files say) and the fingerprint that
keys its cached virtualenv on everything that changes what gets installed."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

from testbed.config.service import ServiceConfig, TestsSpec
from testbed.phases import dependencies


def _config(folder: Path, install: str = "auto") -> ServiceConfig:
    return ServiceConfig(name="svc", directory=folder, servers={}, migrations=None, tests=TestsSpec(),
                         install=install, secrets=[], env={})


@pytest.mark.parametrize(("files", "mode"), [
    ({}, "none"),
    ({"requirements.txt": "requests\n"}, "pip"),
    ({"pyproject.toml": "[project]\nname = 'svc'\n"}, "pip"),
    ({"pyproject.toml": "[tool.poetry]\nname = 'svc'\n"}, "poetry"),
    ({"poetry.lock": "", "requirements.txt": "x\n"}, "poetry"),
])
def test_auto_reads_the_service_s_files(tmp_path: Path, files: dict[str, str], mode: str) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert dependencies.install_mode(_config(tmp_path)) == mode
    assert dependencies.install_mode(_config(tmp_path, install="none")) == "none"  # said outright: as said


def test_the_fingerprint_follows_what_changes_the_install(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("requests\n")
    config = _config(tmp_path)
    first = dependencies.fingerprint(config, "pip")
    assert dependencies.fingerprint(config, "pip") == first
    (tmp_path / "README.md").write_text("not an input")
    assert dependencies.fingerprint(config, "pip") == first
    assert dependencies.fingerprint(config, "poetry") != first
    moved = dataclasses.replace(config, directory=tmp_path / "elsewhere")
    assert dependencies.fingerprint(moved, "pip") != first  # Poetry installs the service editable, from there
    (tmp_path / "requirements.txt").write_text("requests==2.0\n")
    assert dependencies.fingerprint(config, "pip") != first


def test_install_none_uses_testbed_s_own_python_as_it_is(tmp_path: Path) -> None:
    python, reused = dependencies.ensure(_config(tmp_path, install="none"))
    assert (python, reused) == (Path(sys.executable), True)  # nothing installed: reused as it is
