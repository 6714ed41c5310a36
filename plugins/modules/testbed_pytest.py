#!/usr/bin/python
"""Ansible module testbed_pytest: Run the service's tests against the run's servers."""

from __future__ import annotations

DOCUMENTATION = r"""
module: testbed_pytest
short_description: Run the service's tests against the run's servers
version_added: 0.1.0
description:
  - The tests phase. Runs the service's pytest (C(tests.paths), C(tests.pytest_args), then O(extra_args)) with the
    Python M(testbed.pipeline.testbed_deps) recorded, under a supervisor that ends whatever the tests start and
    bounded by C(tests.deadline). The tests find the servers in environment variables (C(POSTGRES_HOST) and its
    siblings, C(DRAGONFLY_HOST), C(NATS_URL), and the service's C(env) rendered with the servers' facts) and the
    run's secrets, read from its 0600 file, never from a command line.
  - In the run folder it leaves C(junit.xml), C(pytest.log) (secret values redacted), C(coverage.xml) and
    C(htmlcov/) when C(tests.coverage) names packages, and the tests' durations for the next split.
  - With O(workers), pytest-xdist workers each get a share of every server of their own (an instance, or a
    database cloned from the migrated one). A dev-loop run (C(testbed up)) first goes back to its freshly migrated
    state, while pytest starts (O(reset)).
  - The task fails when the tests did not pass, with pytest's own exit code in C(exit_code) (V(5), no tests
    collected, counts as a failure), and with testbed's when the phase outlived C(tests.deadline), when a server
    went away during the tests, or when an exit 0 cannot be believed (no JUnit report, or one that disagrees). In
    each of these cases the result holds the keys below too.
  - It reports no change.
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
      - It always reports no change; each call runs the tests again.
options:
  extra_args:
    description:
      - Extra pytest arguments, after the service's own.
    type: list
    elements: str
    default: []
  shard:
    description:
      - V(K/N) runs only the K-th of N groups of the suite (pytest-split, balanced by recorded durations; by count
        when none are known). Empty runs the whole suite.
      - The shard is recorded in the run's state file, where C(testbed merge) finds it; a later call without one
        tests the whole suite again.
    type: str
    default: ""
  durations:
    description:
      - The durations file a shard is split by (relative to the service's folder, or absolute); empty is the
        service's C(.test_durations). Only a shard reads it; every run records its own timings in the run folder's
        C(durations.json).
    type: str
    default: ""
  workers:
    description:
      - pytest-xdist workers, V(N) or V(auto) (the CPUs testbed may use, never more than the tests collected).
      - V(0) is the run's own count, what M(testbed.pipeline.testbed_preflight) brought servers up for. More than
        that fails with exit code 10 naming C(testbed up --workers N).
    type: str
    default: "0"
  reset:
    description:
      - A dev-loop run (one C(testbed up) left) goes back to its freshly migrated state first, while pytest starts
        (databases cloned again from the kept template, the Redis slot flushed, JetStream streams deleted).
        V(false) keeps the data. Any other run is never reset.
    type: bool
    default: true
  isolation:
    description:
      - What starts from the freshly migrated state. V(test) is every test - before each, a pooled PostgreSQL clone
        of the migrated state takes the name of the worker's database, the Redis slot is flushed, every JetStream
        stream is deleted, and each declared server's C(reset) command runs. V(worker) is each pytest worker, at the
        start of the tests (a dev-loop run is reset first). V(run) is as V(worker), except that a dev-loop run is
        never reset.
      - Empty is the service's C(tests.isolation) (V(worker) when it sets none).
    type: str
    default: ""
    choices: ["", run, worker, test]
  keep_failed:
    description:
      - With O(isolation=test), the database of each failing test is kept (its name in RV(kept)) instead of
        dropped, until the environment goes.
    type: bool
    default: false
seealso:
  - module: testbed.pipeline.testbed_deps
    description: Installs the dependencies and records the Python the tests run with.
  - module: testbed.pipeline.testbed_teardown
    description: Runs after the tests, whatever they did.
"""

EXAMPLES = r"""
- name: Run the service's tests
  testbed.pipeline.testbed_pytest:
    run_id: "{{ preflight_run.run_id }}"
  register: tests

- name: The second of three shards, on two workers, stopping at the first failure
  testbed.pipeline.testbed_pytest:
    run_id: "{{ preflight_run.run_id }}"
    shard: 2/3
    durations: ci/test_durations.json
    workers: "2"
    extra_args: [-x, -k, not slow]

- name: Against an environment `testbed up` left, keeping its data
  testbed.pipeline.testbed_pytest:
    run_id: local-20250101-120000-a1b2c3
    reset: false

- name: Every test from the freshly migrated state, keeping a failing test's database
  testbed.pipeline.testbed_pytest:
    run_id: local-20250101-120000-a1b2c3
    isolation: test
    keep_failed: true
"""

