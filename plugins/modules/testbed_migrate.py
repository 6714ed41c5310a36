#!/usr/bin/python
"""Ansible module testbed_migrate: Apply the service's SQL migrations in version order, once."""

from __future__ import annotations

DOCUMENTATION = r"""
module: testbed_migrate
short_description: Apply the service's SQL migrations in version order, once
version_added: 0.1.0
description:
  - The migrations phase. Applies the C(*.sql) files of the service's C(migrations) folder to the run's PostgreSQL,
    in numeric version order, each in its own transaction (a file marked C(-- testbed:no-transaction) statement by
    statement), and tracks them with their checksums in C(<schema>.testbed_schema_migrations). A file already
    applied is skipped; one that changed since, or a new one numbered below the last applied, fails with exit
    code 13, as does a failing statement (the files before it stay applied).
  - In a dev-loop run (C(testbed up)), the first migration keeps the migrated state for C(testbed test)'s reset; a
    migration added later is applied to that kept state and the database is reset from it. When a test dropped the
    kept state, the database is emptied, migrated again and kept (RV(rebuilt)).
  - A service without C(migrations) changes nothing.
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
      - Changed only when a migration was applied.
seealso:
  - module: testbed.pipeline.testbed_ready
    description: Waits for PostgreSQL first.
  - module: testbed.pipeline.testbed_pytest
    description: Runs the tests against the migrated database.
"""

EXAMPLES = r"""
- name: Apply migrations
  testbed.pipeline.testbed_migrate:
    run_id: "{{ preflight_run.run_id }}"
  register: migrated

- name: Say what was applied
  ansible.builtin.debug:
    msg: "{{ migrated.applied | length }} new, {{ migrated.skipped | length }} already applied"
"""

RETURN = r"""
applied:
  description: The files applied by this call, in version order.
  returned: success
  type: list
  elements: str
  sample: [0002_items_index.sql]
skipped:
  description: The files that were applied before, in version order.
  returned: success
  type: list
  elements: str
  sample: [0001_items.sql]
rebuilt:
  description: The title of the server whose kept migrated state (the dev loop's) was gone and was migrated again;
    empty otherwise.
  returned: success
  type: str
  sample: ""
exit_code:
  description: testbed's exit code for the failure (13).
  returned: failure
  type: int
  sample: 13
"""

from collections.abc import Mapping
from typing import Any

from ansible.module_utils.basic import AnsibleModule

from testbed.ansible import module_shell
from testbed.phases import migrations

SPEC = {"run_id": {"type": "str", "required": True}}
CHANGED = True


def act(params: Mapping[str, Any]) -> dict[str, Any]:
    return migrations.migrate(params["run_id"]).as_result()


def main() -> None:
    module_shell.run(AnsibleModule(argument_spec=SPEC), act, CHANGED)


if __name__ == "__main__":
    main()
