#!/usr/bin/python
"""Ansible module testbed_ready: Wait until every server of the run answers its real protocol."""

from __future__ import annotations

DOCUMENTATION = r"""
module: testbed_ready
short_description: "Wait until every server of the run answers its real protocol."
description: A thin shell over the testbed package, which does the work (see src/testbed/).
author: testbed
"""

from collections.abc import Mapping
from typing import Any

from ansible.module_utils.basic import AnsibleModule

from testbed.ansible import module_shell
from testbed.phases import readiness

SPEC = {
    "run_id": {"type": "str", "required": True},
    "timeout": {"type": "float", "default": 60.0},
}
CHANGED = False


def act(params: Mapping[str, Any]) -> dict[str, Any]:
    return readiness.ready(params["run_id"], params["timeout"]).as_result()


def main() -> None:
    module_shell.run(AnsibleModule(argument_spec=SPEC), act, CHANGED)


if __name__ == "__main__":
    main()
