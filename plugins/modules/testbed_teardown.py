#!/usr/bin/python
"""Ansible module testbed_teardown: Tear a run down from its state file: containers, processes, networks, folders."""

from __future__ import annotations

DOCUMENTATION = r"""
module: testbed_teardown
short_description: "Tear a run down from its state file: containers, processes, networks, folders."
description: A thin shell over the testbed package, which does the work (see src/testbed/).
author: testbed
"""

from collections.abc import Mapping
from typing import Any

from ansible.module_utils.basic import AnsibleModule

from testbed.ansible import module_shell
from testbed.phases import teardown

SPEC = {"run_id": {"type": "str", "required": True}, "grace": {"type": "float", "default": 5.0}}
CHANGED = True


def act(params: Mapping[str, Any]) -> dict[str, Any]:
    return teardown.teardown_phase(params["run_id"], params["grace"]).as_result()


def main() -> None:
    module_shell.run(AnsibleModule(argument_spec=SPEC), act, CHANGED)


if __name__ == "__main__":
    main()
