"""What every ansible-runner call of testbed's passes: the environment, the arguments, its private data dir."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from testbed.core import files
from testbed.core.paths import KEPT_FILE, OWNER_FILE, runtime_root
from testbed.core.processes import ProcessIdentity
from testbed.core.supervisor import OWNER_VARIABLE

MAX_VERBOSITY = 2  # -vvv and above print decrypted lookup values
RUNNER_SETTINGS = {
    "pexpect_timeout": 0.1,
    # No stdout copy in the private folder: a full disk there would end ansible-runner's thread with a
    # traceback (the phase lines come from the events, not from that file).
    "suppress_output_file": True,
}


def runner_envvars(project: Path, verbose: int = 0, remote: bool = False) -> dict[str, str]:
    """The environment every playbook testbed drives gets: this project's ansible.cfg, this Python's
    ansible-playbook, verbosity capped, nothing that would print or keep decrypted values."""
    return {
        "ANSIBLE_CONFIG": str(project / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        # A user's shell cannot raise verbosity past -vv (which prints lookup values).
        "ANSIBLE_VERBOSITY": str(min(verbose, MAX_VERBOSITY)),
        "ANSIBLE_DEBUG": "0",
        "ANSIBLE_KEEP_REMOTE_FILES": "0",
        # ansible-runner finds ansible-playbook on PATH: use the one beside this Python.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        # ansible-runner turns host key checking off unless told: SSH hosts must be in known_hosts.
        **({"ANSIBLE_HOST_KEY_CHECKING": "True"} if remote else {}),
        # What the run's tests and install end with if this command is killed (testbed.core.supervisor).
        **({} if remote else {OWNER_VARIABLE: this_process()}),
    }


def this_process() -> str:
    identity = ProcessIdentity.of(os.getpid())
    return f"{os.getpid()}:{identity.start_time if identity else 0}"


def runner_arguments(
    private_dir: Path, project: Path, playbook: str, inventory: Path, envvars: dict[str, str]
) -> dict[str, Any]:
    """What every ansible-runner call of testbed's passes (benchmarks/runner_floor.py measures it bare), and
    its settings in the private folder's env/settings: ansible-runner drops a `settings` argument unless
    that file exists (it replaces the argument with {} when the file is missing)."""
    files.write(private_dir / "env" / "settings", json.dumps(RUNNER_SETTINGS), root=private_dir)
    return {
        "private_data_dir": str(private_dir),
        "project_dir": str(project),
        "playbook": playbook,
        "inventory": str(inventory),
        "envvars": envvars,
        "quiet": True,
        "suppress_env_files": True,
    }


def runner_private_dir(run_id: str, keep: bool = False, suffix: str = "") -> Path:
    """ansible-runner's private data dir (`runner-<run id><suffix>`), owned by this process: gc removes it once
    its owner is gone (a SIGKILL leaves it behind), unless it was kept on purpose."""
    private_dir = runtime_root() / f"runner-{run_id}{suffix}"
    private_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if keep:
        (private_dir / KEPT_FILE).touch()
    files.write(private_dir / OWNER_FILE, json.dumps(ProcessIdentity.of(os.getpid()).as_dict()))  # type: ignore[union-attr]
    return private_dir


def scrub_artifacts(private_dir: Path) -> None:
    """ansible-runner records the whole process environment in artifacts/<id>/command."""
    for command in private_dir.glob("artifacts/*/command"):
        command.unlink(missing_ok=True)
    shutil.rmtree(private_dir / "env", ignore_errors=True)
