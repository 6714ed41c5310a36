"""What every playbook testbed drives gets: this project's ansible.cfg, capped verbosity, ansible-runner's
private folder (0700, owned, its settings file) and nothing of the environment left in its artifacts."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from testbed.ansible import settings
from testbed.core.paths import KEPT_FILE, OWNER_FILE
from testbed.core.supervisor import OWNER_VARIABLE


def test_a_local_run_s_environment(tmp_path: Path) -> None:
    env = settings.runner_envvars(tmp_path, verbose=5)
    assert env["ANSIBLE_CONFIG"] == str(tmp_path / "ansible.cfg")
    assert env["ANSIBLE_VERBOSITY"] == str(settings.MAX_VERBOSITY) == "2"  # -vvv would print lookup values
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
    assert env[OWNER_VARIABLE].startswith(f"{os.getpid()}:") and "ANSIBLE_HOST_KEY_CHECKING" not in env
    assert settings.runner_envvars(tmp_path, verbose=1)["ANSIBLE_VERBOSITY"] == "1"


def test_a_remote_run_checks_host_keys_and_has_no_local_owner(tmp_path: Path) -> None:
    env = settings.runner_envvars(tmp_path, remote=True)
    assert env["ANSIBLE_HOST_KEY_CHECKING"] == "True" and OWNER_VARIABLE not in env


def test_the_private_folder_is_ours_and_its_settings_are_there(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESTBED_RUNTIME_DIR", str(tmp_path / "root"))
    private = settings.runner_private_dir("r1", keep=True, suffix="-runner-1")
    assert private == tmp_path / "root" / "runner-r1-runner-1"
    assert stat.S_IMODE(private.stat().st_mode) == 0o700 and (private / KEPT_FILE).is_file()
    assert json.loads((private / OWNER_FILE).read_text())["pid"] == os.getpid()
    arguments = settings.runner_arguments(private, tmp_path, "playbooks/up.yml", tmp_path / "inv", {"A": "1"})
    assert arguments["suppress_env_files"] is True and arguments["private_data_dir"] == str(private)
    assert json.loads((private / "env" / "settings").read_text()) == settings.RUNNER_SETTINGS
    (private / "artifacts" / "abc").mkdir(parents=True)
    (private / "artifacts" / "abc" / "command").write_text('{"env": {"SECRET": "x"}}')
    settings.scrub_artifacts(private)
    assert not (private / "artifacts" / "abc" / "command").exists() and not (private / "env").exists()
