#!/usr/bin/python
"""Ansible module testbed_pytest: Run the service's tests against the run's servers."""

from __future__ import annotations

DOCUMENTATION = r"""
module: testbed_pytest
short_description: "Run the service's tests against the run's servers."
description: A thin shell over the testbed package, which does the work (see src/testbed/).
author: testbed
"""

from collections.abc import Mapping
from typing import Any

from ansible.module_utils.basic import AnsibleModule

from testbed.ansible import module_shell
from testbed.parallel import split
from testbed.phases import tests

SPEC = {
    "run_id": {"type": "str", "required": True},
    "extra_args": {"type": "list", "elements": "str", "default": []},
    "shard": {"type": "str", "default": ""},
    "durations": {"type": "str", "default": ""},
    "workers": {"type": "str", "default": "0"},
    "reset": {"type": "bool", "default": True},
}
CHANGED = False


def act(params: Mapping[str, Any]) -> dict[str, Any]:
    split.record(params["run_id"], params["shard"], params["durations"])
    return tests.pytest_phase(params["run_id"], params["extra_args"], params["workers"], params["reset"])


def main() -> None:
    module_shell.run(AnsibleModule(argument_spec=SPEC), act, CHANGED)


if __name__ == "__main__":
    main()
