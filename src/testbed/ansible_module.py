"""The shell every testbed Ansible module shares: parameters in, one phase function, one-line errors out."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ansible.module_utils.basic import AnsibleModule

from testbed.errors import ExitCode, TestbedError


def run(
    module: AnsibleModule,
    action: Callable[[Mapping[str, Any]], dict[str, Any]],
    changed: bool = True,
) -> None:
    try:
        result = action(module.params)
    except TestbedError as exc:
        module.fail_json(msg=str(exc), exit_code=int(exc.exit_code), **exc.details)
    except Exception as exc:
        module.fail_json(
            msg=f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())}",
            exit_code=int(ExitCode.INTERNAL_ERROR),
        )
    result.setdefault("changed", changed)
    module.exit_json(**result)
