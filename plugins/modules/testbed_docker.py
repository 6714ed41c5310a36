#!/usr/bin/python
"""Ansible module testbed_docker: Start the run's network and containers on the Docker backend, all at once."""

from __future__ import annotations

DOCUMENTATION = r"""
module: testbed_docker
short_description: Start the run's network and containers on the Docker backend, all at once
version_added: 0.1.0
description:
  - The servers phase on the Docker backend. Records the run's network and containers in its state file before
    they exist (so teardown and C(testbed gc) find them whatever happens next), creates the network, then creates
    and starts every server's container at once, from the specs M(testbed.pipeline.testbed_preflight) plans
    (image, command, environment, tmpfs, ports published on 127.0.0.1, the run's labels).
  - A container that runs as specified is left alone; a stopped one is started; one whose image (a re-pulled
    image with a new id) or spec changed is made again. A second call for a run that is up reports no change.
  - The images must be here (the servers role pulls the missing ones first). Readiness is
    M(testbed.pipeline.testbed_ready)'s job.
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
      - Containers that run as specified are left alone.
requirements:
  - A Docker engine on the host's Unix socket (C(DOCKER_HOST=unix://...)), and the Docker SDK for Python (C(docker))
    in the Python that runs the module.
seealso:
  - module: testbed.pipeline.testbed_preflight
    description: Plans the containers and their ports.
  - module: testbed.pipeline.testbed_ready
    description: Waits until the servers answer.
"""

EXAMPLES = r"""
- name: Start the run's network and containers
  testbed.pipeline.testbed_docker:
    run_id: "{{ preflight_run.run_id }}"
"""

RETURN = r"""
started:
  description: The network, and the servers whose containers were created or started now; empty when all ran.
  returned: success
  type: list
  elements: str
  sample: [testbed-local-20250101-120000-a1b2c3, dragonfly, nats, postgres]
containers:
  description: The run's containers, by name.
  returned: success
  type: list
  elements: str
  sample: [testbed-local-20250101-120000-a1b2c3-postgres]
exit_code:
  description: testbed's exit code for the failure (10, a run that does not exist; 12, an engine that refused a
    container, or a full disk).
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
CHANGED = False


def act(params: Mapping[str, Any]) -> dict[str, Any]:
    return servers.start_docker(params["run_id"])


def main() -> None:
    module_shell.run(AnsibleModule(argument_spec=SPEC), act, CHANGED)


if __name__ == "__main__":
    main()
