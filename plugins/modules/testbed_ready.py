#!/usr/bin/python
"""Ansible module testbed_ready: Wait until every server of the run answers its real protocol."""

from __future__ import annotations

DOCUMENTATION = r"""
module: testbed_ready
short_description: Wait until every server of the run answers its real protocol
version_added: 0.1.0
description:
  - The readiness phase, on both backends. Polls every server at once, from the host, with its own protocol
    (PostgreSQL C(SELECT 1) as the configured user, Redis C(PING), a NATS connection and its JetStream account,
    a declared server's TCP, HTTP or command check) until all answer or O(timeout) passes.
  - A server that exits meanwhile fails at once, not at the deadline; the failure names the server, its port and
    its last error, with its log's tail in RV(log_tail). A native server that lost the race for its auto port is
    started again on a fresh one (up to 3 times).
  - The servers' connection facts (the ports Docker published included) are recorded in the run's state file,
    where the tests' environment is built from, and C(diagnostics/readiness.json) is written in the run folder.
    The module reports no change.
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
  timeout:
    description:
      - Seconds every server has, in all, to answer, counted from the start of the task (at least 1 s is left for
        the last attempt after a port race).
    type: float
    default: 60.0
seealso:
  - module: testbed.pipeline.testbed_native
    description: Starts the servers on the native backend.
  - module: testbed.pipeline.testbed_migrate
    description: Runs next, against the ready PostgreSQL.
"""

EXAMPLES = r"""
- name: Wait until every server answers its protocol
  testbed.pipeline.testbed_ready:
    run_id: "{{ preflight_run.run_id }}"
    timeout: 120
"""

RETURN = r"""
servers:
  description: Every server of the run, by name.
  returned: success
  type: dict
  contains:
    title:
      description: Its name in the output.
      type: str
      sample: PostgreSQL
    port:
      description: The port it answers on from the host (the published one under Docker).
      type: int
      sample: 15433
    seconds:
      description: How long it took to answer.
      type: float
      sample: 0.412
    version:
      description: What the server said it is, where its protocol tells.
      type: str
      sample: "15.10 (Debian 15.10-0+deb12u1)"
  sample:
    postgres: {title: PostgreSQL, port: 15433, seconds: 0.412, version: "15.10 (Debian 15.10-0+deb12u1)"}
    dragonfly: {title: Dragonfly, port: 16380, seconds: 0.051, version: redis 7.0.15}
    nats: {title: NATS, port: 14222, seconds: 0.103, version: nats-server 2.10.24}
log_tail:
  description: The last lines of the log of the server that was not ready.
  returned: failure, when a server did not answer
  type: list
  elements: str
  sample: ["FATAL:  could not create shared memory segment: No space left on device"]
exit_code:
  description: testbed's exit code for the failure (12).
  returned: failure
  type: int
  sample: 12
"""

from collections.abc import Mapping
from typing import Any

from ansible.module_utils.basic import AnsibleModule

from testbed.ansible import module_shell
from testbed.phases import readiness

SPEC = {
    "run_id": {"type": "str", "required": True},
    "timeout": {"type": "float", "default": 60.0},
}
CHANGED = False


def act(params: Mapping[str, Any]) -> dict[str, Any]:
    return readiness.ready(params["run_id"], params["timeout"]).as_result()


def main() -> None:
    module_shell.run(AnsibleModule(argument_spec=SPEC), act, CHANGED)


if __name__ == "__main__":
    main()
