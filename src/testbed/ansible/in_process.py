"""`testbed test` without a playbook: the tasks of playbooks/test.yml (the tests role's) run in this process.

A fresh ansible-runner and ansible-playbook cost about 0.9 s around each `testbed test`, the inner loop a
developer runs dozens of times a day. Against an environment that is up on this machine nothing of Ansible is
needed: the wrapper runs the role's module files here, as the action plugin runs them in Ansible's worker
(testbed.ansible.action: the same SPEC, act and CHANGED through module_shell), with the environment a playbook's
worker would have (runner_envvars), and reports through the same Renderer and report. The playbook stays the
other way to the same result (tests/e2e/test_inner_loop.py compares them); TESTBED_TEST_PLAYBOOK=1 takes it.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any, NamedTuple

from testbed.ansible.cleanup import interrupted_tests, stop_tests
from testbed.ansible.driver import masker
from testbed.ansible.module_shell import in_process, module_file
from testbed.ansible.options import Options
from testbed.ansible.settings import runner_envvars
from testbed.core import redact, redacted_output
from testbed.core.interrupts import NOTED, Interrupted
from testbed.core.paths import trusted_runtime_root
from testbed.report import github
from testbed.report.console import Renderer
from testbed.report.run_report import report_run

PLAYBOOK_VARIABLE = "TESTBED_TEST_PLAYBOOK"  # 1: `testbed test` drives playbooks/test.yml through ansible-runner
ROLE = "tests"
_STOPPING = 30.0  # seconds an interrupted run waits for its tasks after stopping their processes


class Task(NamedTuple):
    """One task of roles/tests/tasks/main.yml: its name, its module and the module's arguments."""

    name: str
    module: str
    args: dict[str, Any]


def wanted(environ: Mapping[str, str] | None = None) -> bool:
    """Whether `testbed test` runs the tests role here (the default), or through the playbook."""
    return (os.environ if environ is None else environ).get(PLAYBOOK_VARIABLE, "") in ("", "0")


def test_tasks(options: Options) -> list[Task]:
    """The tests role's tasks with the arguments playbooks/test.yml gives them from `options` (the role's
    defaults and playbooks/vars/testbed.yml's where the wrapper asks nothing; the same list as the role's
    tasks file, checked by tests/unit/ansible/test_in_process.py)."""
    return [
        Task("Install the service's dependencies", "testbed_deps", {"run_id": options.run_id}),
        Task(
            "Run the service's tests",
            "testbed_pytest",
            {
                "run_id": options.run_id,
                "extra_args": list(options.pytest_args),
                "shard": "",
                "durations": "",
                "workers": str(options.extravars.get("testbed_workers", 0)),
                "reset": options.extravars.get("testbed_reset", True),
                "isolation": str(options.extravars.get("testbed_isolation", "")),
                "keep_failed": bool(options.extravars.get("testbed_keep_failed", False)),
            },
        ),
    ]


def run_tests(options: Options, project: Path, out: IO[str] = sys.stdout) -> int:
    """playbooks/test.yml's tasks against the environment `options.run_id` names, here; the exit code."""
    with NOTED as interrupted:
        interrupted.checkpoint()
        return _run(options, project, out, interrupted)


def _run(options: Options, project: Path, out: IO[str], interrupted: Interrupted) -> int:
    run_id, run_root = options.run_id, options.run_root or options.service / "runs"
    environ = os.environ
    redactor = redact.Redactor()  # everything printed goes through it, as in the playbook's run
    out = redacted_output.RedactingWriter(out, redactor)  # type: ignore[assignment]
    renderer = Renderer(out, options.verbose, environ)
    gha = github.is_github_actions(environ)
    trusted_runtime_root()
    masker(run_id, False, gha, redactor, out)()
    started = time.time()
    with _environment(runner_envvars(project, options.verbose)):
        results: queue.Queue[tuple[Task, dict[str, Any] | None] | None] = queue.Queue()
        worker = threading.Thread(
            target=_perform, args=(test_tasks(options), project, results, interrupted), daemon=True
        )
        worker.start()
        while (item := _next(results, interrupted)) is not None:
            task, result = item
            if result is None:
                renderer.task_started(ROLE, task.name)
            else:
                renderer.task_done(ROLE, task.name, f"testbed.pipeline.{task.module}", result)
        renderer.close()
        if interrupted.signum is not None:
            code = interrupted_tests(run_id, interrupted, out)
            _stop(run_id, worker)
        else:
            worker.join()
            code = renderer.exit_code("successful", 0)
    return report_run(renderer, run_id, run_root / run_id, code, started, options, out=out, gha=gha, redactor=redactor)


def _perform(
    tasks: list[Task],
    project: Path,
    results: queue.Queue[tuple[Task, dict[str, Any] | None] | None],
    interrupted: Interrupted,
) -> None:
    """Each task in turn, as a play runs them: the first that fails ends the play; an interrupt, the next."""
    try:
        for task in tasks:
            if interrupted():
                return
            results.put((task, None))
            result = in_process(module_file(str(project / "plugins" / "modules" / f"{task.module}.py")), task.args)
            results.put((task, result))
            if result.get("failed"):
                return
    finally:
        results.put(None)


def _next(
    results: queue.Queue[tuple[Task, dict[str, Any] | None] | None], interrupted: Interrupted
) -> tuple[Task, dict[str, Any] | None] | None:
    """The next task's start or result; None when the tasks ended, or on an interrupt (its line says so)."""
    while not interrupted():
        with contextlib.suppress(queue.Empty):
            return results.get(timeout=0.1)
    return None


def _stop(run_id: str, worker: threading.Thread) -> None:
    """After an interrupt: stop the tests' processes until the tasks have ended (a task between two processes,
    the install and pytest, may start the next before it sees the interrupt)."""
    deadline = time.monotonic() + _STOPPING
    while worker.is_alive() and time.monotonic() < deadline:
        worker.join(0.5)
        stop_tests(run_id, grace=2.0)


@contextlib.contextmanager
def _environment(variables: Mapping[str, str]) -> Iterator[None]:
    """The environment a playbook's worker runs the tasks in (the owner the supervisor watches, PATH)."""
    before = {key: os.environ.get(key) for key in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
