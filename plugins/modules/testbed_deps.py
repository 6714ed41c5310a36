#!/usr/bin/python
"""Ansible module testbed_deps: Install the service's dependencies into a cached, isolated virtualenv."""

from __future__ import annotations

DOCUMENTATION = r"""
module: testbed_deps
short_description: Install the service's dependencies into a cached, isolated virtualenv
version_added: 0.1.0
description:
  - Installs the service's dependencies (C(install) in C(testbed.yml), V(auto) by default, Poetry when the service
    has C(poetry.lock) or a C([tool.poetry]) section, pip with a C(pyproject.toml) or C(requirements.txt)) into a
    virtualenv of testbed's cache (C(~/.cache/testbed/venvs/<service>-<fingerprint>)), made with uv when it is at
    hand, and records its Python in the run's state file for M(testbed.pipeline.testbed_pytest).
  - The fingerprint covers the install mode, the Python, the service's folder and its dependency files, so an
    unchanged service reuses its virtualenv (RV(cached)); concurrent runs of the same service wait for one install.
  - With C(install=none) (or V(auto) finding none of those files) the tests run with testbed's own Python.
  - Runs inside Ansible's worker on a local connection (C(plugins/action/)) and as a module on any other host;
    either way the C(testbed) Python package must be in the Python that runs it.
author: testbed (@testbed)
extends_documentation_fragment:
  - testbed.pipeline.testbed
  - testbed.pipeline.testbed.run_id
attributes:
  idempotent:
    support: full
    details:
      - Changed only when it installed.
seealso:
  - module: testbed.pipeline.testbed_pytest
    description: Runs the tests with the Python this module records.
"""

EXAMPLES = r"""
- name: Install the service's dependencies
  testbed.pipeline.testbed_deps:
    run_id: "{{ preflight_run.run_id }}"
"""

RETURN = r"""
python:
  description: The Python the tests run with.
  returned: success
  type: str
  sample: /home/ci/.cache/testbed/venvs/orders-3f2a9c1d0e4b5a67/bin/python
cached:
  description: Whether the virtualenv was reused (V(false) when it was installed now).
  returned: success
  type: bool
  sample: true
exit_code:
  description: testbed's exit code for the failure (10, an install that failed).
  returned: failure
  type: int
  sample: 10
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
