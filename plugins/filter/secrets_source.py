"""The filter testbed.pipeline.secrets_source: where a run's secrets come from, by testbed's one rule
(testbed.run.secrets.secrets_source), decided on the controller, where the SSM lookup runs too."""

from __future__ import annotations

DOCUMENTATION = r"""
name: secrets_source
short_description: Where a run's secrets come from
version_added: 0.1.0
description:
  - C(auto) is C(ssm) under GitHub Actions (C(GITHUB_ACTIONS=true) in the controller's environment) and C(env)
    elsewhere; any other value is returned as it is. The same rule as C(testbed run --secrets auto).
positional: _input
options:
  _input:
    description: The requested source, C(auto), C(ssm), C(env) or C(file).
    type: str
    required: true
author: testbed (@testbed)
"""

EXAMPLES = r"""
- name: Pick where secrets come from
  ansible.builtin.set_fact:
    source: "{{ 'auto' | testbed.pipeline.secrets_source }}"
"""

RETURN = r"""
_value:
  description: C(ssm), C(env) or C(file).
  type: str
"""

import os
from collections.abc import Callable
from typing import Any

from testbed.run.secrets import secrets_source


def _source(requested: str) -> str:
    return secrets_source(requested, os.environ)


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"secrets_source": _source}
