"""The shell every testbed module shares: the phase's result, or `failed` with one line and its exit code (a
TestbedError's, a full disk's, an internal error's 3)."""

from __future__ import annotations

import errno
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from testbed.ansible.module_shell import outcome
from testbed.core.errors import ExitCode, TestbedError


def _raising(exc: BaseException) -> Any:
    def act(_params: Mapping[str, Any]) -> dict[str, Any]:
        raise exc
    return act


def test_a_result_is_passed_on_with_changed_unless_it_says() -> None:
    assert outcome(lambda params: {"run_id": params["run_id"]}, {"run_id": "r1"}, True) == {
        "run_id": "r1", "changed": True}
    assert outcome(lambda _p: {"changed": False}, {}, True) == {"changed": False}


def test_a_testbed_error_is_its_line_code_and_details() -> None:
    error = TestbedError("teardown: left directory /x", ExitCode.TEARDOWN)
    error.details = {"left": ["directory /x"]}
    assert outcome(_raising(error), {}, True) == {
        "failed": True, "msg": "teardown: left directory /x", "exit_code": 14, "left": ["directory /x"]}


def test_a_full_disk_outside_testbed_s_own_writes_is_still_one_line(tmp_path: Path) -> None:
    result = outcome(_raising(OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "f"))), {}, True)
    assert result["failed"] and result["exit_code"] == ExitCode.PROVISIONING
    assert "is full" in result["msg"] and str(tmp_path / "f") in result["msg"] and "\n" not in result["msg"]


@pytest.mark.parametrize("exc", [KeyError("run_id"), OSError(errno.EACCES, "Permission denied"),
                                 ValueError("bad\n  value")])
def test_anything_else_is_an_internal_error_on_one_line(exc: Exception) -> None:
    result = outcome(_raising(exc), {}, True)
    assert result == {"failed": True, "exit_code": int(ExitCode.INTERNAL_ERROR),
                      "msg": f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())}"}
