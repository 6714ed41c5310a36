"""testbed's modules run inside Ansible's own worker process when the host is this machine.

A module task otherwise starts a fresh Python that unzips Ansible's module_utils and compiles them from
source (about 0.15 s of CPU here, most of what a task costs); the worker already has Ansible and testbed
loaded, so the same task then costs what a `debug` task does. The module file stays the one definition:
its SPEC, its `act` and its CHANGED are used here as they are by its own main(). On any other host, and
with become, check mode or async, the module runs the usual way; `-e testbed_in_process=false` makes it
run that way here too (to rule the fast path out when chasing a problem).
"""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

from ansible.module_utils.common.json import Direction, get_module_encoder
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible.plugins.action.normal import ActionModule as NormalAction

from testbed.ansible import module_shell
from testbed.ansible.module_shell import module_file

__all__ = ["InProcessAction", "module_file"]


class InProcessAction(NormalAction):  # type: ignore[misc]
    """The action plugin behind every testbed module (plugins/action/testbed_*.py)."""

    def run(self, tmp: str | None = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        wanted = self._templar.template((task_vars or {}).get("testbed_in_process", True))
        module = self._in_process_module() if boolean(wanted, strict=False) else None
        if module is None:
            return super().run(tmp, task_vars)  # type: ignore[no-any-return]
        result: dict[str, Any] = ActionBase.run(self, tmp, task_vars)
        # Plain values, as a module process would receive them (the task's are Ansible's tagged types).
        encoder = get_module_encoder("legacy", Direction.CONTROLLER_TO_MODULE)
        args = json.loads(json.dumps(self._task.args, cls=encoder))
        result.update(module_shell.in_process(module, args))
        return result

    def _in_process_module(self) -> ModuleType | None:
        """The module file, loaded here, when this task may run in this process; None otherwise."""
        task = self._task
        if self._connection.transport != "local" or self._play_context.become or task.check_mode or task.async_val:
            return None
        context = self._shared_loader_obj.module_loader.find_plugin_with_context(
            task.action, collection_list=task.collections
        )
        if not context.resolved or not context.plugin_resolved_path:
            return None
        try:
            return module_file(context.plugin_resolved_path)
        except ImportError:  # what the module imports is not here; the target's Python may have it
            return None
