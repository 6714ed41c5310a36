#!/usr/bin/python
"""Ansible module testbed_secret: Add one resolved secret value to the run's 0600 secrets file."""

from __future__ import annotations

DOCUMENTATION = r"""
module: testbed_secret
short_description: Add one resolved secret value to the run's 0600 secrets file.
description: A thin shell over the testbed package, which does the work (see src/testbed/).
author: testbed
"""

from collections.abc import Mapping
from typing import Any

from ansible.module_utils.basic import AnsibleModule

from testbed.ansible import module_shell
from testbed.run import secrets

SPEC = {
    "run_id": {"type": "str", "required": True},
    "variable": {"type": "str", "required": True},
    "value": {"type": "raw", "no_log": True},
}
CHANGED = False


def act(params: Mapping[str, Any]) -> dict[str, Any]:
    value = params["value"]
    return {
        "present": secrets.write_secret(params["run_id"], params["variable"], value if isinstance(value, str) else None)
    }


def main() -> None:
    module_shell.run(AnsibleModule(argument_spec=SPEC), act, CHANGED)


if __name__ == "__main__":
    main()
