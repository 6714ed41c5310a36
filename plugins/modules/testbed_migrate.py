#!/usr/bin/python
"""Ansible module testbed_migrate: Apply the service's SQL migrations in version order, once."""

from __future__ import annotations

DOCUMENTATION = r"""
module: testbed_migrate
short_description: "Apply the service's SQL migrations in version order, once."
description: A thin shell over the testbed package, which does the work (see src/testbed/).
author: testbed
"""

from collections.abc import Mapping
from typing import Any

from ansible.module_utils.basic import AnsibleModule

from testbed.ansible import module_shell
from testbed.phases import migrations

SPEC = {"run_id": {"type": "str", "required": True}}
CHANGED = True


def act(params: Mapping[str, Any]) -> dict[str, Any]:
    return migrations.migrate(params["run_id"]).as_result()


def main() -> None:
    module_shell.run(AnsibleModule(argument_spec=SPEC), act, CHANGED)


if __name__ == "__main__":
    main()
