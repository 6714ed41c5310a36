"""testbed_docker: run in Ansible's worker on this machine, as a module elsewhere (testbed.ansible.action)."""

from testbed.ansible.action import InProcessAction as ActionModule

__all__ = ["ActionModule"]
