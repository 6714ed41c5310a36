#!/usr/bin/python
"""Ansible module testbed_deps: Install the service's dependencies into a cached, isolated virtualenv."""

from __future__ import annotations

DOCUMENTATION = r"""
module: testbed_deps
short_description: "Install the service's dependencies into a cached, isolated virtualenv."
description: A thin shell over the testbed package, which does the work (see src/testbed/).
author: testbed
"""

from collections.abc import Mapping
from typing import Any

from ansible.module_utils.basic import AnsibleModule

from testbed.ansible import module_shell
from testbed.phases import dependencies

SPEC = {"run_id": {"type": "str", "required": True}}
CHANGED = True


def act(params: Mapping[str, Any]) -> dict[str, Any]:
    return dependencies.install_dependencies(params["run_id"]).as_result()


def main() -> None:
    module_shell.run(AnsibleModule(argument_spec=SPEC), act, CHANGED)


if __name__ == "__main__":
    main()
