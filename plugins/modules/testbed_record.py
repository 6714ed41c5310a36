#!/usr/bin/python
"""Ansible module testbed_record: record resources in the run's state file before they exist."""

from __future__ import annotations

DOCUMENTATION = r"""
module: testbed_record
short_description: "Record resources (containers, networks) in the run's state file before they are created."
description: A thin shell over the testbed package, which does the work (see src/testbed/).
author: testbed
"""

from collections.abc import Mapping
from typing import Any

from ansible.module_utils.basic import AnsibleModule

from testbed.ansible import module_shell
from testbed.phases import servers

SPEC = {
    "run_id": {"type": "str", "required": True},
    "resources": {"type": "list", "elements": "dict", "required": True},
}
CHANGED = False


def act(params: Mapping[str, Any]) -> dict[str, Any]:
    servers.record(params["run_id"], params["resources"])
    return {}


def main() -> None:
    module_shell.run(AnsibleModule(argument_spec=SPEC), act, CHANGED)


if __name__ == "__main__":
    main()
