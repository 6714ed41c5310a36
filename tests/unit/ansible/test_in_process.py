"""`testbed test` runs the tests role's tasks itself (testbed.ansible.in_process): the same tasks, in the same
order, with the arguments the role gives them, each valid for its module's SPEC."""

from __future__ import annotations

from pathlib import Path

import yaml

from testbed.ansible import in_process
from testbed.ansible.module_shell import module_file
from testbed.ansible.options import Options

PROJECT = Path(__file__).resolve().parents[3]


def test_the_tasks_are_the_tests_roles_with_its_arguments() -> None:
    role = yaml.safe_load((PROJECT / "roles" / "tests" / "tasks" / "main.yml").read_text())
    options = Options(service=PROJECT, run_id="unit-run", pytest_args=["-x"])
    options.extravars |= {"testbed_workers": "2", "testbed_reset": False}
    tasks = in_process.test_tasks(options)

    in_role = [(task["name"], next(k for k in task if k != "name"), sorted(task[next(k for k in task if k != "name")]))
               for task in role]
    assert [(t.name, f"testbed.pipeline.{t.module}", sorted(t.args)) for t in tasks] == in_role
    pytest_args = tasks[1].args
    assert (pytest_args["extra_args"], pytest_args["workers"], pytest_args["reset"]) == (["-x"], "2", False)


def test_every_task_s_arguments_pass_its_module_s_validation() -> None:
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator  # noqa: PLC0415

    for task in in_process.test_tasks(Options(service=PROJECT, run_id="unit-run")):
        module = module_file(str(PROJECT / "plugins" / "modules" / f"{task.module}.py"))
        validation = ArgumentSpecValidator(module.SPEC).validate(dict(task.args))
        assert validation.error_messages == [], task
        assert validation.validated_parameters == task.args  # nothing left to a default the role would not give


def test_the_playbook_is_taken_only_when_asked() -> None:
    assert in_process.wanted({})
    assert in_process.wanted({"TESTBED_TEST_PLAYBOOK": "0"})
    assert not in_process.wanted({"TESTBED_TEST_PLAYBOOK": "1"})
