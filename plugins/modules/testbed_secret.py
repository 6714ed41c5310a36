#!/usr/bin/python
"""Ansible module testbed_secret: Add one resolved secret value to the run's 0600 secrets file."""

from __future__ import annotations

DOCUMENTATION = r"""
module: testbed_secret
short_description: Add one resolved secret value to the run's 0600 secrets file
version_added: 0.1.0
description:
  - Writes one value, under its environment variable's name, into the run's secrets file (C(private/secrets.json)
    in the run's runtime folder, mode 0600 in a 0700 folder of the user it runs as). The tests get it from there
    as that variable; no value reaches a fact, an extra var, a command line or a log.
  - Called once per secret in a C(no_log) loop with C(ignore_errors), after a lookup (the environment, or SSM
    Parameter Store); M(testbed.pipeline.testbed_secrets_check) then names what did not resolve.
  - It needs no state file yet (the wrapper writes secrets before preflight has run), and it reports no change
    (the file is the run's own, and teardown removes it).
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
  run_id:
    description:
      - The run whose secrets file receives the value. Its runtime folder and private folder are created when
        missing; a private folder that is a link, or another user's, fails with exit code 11.
  variable:
    description:
      - The environment variable the tests read the value from (the key under C(secrets) in C(testbed.yml)).
    type: str
    required: true
  value:
    description:
      - The resolved value. A string of at least 8 characters is stored (a shorter one is refused with exit code 11,
        too short to redact from logs and reports safely).
      - Anything else (the empty string or nothing, which a lookup gives for a variable that is not set or a
        parameter that is missing) is not stored, and RV(present) is V(false).
      - Never logged (C(no_log)).
    type: raw
seealso:
  - module: testbed.pipeline.testbed_secrets_check
    description: Names every secret that did not resolve, after this module's loop.
"""

EXAMPLES = r"""
- name: Read secrets from the environment
  testbed.pipeline.testbed_secret:
    run_id: "{{ preflight_run.run_id }}"
    variable: "{{ item.variable }}"
    value: "{{ lookup('ansible.builtin.env', item.variable, default='') }}"
  loop: "{{ preflight_run.secrets }}"
  loop_control:
    label: "{{ item.variable }}"
  register: resolved
  no_log: true
  ignore_errors: true

- name: Read secrets from SSM Parameter Store
  testbed.pipeline.testbed_secret:
    run_id: "{{ preflight_run.run_id }}"
    variable: "{{ item.variable }}"
    value: >-
      {{ lookup('amazon.aws.ssm_parameter', item.parameter, decrypt=true, region='eu-west-1',
                on_missing='skip', on_denied='error') }}
  loop: "{{ preflight_run.secrets }}"
  loop_control:
    label: "{{ item.variable }}"
  register: resolved
  no_log: true
  ignore_errors: true
"""

RETURN = r"""
present:
  description: Whether a value was stored (V(false) when it did not resolve).
  returned: success
  type: bool
  sample: true
exit_code:
  description: testbed's exit code for the failure (11, a value too short or a private folder that is not the run's).
  returned: failure
  type: int
  sample: 11
"""

from collections.abc import Mapping
from typing import Any

from ansible.module_utils.basic import AnsibleModule

from testbed.ansible import module_shell
from testbed.run import secrets

SPEC = {
    "run_id": {"type": "str", "required": True},
    "variable": {"type": "str", "required": True},
    "value": {"type": "raw", "no_log": True},
}
CHANGED = False


def act(params: Mapping[str, Any]) -> dict[str, Any]:
    value = params["value"]
    return {
        "present": secrets.write_secret(params["run_id"], params["variable"], value if isinstance(value, str) else None)
    }


def main() -> None:
    module_shell.run(AnsibleModule(argument_spec=SPEC), act, CHANGED)


if __name__ == "__main__":
    main()
