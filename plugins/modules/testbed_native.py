#!/usr/bin/python
"""Ansible module testbed_native: Start the run's servers as native processes, recorded in its state file."""

from __future__ import annotations

DOCUMENTATION = r"""
module: testbed_native
short_description: "Start the run's servers as native processes, recorded in its state file."
description: A thin shell over the testbed package, which does the work (see src/testbed/).
author: testbed
"""

from collections.abc import Mapping
from typing import Any

from ansible.module_utils.basic import AnsibleModule

from testbed.ansible import module_shell
from testbed.phases import servers

SPEC = {"run_id": {"type": "str", "required": True}}
CHANGED = True


def act(params: Mapping[str, Any]) -> dict[str, Any]:
    return servers.start_native(params["run_id"])


def main() -> None:
    module_shell.run(AnsibleModule(argument_spec=SPEC), act, CHANGED)


if __name__ == "__main__":
    main()
