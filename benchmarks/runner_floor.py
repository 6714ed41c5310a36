"""What any playbook-driven command pays before its first task and after its last: a fresh Python
driving benchmarks/empty.yml through ansible-runner with the wrapper's own arguments. run.py times it."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import ansible_runner

from testbed.ansible.settings import runner_arguments, runner_envvars

PROJECT = Path(__file__).resolve().parents[1]


def main() -> int:
    private = Path(tempfile.mkdtemp(prefix="bench-runner-"))
    try:
        result = ansible_runner.run(
            **runner_arguments(private, PROJECT, str(PROJECT / "benchmarks" / "empty.yml"),
                               PROJECT / "inventory" / "hosts.yml", runner_envvars(PROJECT)),
            event_handler=lambda _event: True,
            ident="floor",
        )
        return 0 if result.rc == 0 else 1
    finally:
        shutil.rmtree(private, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
