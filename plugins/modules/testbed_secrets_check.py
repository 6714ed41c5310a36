#!/usr/bin/python
"""Ansible module testbed_secrets_check: name every secret that did not resolve, never a value."""

from __future__ import annotations

DOCUMENTATION = r"""
module: testbed_secrets_check
short_description: Name every secret that did not resolve, never a value
version_added: 0.1.0
description:
  - The secrets phase's verdict. The loop that resolves the values (M(testbed.pipeline.testbed_secret)) runs with
    C(no_log), which would hide a failure's message, and C(ignore_errors); this module reads the loop's results and
    fails, with exit code 11, naming every required secret that did not resolve by its variable (and its SSM
    parameter) and why (no credentials, access denied, not found, an endpoint that does not answer), never a value
    and never what the lookup said beyond an error code.
  - An optional secret that is not set is skipped with the C(env) and C(file) sources; with C(ssm), a missing
    parameter is an error even for an optional one.
  - With O(source=file) it reads the run's secrets file instead (the wrapper wrote the values there itself).
  - Runs inside Ansible's worker on a local connection (C(plugins/action/)) and as a module on any other host;
    either way the C(testbed) Python package must be in the Python that runs it.
author: testbed (@testbed)
extends_documentation_fragment:
  - testbed.pipeline.testbed
  - testbed.pipeline.testbed.run_id
attributes:
  check_mode:
    details:
      - It changes nothing, but what it judges comes from M(testbed.pipeline.testbed_secret), which check mode skips,
        so in check mode it would report every secret unresolved; Ansible skips it too.
  idempotent:
    support: full
    details:
      - It changes nothing.
options:
  run_id:
    description:
      - The run whose secrets are checked; with O(source=file), whose secrets file is read.
  source:
    description:
      - Where the values came from. V(env), the controller's environment; V(ssm), SSM Parameter Store; V(file), the
        run's secrets file, written by testbed's wrapper.
      - The role resolves C(auto) first with the filter P(testbed.pipeline.secrets_source#filter).
    type: str
    required: true
    choices: [env, ssm, file]
  specs:
    description:
      - The service's secrets, as M(testbed.pipeline.testbed_preflight) returns them in
        RV(testbed.pipeline.testbed_preflight#module:secrets), each a dict with C(variable), C(parameter) and
        C(optional).
    type: list
    elements: dict
    required: true
  results:
    description:
      - The C(results) of the resolution loop (registered from M(testbed.pipeline.testbed_secret)), each with its
        C(item), and C(present), or C(failed) with C(msg).
      - Empty with O(source=file).
    type: list
    elements: dict
    default: []
  region:
    description:
      - The AWS region the SSM parameters were read in, named when a parameter is not found. Empty says
        C(the default region).
    type: str
    default: ""
seealso:
  - module: testbed.pipeline.testbed_secret
    description: Stores each value this module then checks.
  - plugin: testbed.pipeline.secrets_source
    plugin_type: filter
    description: Where secrets come from when the source is C(auto).
"""

EXAMPLES = r"""
- name: Check every secret resolved
  testbed.pipeline.testbed_secrets_check:
    run_id: "{{ preflight_run.run_id }}"
    source: ssm
    region: eu-west-1
    specs: "{{ preflight_run.secrets }}"
    results: "{{ resolved.results | default([]) }}"

- name: Check the secrets testbed's wrapper wrote
  testbed.pipeline.testbed_secrets_check:
    run_id: "{{ preflight_run.run_id }}"
    source: file
    specs: "{{ preflight_run.secrets }}"
"""

RETURN = r"""
resolved:
  description: The variables whose values are in the run's secrets file.
  returned: success
  type: list
  elements: str
  sample: [API_TOKEN]
skipped_optional:
  description: The optional variables that were not set (sources C(env) and C(file)).
  returned: success
  type: list
  elements: str
  sample: [SENTRY_DSN]
exit_code:
  description: testbed's exit code for the failure (11).
  returned: failure
  type: int
  sample: 11
"""

from collections.abc import Mapping
from typing import Any

from ansible.module_utils.basic import AnsibleModule

from testbed.ansible import module_shell
from testbed.phases import secrets

SPEC = {
    "run_id": {"type": "str", "required": True},
    "source": {"type": "str", "required": True, "choices": ["env", "ssm", "file"]},
    "specs": {"type": "list", "elements": "dict", "required": True},
    "results": {"type": "list", "elements": "dict", "default": []},
    "region": {"type": "str", "default": ""},
}
CHANGED = False


def act(params: Mapping[str, Any]) -> dict[str, Any]:
    return secrets.check_secrets(params)


def main() -> None:
    module_shell.run(AnsibleModule(argument_spec=SPEC), act, CHANGED)


if __name__ == "__main__":
    main()
