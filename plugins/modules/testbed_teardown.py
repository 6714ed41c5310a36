#!/usr/bin/python
"""Ansible module testbed_teardown: Tear a run down from its state file: containers, processes, networks, folders."""

from __future__ import annotations

DOCUMENTATION = r"""
module: testbed_teardown
short_description: "Tear a run down from its state file: containers, processes, networks, folders"
version_added: 0.1.0
description:
  - The teardown phase, from the run's state file alone. Saves each container's log into the run folder and removes
    the container (only one that carries the run's labels), stops the native servers (SIGTERM, then SIGKILL after
    O(grace)) and what the tests left running, removes the network, the servers' data and the run's secrets, and
    scrubs secret values out of the run folder.
  - What could not be removed stays recorded, the task fails with exit code 14 naming it, and C(testbed gc)
    retries. A run folder that became a symbolic link (exit code 10), or a full disk (12), fails the task although
    everything was removed.
  - A run torn down already leaves nothing to do and reports no change.
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
      - Changed only when something was removed.
options:
  run_id:
    description:
      - The run to tear down.
      - Without its state file (never written, or deleted by a test), what is left of the run is found from its
        runtime folder, the marker its processes carry and its containers' labels. A run that never existed is not
        an error.
  grace:
    description:
      - Seconds each process gets to stop after SIGTERM before SIGKILL.
    type: float
    default: 5.0
seealso:
  - module: testbed.pipeline.testbed_preflight
    description: Creates the state file teardown works from.
"""

EXAMPLES = r"""
- name: Run the pipeline, and always tear down
  block:
    - name: Run the service's tests
      testbed.pipeline.testbed_pytest:
        run_id: "{{ preflight_run.run_id }}"
  always:
    - name: Tear down the run
      testbed.pipeline.testbed_teardown:
        run_id: "{{ preflight_run.run_id }}"
        grace: 10
      when: preflight_run.run_id is defined
"""

RETURN = r"""
run_id:
  description: The run.
  returned: always
  type: str
  sample: local-20250101-120000-a1b2c3
removed:
  description: What was removed, each named by kind.
  returned: always
  type: list
  elements: str
  sample:
    - container testbed-local-20250101-120000-a1b2c3-postgres
    - process 48211
    - directory /tmp/testbed-1000/local-20250101-120000-a1b2c3/postgres
    - network testbed-local-20250101-120000-a1b2c3
left:
  description: What could not be removed (and why, where known); C(testbed gc) retries these.
  returned: always
  type: list
  elements: str
  sample: []
refused:
  description: What teardown could not do safely although nothing was left, one line each.
  returned: always
  type: list
  elements: str
  sample: []
ok:
  description: Whether nothing was left and nothing refused (V(false) only on failure).
  returned: always
  type: bool
  sample: true
exit_code:
  description: testbed's exit code for the failure (14 when something was left; else the refusal's, 10 for a link, 12
    for a full disk).
  returned: failure
  type: int
  sample: 14
"""

from collections.abc import Mapping
from typing import Any

from ansible.module_utils.basic import AnsibleModule

from testbed.ansible import module_shell
from testbed.phases import teardown

SPEC = {"run_id": {"type": "str", "required": True}, "grace": {"type": "float", "default": 5.0}}
CHANGED = True


def act(params: Mapping[str, Any]) -> dict[str, Any]:
    return teardown.teardown_phase(params["run_id"], params["grace"]).as_result()


def main() -> None:
    module_shell.run(AnsibleModule(argument_spec=SPEC), act, CHANGED)


if __name__ == "__main__":
    main()
