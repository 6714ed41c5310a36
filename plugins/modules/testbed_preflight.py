#!/usr/bin/python
"""Ansible module testbed_preflight: validate the config, pick backend and ports, create the run's state."""

from __future__ import annotations

DOCUMENTATION = r"""
module: testbed_preflight
short_description: Validate a service's testbed.yml, pick the backend and ports, and create the run's state file
version_added: 0.1.0
description:
  - The first phase of a testbed run. It reads the service's C(testbed.yml) and validates it against the catalogue
    (every problem named in one line), checks what can be known before a server starts (binaries or images, free
    ports, the migrations' files, the pytest workers), chooses the backend and the ports, and creates the run's
    state file and run folder. It starts nothing.
  - Given the O(run_id) of a run that exists and is not torn down, it returns that run and changes nothing, unless
    O(workers) asks for more pytest workers than the run has servers for; their instances are then added to the run
    (M(testbed.pipeline.testbed_native) or the Docker tasks start them).
  - What it returns is what the later phases read; the role P(testbed.pipeline.preflight#role) registers it as
    C(preflight_run).
  - Runs inside Ansible's worker on a local connection (C(plugins/action/)) and as a module on any other host;
    either way the C(testbed) Python package must be in the Python that runs it.
author: testbed (@testbed)
extends_documentation_fragment:
  - testbed.pipeline.testbed
attributes:
  idempotent:
    support: partial
    details:
      - With the O(run_id) of a run that exists, nothing changes (unless O(workers) grows it). Without one, every
        call creates a new run.
options:
  service_dir:
    description:
      - The service's folder, holding its C(testbed.yml).
      - Taken literally, with no C(~) or C($VAR) expansion; a relative path is relative to the working directory
        of the process that runs the module.
    type: str
    required: true
  catalogue:
    description:
      - Every server testbed can provide, with its defaults (C(servers_catalogue) in the defaults of the role
        P(testbed.pipeline.servers#role)); the service's C(settings) override these.
      - P(testbed.pipeline.preflight#role) reads it on the controller, so a remote host needs no copy of the
        collection.
    type: dict
    required: true
  backend:
    description:
      - Where the servers run. V(docker) runs one container per server; V(native) runs them as local processes
        (PostgreSQL 15, dragonfly or redis-server in its place, nats-server).
      - V(auto) picks Docker when its engine answers and every image is present or its registry answers, and native
        otherwise, or when a server has no image. RV(backend_reason) says why.
    type: str
    default: auto
    choices: [auto, docker, native]
  ports:
    description:
      - V(fixed) uses the catalogue's ports (PostgreSQL 15433, Dragonfly 16380, NATS 14222, or the service's
        settings) and fails naming the holder when one is taken.
      - V(auto) picks free ports (Docker publishes ephemeral ones). A pytest worker's own servers always get auto
        ports.
    type: str
    default: fixed
    choices: [fixed, auto]
  run_id:
    description:
      - The run's id, 3 to 63 lowercase letters, digits or C(-). Empty for a fresh one, C(local-<date>-<time>-<hex>)
        (under GitHub Actions C(gh-<run>-<attempt>-<job>-<hex>)).
      - The id of a run that exists and is not torn down brings that run back (see above).
    type: str
    default: ""
  run_root:
    description:
      - The folder under which the run folder (C(<run_root>/<run id>), the outputs, never hidden) is created. Taken
        literally.
    type: str
    required: true
  owner_pid:
    description:
      - The process that owns the run (testbed's wrapper passes its own pid). C(testbed gc) tears the run down once
        its owner is gone and no lease holds it.
      - Unset or V(0), the C(ansible-playbook) process the module runs under.
    type: int
  lease_seconds:
    description:
      - Seconds from now during which C(testbed gc) keeps the run, whether or not its owner lives (an environment
        left up on purpose, C(testbed up)); once they are over, gc tears it down.
      - Unset or V(0), no lease.
    type: int
  images:
    description:
      - Image overrides for the Docker backend, by server name (C(postgres), C(dragonfly), C(nats) or a declared
        server's name) to image reference. A name the service does not use is an error.
    type: dict
    default: {}
  pull:
    description:
      - Pull every image even when it is present (Docker backend). The choice of backend then needs every image's
        registry to answer.
    type: bool
    default: false
  workers:
    description:
      - How many pytest-xdist workers to bring servers up for, V(1) to V(64) or V(auto) (the CPUs testbed may use).
        Each worker after the first gets its own instance of every server that is shared by instance.
      - V(0) takes the service's C(tests.workers).
    type: str
    default: "0"
seealso:
  - module: testbed.pipeline.testbed_native
    description: Starts the servers preflight planned, on the native backend.
  - module: testbed.pipeline.testbed_record
    description: Records the containers and the network preflight planned, on the Docker backend, before they exist.
  - module: testbed.pipeline.testbed_teardown
    description: Tears the run down from the state file preflight created.
"""

EXAMPLES = r"""
- name: Validate the service config and create the run
  testbed.pipeline.testbed_preflight:
    service_dir: /srv/orders
    # As the role testbed.pipeline.preflight reads it, on the controller.
    catalogue: >-
      {{ (lookup('ansible.builtin.file', role_path ~ '/../servers/defaults/main.yml') | from_yaml).servers_catalogue }}
    backend: native
    ports: auto
    run_root: /srv/orders/runs
  register: preflight_run

- name: Bring back the run `testbed up` left, with servers for four pytest workers
  testbed.pipeline.testbed_preflight:
    service_dir: /srv/orders
    catalogue: "{{ servers_catalogue }}"
    run_id: local-20250101-120000-a1b2c3
    run_root: /srv/orders/runs
    workers: "4"
    lease_seconds: 3600

- name: On Docker, with a local image for PostgreSQL
  testbed.pipeline.testbed_preflight:
    service_dir: /srv/orders
    catalogue: "{{ servers_catalogue }}"
    backend: docker
    run_root: /srv/orders/runs
    images:
      postgres: registry.example.com/postgres:15
"""

