#!/usr/bin/python
"""Ansible module testbed_preflight: validate the config, pick backend and ports, create the run's state."""

from __future__ import annotations

DOCUMENTATION = r"""
module: testbed_preflight
short_description: "Validate a service's config, pick backend and ports, and create the run's state file."
description: A thin shell over the testbed package, which does the work (see src/testbed/).
author: testbed
"""

from collections.abc import Mapping
from typing import Any

from ansible.module_utils.basic import AnsibleModule

from testbed.ansible import module_shell
from testbed.backends.choice import BACKENDS
from testbed.phases import preflight

SPEC = {
    "service_dir": {"type": "str", "required": True},
    "catalogue": {"type": "dict", "required": True},
    "backend": {"type": "str", "default": "auto", "choices": list(BACKENDS)},
    "ports": {"type": "str", "default": "fixed", "choices": list(preflight.PORT_MODES)},
    "run_id": {"type": "str", "default": ""},
    "run_root": {"type": "str", "required": True},
    "owner_pid": {"type": "int"},
    "lease_seconds": {"type": "int"},
    "images": {"type": "dict", "default": {}},
    "pull": {"type": "bool", "default": False},
    "workers": {"type": "str", "default": "0"},
}
CHANGED = True


def act(params: Mapping[str, Any]) -> dict[str, Any]:
    return preflight.open_run(params)


def main() -> None:
    module_shell.run(AnsibleModule(argument_spec=SPEC), act, CHANGED)


if __name__ == "__main__":
    main()