RETURN = r"""
rc:
  description: pytest's exit code (V(0) when the tests passed; a shard whose group is empty passes too).
  returned: when pytest ran, also when the tests failed
  type: int
  sample: 0
tests:
  description: The counts from pytest's JUnit report, and the duration in seconds.
  returned: when pytest ran, also when the tests failed
  type: dict
  contains:
    passed:
      description: Tests that passed.
      type: int
    failed:
      description: Tests that failed.
      type: int
    errors:
      description: Tests with an error (in a fixture, or in collection).
      type: int
    skipped:
      description: Tests skipped.
      type: int
    duration:
      description: Seconds, as the report says (or as measured, without one).
      type: float
  sample: {passed: 41, failed: 0, errors: 0, skipped: 2, duration: 12.84}
coverage:
  description: The line coverage in percent, from C(coverage.xml); null when C(tests.coverage) names nothing.
  returned: when pytest ran, also when the tests failed
  type: float
  sample: 87.5
seconds:
  description: How long pytest ran, in seconds.
  returned: when pytest ran, also when the tests failed
  type: float
  sample: 14.02
workers:
  description: The pytest workers the tests ran on (V(1) without pytest-xdist).
  returned: when pytest ran, also when the tests failed
  type: int
  sample: 2
reset_seconds:
  description: How long the dev loop's reset took; null when there was none.
  returned: when pytest ran, also when the tests failed
  type: float
  sample: 0.214
reset_waited:
  description: What the reset added to the phase (pytest starts meanwhile); null when there was none.
  returned: when pytest ran, also when the tests failed
  type: float
  sample: 0.0
reset_rebuilt:
  description: What the reset rebuilt first when its kept state was gone; empty otherwise.
  returned: when pytest ran, also when the tests failed
  type: str
  sample: ""
isolation:
  description: What started from the freshly migrated state (V(run), V(worker) or V(test)).
  returned: when pytest ran, also when the tests failed
  type: str
  sample: test
kept:
  description: The databases kept for debugging (O(keep_failed)), one per failing test.
  returned: when pytest ran, also when the tests failed
  type: list
  elements: str
  sample: [orders_testbed_failed_tests_test_orders_py_test_refund]
log:
  description: The path of C(pytest.log) in the run folder.
  returned: when pytest ran, also when the tests failed
  type: str
  sample: /srv/orders/runs/local-20250101-120000-a1b2c3/pytest.log
untrusted:
  description: Why pytest's exit 0 cannot be believed (no JUnit report, or one that lists failures); null otherwise.
  returned: when pytest ran, also when the tests failed
  type: str
  sample: null
deadline:
  description: C(tests.deadline) in seconds, when the phase outlived it; null otherwise.
  returned: when pytest ran, also when the tests failed
  type: int
  sample: null
servers_gone:
  description: The servers that went away during the tests, named; empty when none did.
  returned: when pytest ran, also when the tests failed
  type: list
  elements: str
  sample: []
exit_code:
  description: testbed's exit code for the failure (pytest's own code, or 3, 10, 12, 15).
  returned: failure
  type: int
  sample: 1
"""

from collections.abc import Mapping
from typing import Any

from ansible.module_utils.basic import AnsibleModule

from testbed.ansible import module_shell
from testbed.parallel import split
from testbed.phases import tests

SPEC = {
    "run_id": {"type": "str", "required": True},
    "extra_args": {"type": "list", "elements": "str", "default": []},
    "shard": {"type": "str", "default": ""},
    "durations": {"type": "str", "default": ""},
    "workers": {"type": "str", "default": "0"},
    "reset": {"type": "bool", "default": True},
    "isolation": {"type": "str", "default": "", "choices": ["", "run", "worker", "test"]},
    "keep_failed": {"type": "bool", "default": False},
}
CHANGED = False


def act(params: Mapping[str, Any]) -> dict[str, Any]:
    split.record(params["run_id"], params["shard"], params["durations"])
    return tests.pytest_phase(
        params["run_id"],
        params["extra_args"],
        params["workers"],
        params["reset"],
        params["isolation"],
        keep_failed=params["keep_failed"],
    )


def main() -> None:
    module_shell.run(AnsibleModule(argument_spec=SPEC), act, CHANGED)


if __name__ == "__main__":
    main()
