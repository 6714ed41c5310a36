#!/usr/bin/python
"""Ansible module testbed_secret: Add one resolved secret value to the run's 0600 secrets file."""

from __future__ import annotations

DOCUMENTATION = r"""
module: testbed_secret
short_description: Add one resolved secret value to the run's 0600 secrets file.
description: A thin shell over the testbed package, which does the work (see src/testbed/).
author: testbed
"""

from ansible.module_utils.basic import AnsibleModule

from testbed import ansible_module, secrets

SPEC = {
    "run_id": {"type": "str", "required": True},
    "variable": {"type": "str", "required": True},
    "value": {"type": "raw", "no_log": True},
}


def main() -> None:
    ansible_module.run(
        AnsibleModule(argument_spec=SPEC),
        lambda p: {
            "present": secrets.write_secret(
                p["run_id"], p["variable"], p["value"] if isinstance(p["value"], str) else None
            )
        },
        changed=False,
    )


if __name__ == "__main__":
    main()
