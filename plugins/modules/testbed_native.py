#!/usr/bin/python
"""Ansible module testbed_native: Start the run's servers as native processes, recorded in its state file."""

from __future__ import annotations

DOCUMENTATION = r"""
module: testbed_native
short_description: Start the run's servers as native processes, recorded in its state file
version_added: 0.1.0
description:
  - The servers phase on the native backend. Starts every server of the run that is not running yet, all at once
    (PostgreSQL from a template cluster kept per binary, user, password and database; dragonfly, or redis-server in
    its place; nats-server; declared servers' commands), each in a session of its own, with its log kept (capped)
    in the run folder's C(logs/).
  - Each process is recorded in the run's state file (pid and kernel start time) the moment it exists, so teardown
    and C(testbed gc) find it whatever happens next. Readiness is M(testbed.pipeline.testbed_ready)'s job.
  - Run as root, servers run as the unprivileged user C(testbed) (created when missing; PostgreSQL refuses root);
    otherwise as the user that runs the module.
  - A second call for a run that is up starts only what is missing, and reports no change when nothing was.
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
      - Servers that run already are left alone.
requirements:
  - The servers' binaries on the host (C(./bootstrap setup-native), or the role P(testbed.pipeline.runner_host#role)
    installs them); a missing one fails with exit code 12, naming how to install it.
seealso:
  - module: testbed.pipeline.testbed_preflight
    description: Plans the servers and their ports.
  - module: testbed.pipeline.testbed_ready
    description: Waits until the servers answer.
"""

EXAMPLES = r"""
- name: Start native servers
  testbed.pipeline.testbed_native:
    run_id: "{{ preflight_run.run_id }}"
  when: preflight_run.backend == 'native'
"""

RETURN = r"""
started:
  description: The servers this call started, by name, with the pid and the binary that serves each. Empty when
    every server was running already.
  returned: success
  type: dict
  sample:
    postgres: {pid: 48211, binary: /usr/lib/postgresql/15/bin/postgres}
    dragonfly: {pid: 48212, binary: /usr/bin/redis-server}
notices:
  description: What the run should know about the binaries (a stand-in serving a kind).
  returned: success
  type: list
  elements: str
  sample: ["Dragonfly: no dragonfly binary here, redis-server (same protocol) stands in"]
user:
  description: The user the servers run as.
  returned: when a server was started
  type: str
  sample: testbed
group:
  description: That user's group.
  returned: when a server was started
  type: str
  sample: testbed
exit_code:
  description: testbed's exit code for the failure (12, a missing binary, a server that exited at once, a full
    disk).
  returned: failure
  type: int
  sample: 12
"""

from collections.abc import Mapping
from typing import Any

from ansible.module_utils.basic import AnsibleModule

from testbed.ansible import module_shell
from testbed.phases import servers

SPEC = {"run_id": {"type": "str", "required": True}}
CHANGED = True


def act(params: Mapping[str, Any]) -> dict[str, Any]:
    return servers.start_native(params["run_id"])


def main() -> None:
    module_shell.run(AnsibleModule(argument_spec=SPEC), act, CHANGED)


if __name__ == "__main__":
    main()
