"""GitHub Actions integration: masks, log groups, annotations (workflow_commands), the step summary (summary) and
the files the runner reads (runner_files: the summary and the step outputs).

Everything here is for a run inside GitHub Actions (``GITHUB_ACTIONS=true``); ``CI=true`` alone
(other CI systems, our own CI) does not enable it.
"""

from testbed.core.environ import is_github_actions

# No `from __future__ import annotations`: it would clash with the public `annotations()`.
from testbed.report.github.runner_files import outputs, write_outputs, write_summary
from testbed.report.github.summary import SUMMARY_LIMIT_BYTES, step_summary
from testbed.report.github.workflow_commands import (
    ANNOTATION_LIMIT,
    annotations,
    begin_group,
    end_group,
    escape_data,
    escape_property,
    group,
    mask,
)

__all__ = [
    "ANNOTATION_LIMIT",
    "SUMMARY_LIMIT_BYTES",
    "annotations",
    "begin_group",
    "end_group",
    "escape_data",
    "escape_property",
    "group",
    "is_github_actions",
    "mask",
    "outputs",
    "step_summary",
    "write_outputs",
    "write_summary",
]
