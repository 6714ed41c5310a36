#!/usr/bin/python
"""Ansible module testbed_pytest: Run the service's tests against the run's servers."""

from __future__ import annotations

DOCUMENTATION = r"""
module: testbed_pytest
short_description: "Run the service's tests against the run's servers."
description: A thin shell over the testbed package, which does the work (see src/testbed/).
author: testbed
"""

from ansible.module_utils.basic import AnsibleModule

from testbed import ansible_module, pipeline

SPEC = {"run_id": {"type": "str", "required": True}, "extra_args": {"type": "list", "elements": "str", "default": []}}


def main() -> None:
    ansible_module.run(
        AnsibleModule(argument_spec=SPEC), lambda p: pipeline.pytest_phase(p["run_id"], p["extra_args"]), changed=False
    )


if __name__ == "__main__":
    main()
