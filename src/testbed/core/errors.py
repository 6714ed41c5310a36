"""The one error type testbed raises, and the exit-code table every command shares."""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    """Exit codes of every testbed command (README "Exit codes")."""

    PASSED = 0
    TESTS_FAILED = 1
    INTERRUPTED = 2
    INTERNAL_ERROR = 3
    USAGE_ERROR = 4
    NO_TESTS = 5
    CONFIG = 10
    SECRETS = 11
    PROVISIONING = 12
    MIGRATIONS = 13
    TEARDOWN = 14
    DEADLINE = 15  # the tests phase outlived tests.deadline: pytest and everything it started were killed
    SIGINT = 130
    SIGTERM = 143

    @property
    def meaning(self) -> str:
        """What the code says, in the words the step summary and the docs' exit-code table use."""
        return _MEANINGS[self]


_MEANINGS: dict[int, str] = {
    ExitCode.PASSED: "the tests passed (and everything was torn down)",
    ExitCode.TESTS_FAILED: "tests failed",
    ExitCode.INTERRUPTED: "pytest was interrupted",
    ExitCode.INTERNAL_ERROR: "pytest internal error (or a testbed crash)",
    ExitCode.USAGE_ERROR: "pytest usage error",
    ExitCode.NO_TESTS: "no tests collected (counted as a failure)",
    ExitCode.CONFIG: "bad input or config",
    ExitCode.SECRETS: "secrets could not be resolved",
    ExitCode.PROVISIONING: "provisioning or readiness failed (a full disk included)",
    ExitCode.MIGRATIONS: "migrations failed",
    ExitCode.TEARDOWN: "teardown failed: something was left behind, even if the tests passed",
    ExitCode.DEADLINE: "the tests phase outlived tests.deadline: pytest and everything it started were killed",
    ExitCode.SIGINT: "interrupted by SIGINT (after tearing down)",
    ExitCode.SIGTERM: "terminated by SIGTERM (after tearing down)",
}


class TestbedError(Exception):
    """A failure with a one-line message that says what is wrong and how to fix it."""

    __test__ = False  # not a pytest test class despite the name

    def __init__(self, message: str, exit_code: ExitCode = ExitCode.CONFIG) -> None:
        one_line = " ".join(message.split())
        super().__init__(one_line)
        self.exit_code = exit_code
        self.details: dict[str, Any] = {}

    def with_log(self, lines: list[str]) -> TestbedError:
        """Attach the tail of a server's log, shown under the one-line message."""
        self.details["log_tail"] = list(lines)
        return self


_SIGNALS = (ExitCode.SIGINT, ExitCode.SIGTERM)


def rank(code: int) -> tuple[int, int]:
    """How bad an exit code is, for `worst`."""
    if code == 0:
        return (0, 0)
    if code in _SIGNALS:
        return (3, code)
    if code >= ExitCode.CONFIG:
        return (2, code)
    return (1, code)


def worst(codes: Sequence[int]) -> int:
    return max(codes, key=rank, default=0)
