#!/usr/bin/python
"""Ansible module testbed_record: record resources in the run's state file before they exist."""

from __future__ import annotations

DOCUMENTATION = r"""
module: testbed_record
short_description: Record resources (containers, networks) in the run's state file before they are created
version_added: 0.1.0
description:
  - Resources a playbook creates with other modules (C(community.docker)'s, say) are written into the run's state
    file before they exist, so teardown and C(testbed gc) find them even when the play stops between a resource's
    creation and its next task. Teardown removes only what carries the run's labels.
    M(testbed.pipeline.testbed_docker) records the run's own network and containers itself.
  - Recording a resource twice records it once; the module always reports no change.
  - Runs inside Ansible's worker on a local connection (C(plugins/action/)) and as a module on any other host;
    either way the C(testbed) Python package must be in the Python that runs it.
author: testbed (@testbed)
extends_documentation_fragment:
  - testbed.pipeline.testbed
  - testbed.pipeline.testbed.run_id
attributes:
  idempotent:
    support: full
options:
  resources:
    description:
      - The resources, as M(testbed.pipeline.testbed_preflight) returns them in
        RV(testbed.pipeline.testbed_preflight#module:records). Each is a dict with C(kind) (V(network) or
        V(container)) and C(name), and for a container the C(service) it serves.
    type: list
    elements: dict
    required: true
seealso:
  - module: testbed.pipeline.testbed_preflight
    description: Returns the resources to record.
  - module: community.docker.docker_container
    description: Creates the containers once they are recorded.
"""

EXAMPLES = r"""
- name: Record the run's network and containers before creating them
  testbed.pipeline.testbed_record:
    run_id: "{{ preflight_run.run_id }}"
    resources: "{{ preflight_run.records }}"
"""

RETURN = r"""
exit_code:
  description: testbed's exit code for the failure (10, a run that does not exist; 12, a full disk).
  returned: failure
  type: int
  sample: 10
"""

from collections.abc import Mapping
from typing import Any

from ansible.module_utils.basic import AnsibleModule

from testbed.ansible import module_shell
from testbed.phases import servers

SPEC = {
    "run_id": {"type": "str", "required": True},
    "resources": {"type": "list", "elements": "dict", "required": True},
}
CHANGED = False


def act(params: Mapping[str, Any]) -> dict[str, Any]:
    servers.record(params["run_id"], params["resources"])
    return {}


def main() -> None:
    module_shell.run(AnsibleModule(argument_spec=SPEC), act, CHANGED)


if __name__ == "__main__":
    main()
