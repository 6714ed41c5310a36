"""What any playbook-driven command pays before its first task and after its last: a fresh Python
driving benchmarks/empty.yml through ansible-runner with the wrapper's settings. run.py times it."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import ansible_runner

PROJECT = Path(__file__).resolve().parents[1]


def main() -> int:
    private = tempfile.mkdtemp(prefix="bench-runner-")
    try:
        result = ansible_runner.run(
            private_data_dir=private,
            project_dir=str(PROJECT),
            playbook=str(PROJECT / "benchmarks" / "empty.yml"),
            inventory=str(PROJECT / "inventory" / "hosts.yml"),
            envvars={"ANSIBLE_CONFIG": str(PROJECT / "ansible.cfg"),
                     "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"},
            event_handler=lambda _event: True,
            quiet=True,
            suppress_env_files=True,
            settings={"pexpect_timeout": 0.1},
            ident="floor",
        )
        return 0 if result.rc == 0 else 1
    finally:
        shutil.rmtree(private, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
