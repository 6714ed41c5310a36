"""testbed_preflight: run in Ansible's worker on this machine, as a module elsewhere (testbed.ansible_action)."""

from testbed.ansible_action import InProcessAction as ActionModule

__all__ = ["ActionModule"]