RETURN = r"""
run_id:
  description: The run's id, which every later phase takes as its C(run_id).
  returned: success
  type: str
  sample: local-20250101-120000-a1b2c3
run_folder:
  description: The run folder, C(<run_root>/<run id>), where logs, reports and the state file's mirror land.
  returned: success
  type: str
  sample: /srv/orders/runs/local-20250101-120000-a1b2c3
runtime_dir:
  description: The run's runtime folder (C($TMPDIR/testbed-<uid>/<run id>)), holding its state file and the native
    servers' data.
  returned: success
  type: str
  sample: /tmp/testbed-1000/local-20250101-120000-a1b2c3
backend:
  description: The backend the run uses.
  returned: success
  type: str
  choices: [docker, native]
  sample: docker
backend_reason:
  description: Why, in words.
  returned: success
  type: str
  sample: engine 24.0.7 answers and every image is at hand
notices:
  description: What the run should know and nothing else would say (a stand-in binary, more workers than CPUs).
  returned: success
  type: list
  elements: str
  sample:
    - "Workers: 4 pytest workers on 2 CPUs take turns, each with servers of its own; --workers auto starts one per CPU
      (never more than the tests)"
service:
  description: The service's name (C(name) in C(testbed.yml)).
  returned: success
  type: str
  sample: orders
servers:
  description:
    - Every server of the run by name (a pytest worker's own as C(<name>-gwN)), with its settings from the catalogue
      and the service, and the ports picked. Under Docker with auto ports a port is V(0) until the container
      publishes one.
  returned: success
  type: dict
  sample:
    postgres: {title: PostgreSQL, port: 15433, user: testbed, password: testbed, database: testbed,
               image: "postgres:15", server_settings: {fsync: "off"}}
    nats: {title: NATS, port: 14222, monitor_port: 18222, image: "nats:2.10"}
secrets:
  description: The service's secrets (C(secrets) in C(testbed.yml)), each with its variable, SSM parameter and
    whether it is optional; never a value.
  returned: success
  type: list
  elements: dict
  sample: [{variable: API_TOKEN, parameter: /orders/api-token, optional: false}]
containers:
  description:
    - The Docker backend's containers, one per server, as the tasks that create them take them (name, image,
      labels, env, tmpfs, command, published ports, and whether the image is present). Empty on the native backend.
  returned: success
  type: list
  elements: dict
  sample:
    - service: nats
      name: testbed-local-20250101-120000-a1b2c3-nats
      image: "nats:2.10"
      labels: {testbed.run: local-20250101-120000-a1b2c3, testbed.service: nats, testbed.root: /tmp/testbed-1000}
      env: {}
      tmpfs: [/data]
      command: [-js, -sd, /data/jetstream, -p, "4222", -m, "8222"]
      present: true
      ports: ["127.0.0.1::4222", "127.0.0.1::8222"]
network:
  description: The name of the run's Docker network (created on the Docker backend only).
  returned: success
  type: str
  sample: testbed-local-20250101-120000-a1b2c3
network_labels:
  description: The labels the run's Docker network carries (gc finds it by them).
  returned: success
  type: dict
  sample: {testbed.run: local-20250101-120000-a1b2c3, testbed.root: /tmp/testbed-1000}
records:
  description: The Docker resources to record with M(testbed.pipeline.testbed_record) before creating them (the
    network, then each container). On the native backend, the network alone, which is never created.
  returned: success
  type: list
  elements: dict
  sample:
    - {kind: network, name: testbed-local-20250101-120000-a1b2c3}
    - {kind: container, name: testbed-local-20250101-120000-a1b2c3-nats, service: nats}
exit_code:
  description: testbed's exit code for the failure (10 for a bad config, 12 for a port that is taken or an image that
    cannot be had).
  returned: failure
  type: int
  sample: 10
"""

from collections.abc import Mapping
from typing import Any

from ansible.module_utils.basic import AnsibleModule

from testbed.ansible import module_shell
from testbed.backends.choice import BACKENDS
from testbed.phases import preflight

SPEC = {
    "service_dir": {"type": "str", "required": True},
    "catalogue": {"type": "dict", "required": True},
    "backend": {"type": "str", "default": "auto", "choices": list(BACKENDS)},
    "ports": {"type": "str", "default": "fixed", "choices": list(preflight.PORT_MODES)},
    "run_id": {"type": "str", "default": ""},
    "run_root": {"type": "str", "required": True},
    "owner_pid": {"type": "int"},
    "lease_seconds": {"type": "int"},
    "images": {"type": "dict", "default": {}},
    "pull": {"type": "bool", "default": False},
    "workers": {"type": "str", "default": "0"},
}
CHANGED = True


def act(params: Mapping[str, Any]) -> dict[str, Any]:
    return preflight.open_run(params)


def main() -> None:
    module_shell.run(AnsibleModule(argument_spec=SPEC), act, CHANGED)


if __name__ == "__main__":
    main()
