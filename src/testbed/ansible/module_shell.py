"""The shell every testbed Ansible module shares: parameters in, one phase function, one-line errors out."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from testbed.core.errors import ExitCode, TestbedError
from testbed.core.files import disk_full_of

if TYPE_CHECKING:
    from ansible.module_utils.basic import AnsibleModule

Act = Callable[[Mapping[str, Any]], dict[str, Any]]

_loaded: dict[str, ModuleType] = {}


def module_file(path: str) -> ModuleType:
    """A module file of the collection, loaded once: its SPEC, act and CHANGED (tests read its SPEC here too)."""
    if path not in _loaded:
        spec = importlib.util.spec_from_file_location(f"_testbed_module_{Path(path).stem}", path)
        if spec is None or spec.loader is None:
            raise ImportError(path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _loaded[path] = module
    return _loaded[path]


def in_process(module: ModuleType, args: Mapping[str, Any]) -> dict[str, Any]:
    """A module file's task run in this process: `args` validated against its SPEC (types, defaults) as
    AnsibleModule would, then its act; the result a module process would return."""
    # Ansible's own validator: the module file imported ansible.module_utils already, so this costs nothing more.
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator  # noqa: PLC0415

    validation = ArgumentSpecValidator(module.SPEC).validate(dict(args))
    if validation.error_messages:
        return {"failed": True, "msg": "; ".join(validation.error_messages)}
    return outcome(module.act, validation.validated_parameters, module.CHANGED)


def outcome(act: Act, params: Mapping[str, Any], changed: bool) -> dict[str, Any]:
    """The task's result: the phase function's, or `failed` with its one-line message and exit code."""
    try:
        result = act(params)
    except TestbedError as exc:
        return {"failed": True, "msg": str(exc), "exit_code": int(exc.exit_code), **exc.details}
    except OSError as exc:
        full = disk_full_of(exc)  # a write that did not go through testbed.core.files: still one line
        if full is None:
            return _internal(exc)
        return {"failed": True, "msg": str(full), "exit_code": int(full.exit_code), **full.details}
    except Exception as exc:
        return _internal(exc)
    result.setdefault("changed", changed)
    return result


def _internal(exc: Exception) -> dict[str, Any]:
    return {
        "failed": True,
        "msg": f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())}",
        "exit_code": int(ExitCode.INTERNAL_ERROR),
    }


def run(module: AnsibleModule, act: Act, changed: bool) -> None:
    """A module's main(), given its AnsibleModule (which the module file builds: Ansible picks how to ship a
    module by whether its own source imports ansible.module_utils)."""
    result = outcome(act, module.params, changed)
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)
