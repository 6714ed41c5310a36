"""A run's report and its failures as testbed writes them: the input of the GitHub summary and outputs."""

from __future__ import annotations

from testbed.core.junit import Failure

REPORT = {
    "run_id": "gh-123-1-integration-ab12",
    "service": "agent_executor",
    "backend": "native",
    "exit_code": 1,
    "result": "failed",
    "phases": [
        {"name": "preflight", "title": "Preflight", "status": "ok", "started": 1700000000.0, "duration": 0.4},
        {"name": "servers", "title": "Servers", "status": "ok", "started": 1700000000.4, "duration": 12.25},
        {
            "name": "tests",
            "title": "Tests: run",
            "status": "failed",
            "started": 1700000015.9,
            "duration": 3.2,
        },
    ],
    "tests": {"passed": 1, "failed": 1, "errors": 0, "skipped": 0, "duration": 3.2},
    "coverage": 87.5,
    "run_folder": "/abs/path/runs/gh-123-1-integration-ab12",
    "junit": "/abs/path/runs/gh-123-1-integration-ab12/junit.xml",
}


def failures(count: int) -> list[Failure]:
    """`count` failed tests, each with its file and line."""
    return [
        Failure(f"tests.test_x::test_{i}", f"assert {i} == 0", "tests/test_x.py", i + 1) for i in range(count)
    ]
