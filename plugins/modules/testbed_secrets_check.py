#!/usr/bin/python
"""Ansible module testbed_secrets_check: name every secret that did not resolve, never a value."""

from __future__ import annotations

DOCUMENTATION = r"""
module: testbed_secrets_check
short_description: "Name every secret that did not resolve, never a value."
description: A thin shell over the testbed package, which does the work (see src/testbed/).
author: testbed
"""

from collections.abc import Mapping
from typing import Any

from ansible.module_utils.basic import AnsibleModule

from testbed.ansible import module_shell
from testbed.phases import secrets

SPEC = {
    "run_id": {"type": "str", "required": True},
    "source": {"type": "str", "required": True, "choices": ["env", "ssm", "file"]},
    "specs": {"type": "list", "elements": "dict", "required": True},
    "results": {"type": "list", "elements": "dict", "default": []},
    "region": {"type": "str", "default": ""},
}
CHANGED = False


def act(params: Mapping[str, Any]) -> dict[str, Any]:
    return secrets.check_secrets(params)


def main() -> None:
    module_shell.run(AnsibleModule(argument_spec=SPEC), act, CHANGED)


if __name__ == "__main__":
    main()
