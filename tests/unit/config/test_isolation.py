"""tests.isolation and a declared server's `reset:` in testbed.yml: validated at load, each problem in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.config_files import config_problem, load_config
from testbed.config import service


def _problem(tmp_path: Path, text: str) -> str:
    return config_problem(tmp_path, text).split(": ", 1)[1]  # without the file's path


@pytest.mark.parametrize("isolation", ["run", "worker", "test"])
def test_each_isolation_is_taken_and_survives_the_state_file(tmp_path: Path, isolation: str) -> None:
    loaded = load_config(tmp_path, f"tests: {{isolation: {isolation}}}\n")
    assert loaded.tests.isolation == isolation
    assert service.ServiceConfig.from_dict(loaded.as_dict()).tests.isolation == isolation


def test_the_default_is_worker_and_a_state_file_without_the_key_reads_as_worker(tmp_path: Path) -> None:
    data = load_config(tmp_path, "name: plain\n").as_dict()
    assert data["tests"].pop("isolation") == "worker"
    assert service.ServiceConfig.from_dict(data).tests.isolation == "worker"


@pytest.mark.parametrize(("text", "expected"), [
    ("tests: {isolation: each}\n", "'tests.isolation' must be one of run, worker, test, got 'each'"),
    ("tests: {isolation: 1}\n", "'tests.isolation' must be a string, got int"),
])
def test_a_bad_isolation_is_named(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in _problem(tmp_path, text)


_DECLARED = """\
    servers:
      - box:
          port: 15999
          native: {{command: [box-server]}}
          {extra}
    """


@pytest.mark.parametrize(("extra", "expected"), [
    ("reset: flush", "'servers.box.reset' (run before each test with tests.isolation: test) must be a list of strings"),
    ("reset: []", "'servers.box.reset' (run before each test with tests.isolation: test) must be a list of strings"),
    ("{reset: [box-flush], workers: shared}",
     "'servers.box.reset' with 'workers: shared' resets the server under other workers' tests: drop one"),
])
def test_a_bad_reset_command_is_named(tmp_path: Path, extra: str, expected: str) -> None:
    text = _DECLARED.format(extra=extra) if not extra.startswith("{") else (
        "servers:\n  - box: {port: 15999, native: {command: [box-server]}, " + extra[1:] + "\n")
    assert expected in _problem(tmp_path, text)


def test_a_reset_command_is_kept_and_its_templates_checked(tmp_path: Path) -> None:
    loaded = load_config(tmp_path, _DECLARED.format(extra='reset: [box-flush, "{{ host }}:{{ port }}"]'))
    assert loaded.servers["box"]["reset_command"] == ["box-flush", "{{ host }}:{{ port }}"]
