"""A testbed.yml written into a folder and loaded as testbed loads it, or the one-line problem it is refused with."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from testbed.config import catalogue, service
from testbed.core.errors import ExitCode, TestbedError

CATALOGUE = catalogue.load_catalogue()


def load_config(folder: Path, text: str) -> service.ServiceConfig:
    (folder / "testbed.yml").write_text(textwrap.dedent(text), encoding="utf-8")
    return service.load_service_config(folder, CATALOGUE)


def config_problem(folder: Path, text: str) -> str:
    """The error a testbed.yml of `text` is refused with: exit 10, one line."""
    with pytest.raises(TestbedError) as caught:
        load_config(folder, text)
    assert caught.value.exit_code == ExitCode.CONFIG
    message = str(caught.value)
    assert "\n" not in message
    return message
