"""Environment variables: the names the tests' environment may hold, what is never passed on, GitHub Actions."""

from __future__ import annotations

import pytest

from testbed.core import environ


def test_each_bad_name_is_a_problem_named_with_its_place() -> None:
    problems = environ.bad_env_names(["GOOD_1", "_ok", "1ST", "A B", "X=1", "PATH\nEVIL", 3], "env")
    assert problems == [
        "'env.1ST' is not a valid environment variable name",
        "'env.A B' is not a valid environment variable name",
        "'env.X=1' is not a valid environment variable name",
        "'env.'PATH\\nEVIL'' is not a valid environment variable name",  # shown on one line
        "'env.3' is not a valid environment variable name",
    ]


def test_testbed_s_own_and_ansible_s_settings_and_credentials_are_not_passed_on() -> None:
    given = {"PATH": "/bin", "HOME": "/root", "ANSIBLE_CONFIG": "x", "AWS_SECRET_ACCESS_KEY": "s", "TESTBED_X": "1",
             "AWX_HOST": "h", "RUNNER_ONLY": "1", "PYTEST_XDIST_WORKER": "gw1", "PYTEST_ADDOPTS": "-x",
             "MY_AWS_REGION": "eu"}
    assert environ.passed_on(given) == {"PATH": "/bin", "HOME": "/root", "PYTEST_ADDOPTS": "-x",
                                         "MY_AWS_REGION": "eu"}


@pytest.mark.parametrize(("given", "expected"), [
    ({"GITHUB_ACTIONS": "true"}, True), ({"GITHUB_ACTIONS": "false"}, False), ({"CI": "true"}, False), ({}, False),
])
def test_github_actions_is_its_own_variable_only(given: dict[str, str], expected: bool) -> None:
    assert environ.is_github_actions(given) is expected


def test_without_a_mapping_the_process_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    assert environ.is_github_actions() is True
    monkeypatch.delenv("GITHUB_ACTIONS")
    assert environ.is_github_actions() is False
