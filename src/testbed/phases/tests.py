"""The tests phase: the service's pytest run (its argv and environment, under the supervisor, with the dev
loop's reset and each worker's share ready at the gate), and judging its result (counts from the JUnit report,
coverage, whether an exit 0 can be believed) into the phase's outcome or its one-line failure."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

from testbed.backends.liveness import servers_gone
from testbed.config import workers as config_workers
from testbed.config.environment import early_worker_templates, pytest_arguments, service_environment
from testbed.config.service import ServiceConfig
from testbed.core import files, installers, junit, logcap, redact, redacted_output, supervisor
from testbed.core.coverage_xml import coverage_percent
from testbed.core.environ import passed_on
from testbed.core.errors import ExitCode, TestbedError
from testbed.core.junit import JUnitSummary
from testbed.core.paths import COVERAGE_DATA, SHARES_FILE
from testbed.parallel import split as parallel_split
from testbed.parallel import workers
from testbed.parallel.handover import (
    HANDOVER_VARIABLE,
    ISOLATION_VARIABLE,
    KEEP_FAILED_VARIABLE,
    Handover,
    keep_databases,
)
from testbed.parallel.reset_gate import GATE_VARIABLE, ResetGate
from testbed.phases import dependencies
from testbed.run import secrets
from testbed.run.outcome import tests_line
from testbed.run.record import RunRecord
from testbed.run.store import RunState


def pytest_phase(
    run_id: str,
    extra_args: list[str] | None = None,
    asked_workers: str = "0",
    reset: bool = True,
    isolation: str = "",
    *,
    keep_failed: bool = False,
) -> dict[str, Any]:
    """run_tests, failing the phase with pytest's own exit code when the tests did not pass."""
    count = 0 if asked_workers in ("", "0") else config_workers.count(asked_workers, "workers")
    result = run_tests(
        run_id, extra_args, count, reset, auto=asked_workers == "auto", isolation=isolation, keep_failed=keep_failed
    )
    rc = result["rc"]
    gone = "; ".join(result["servers_gone"])
    if result.get("untrusted"):
        # Counted as pytest's internal error (3): something ended it without its own reporting.
        error = TestbedError(
            f"Tests: {result['untrusted']}{'; ' + gone if gone else ''}; see {result['log']}", ExitCode.INTERNAL_ERROR
        )
        error.details |= result
        raise error
    if rc == 0 and gone:  # the tests passed, but against an environment that went away under them
        error = TestbedError(
            f"Tests: {tests_line(result['tests'])}, but {gone} during the tests", ExitCode.PROVISIONING
        )
        error.details |= result
        raise error
    if rc == 0:
        return result
    if rc == ExitCode.DEADLINE:
        error = TestbedError(
            f"Tests: outlived tests.deadline ({result['deadline']} s): pytest and everything it started were "
            f"killed{'; ' + gone if gone else ''}; see {result['log']}",
            ExitCode.DEADLINE,
        )
        error.details |= result
        raise error
    if rc == ExitCode.NO_TESTS:
        error = TestbedError("Tests: no tests collected (counted as a failure)", ExitCode.NO_TESTS)
    elif rc in (ExitCode.TESTS_FAILED, ExitCode.INTERRUPTED, ExitCode.INTERNAL_ERROR, ExitCode.USAGE_ERROR):
        error = TestbedError(
            f"Tests: {tests_line(result['tests'])} (pytest exit {rc}{'; ' + gone if gone else ''}; "
            f"see {result['log']})",
            ExitCode(rc),
        )
    else:
        error = TestbedError(f"Tests: pytest ended with exit {rc}; see {result['log']}", ExitCode.INTERNAL_ERROR)
    error.details |= result
    raise error


# Never passed on to the tests. PYTEST_XDIST_: testbed run from inside a pytest-xdist worker would make the
# service's pytest believe it is that worker (and take a share that is not there).


def _dependencies_python(config: ServiceConfig) -> Path:

    return dependencies.ensure(config)[0]


def _workers_to_use(record: RunRecord, asked: int) -> int:
    """The workers this run of the tests uses (`asked`, or the run's own count when 0), if its servers and
    its templated pytest arguments allow."""
    count = asked or record.workers
    workers.check_instances(record.servers, count, record.workers)
    early = early_worker_templates(record.service_config(), count)
    if early:
        raise TestbedError("; ".join(early), ExitCode.CONFIG)
    return count


def _worker_shares(
    config: ServiceConfig, worker_facts: dict[str, dict[str, Any]]
) -> tuple[dict[str, dict[str, str]], dict[str, list[str]]]:
    """Each worker after the first: the variables that differ from the run's own; and every worker's
    rendering of tests.pytest_args, gw0's first (none when no worker's differs)."""
    own_facts = worker_facts[config_workers.worker_name(0)]
    own = service_environment(config, own_facts)
    shares = {}
    arguments = {config_workers.worker_name(0): pytest_arguments(config, own_facts)}
    for index in range(1, len(worker_facts)):
        facts = worker_facts[config_workers.worker_name(index)]
        theirs = service_environment(config, facts)
        shares[config_workers.worker_name(index)] = {
            key: value for key, value in theirs.items() if own.get(key) != value
        }
        arguments[config_workers.worker_name(index)] = pytest_arguments(config, facts)
    differ = any(rendered != arguments[config_workers.worker_name(0)] for rendered in arguments.values())
    return shares, arguments if differ else {}


def _open_gate(
    config: ServiceConfig, record: RunRecord, count: int, reset: bool, env: dict[str, str], handover: Handover
) -> tuple[ResetGate, list[str]]:
    """Start what must be ready before the first test (the dev loop's reset, the workers' shares, the per-test
    reset's pool) while pytest starts; its plugin waits at the gate. Returns the gate and pytest's arguments."""
    shares_path = record.runtime_dir / SHARES_FILE

    def prepare() -> str:
        """The reset and the workers' shares; returns what the reset had to rebuild first ("" when nothing)."""
        rebuilt = ""
        if reset:
            from testbed.phases.migrations import migrate  # noqa: PLC0415 - start-up cost: psycopg, off pytest's path

            if workers.kept_state(record)[1]:  # a test dropped the kept state: never claim a reset to nothing
                rebuilt = migrate(record.run_id).rebuilt_note()
            workers.reset(record.servers, record.facts)
        # After the reset: both clone from the same template, which allows one at a time.
        facts = {config_workers.worker_name(0): record.own_facts()}
        for index in range(1, count):
            facts[config_workers.worker_name(index)] = workers.worker_facts(record.servers, record.facts, index)
        if count > 1:
            workers.write_shares(shares_path, *_worker_shares(config, facts))
        handover.start(record.servers, record.own_facts(), facts)
        return rebuilt

    gate = ResetGate(record.runtime_dir, prepare)
    env[GATE_VARIABLE] = str(gate.path)
    env[HANDOVER_VARIABLE] = str(handover.path)
    env[ISOLATION_VARIABLE] = handover.isolation
    if handover.keep_failed:
        env[KEEP_FAILED_VARIABLE] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(workers.PLUGIN_DIR), env.get("PYTHONPATH")]))
    argv = ["-p", workers.PLUGIN]
    if count > 1:
        env[workers.SHARES_VARIABLE] = str(shares_path)
        env[workers.DURATIONS_VARIABLE] = str(record.run_folder / parallel_split.MEASURED_FILE)
        # worksteal: an idle worker takes queued tests from a busy one, so a few long tests (waits for a
        # redelivery) do not leave one worker running alone at the end, as the default `load` does.
        argv += ["-n", str(count), "--dist", "worksteal"]
    return gate, argv


def _tests_collected(
    argv: list[str], state: RunState, run_id: str, env: dict[str, str], cwd: Path, deadline: float
) -> int | None:
    """How many tests pytest collects with `argv` (a `--collect-only` pass without xdist, under the supervisor
    like every process of the tests), or None when it cannot tell: the real run then reports what is wrong."""
    rc, out, _ = supervisor.run(
        [*argv, "--collect-only", "-q", "-p", "no:xdist"],
        state=state,
        run_id=run_id,
        what="test collection",
        deadline=deadline,
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    if rc == ExitCode.NO_TESTS:
        return 0
    found = re.findall(rb"^(\d+)(?:/\d+)? tests? collected", out, re.MULTILINE) if rc == 0 else []
    return int(found[-1]) if found else None


def run_tests(
    run_id: str,
    extra_args: list[str] | None = None,
    asked_workers: int = 0,
    reset: bool = True,
    *,
    auto: bool = False,
    isolation: str = "",
    keep_failed: bool = False,
) -> dict[str, Any]:
    """Run the service's pytest with the provisioned environment; secrets come from the 0600 file, never
    from a command line or Ansible's environment. A dev-loop run first goes back to its migrated state
    (unless `reset` is off); with workers, each gets its own share of every server. Workers that came from
    `auto` (this run's, or the service's `tests.workers`) are never more than the tests collected."""
    state = RunState.find(run_id)
    record = state.load()
    lost = servers_gone(record)
    if lost:  # named now, not as whatever the reset or the first test would make of a closed port
        again = "; `testbed up` replaces the environment" if record.dev_loop else ""
        raise TestbedError(f"{'; '.join(lost)} before the tests{again}", ExitCode.PROVISIONING)
    config = record.service_config()
    count = _workers_to_use(record, asked_workers)
    python = record.python or _dependencies_python(config)
    run_folder = record.run_folder
    run_folder.mkdir(parents=True, exist_ok=True)  # removed by hand since `testbed up`: made again
    os.close(files.open_folder(run_folder))  # replaced by a link: refused, pytest writes nothing through it
    logcap.check_note(state.runtime_dir)  # a server's log filled its disk
    facts = record.own_facts()
    isolation = isolation or config.tests.isolation
    # Only an environment `testbed up` left is ever reset; `run` keeps what earlier runs left in it.
    reset = reset and record.dev_loop and isolation != "run"
    env = passed_on(os.environ)
    env |= service_environment(config, facts)
    values = secrets.read_secrets(run_id)
    env |= values
    redactor = redact.Redactor(values.values())
    env |= {"COVERAGE_FILE": str(state.runtime_dir / COVERAGE_DATA)}
    # Bytecode (and pytest's rewritten test modules) in testbed's cache, mirrored by path, never in the service's
    # folder; kept between runs, so no test process (each xdist worker, each process a test starts) compiles
    # the service's code again. It overrides a PYTHONDONTWRITEBYTECODE the caller's shell may set.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(installers.cache_home() / "pycache")
    junit_path = run_folder / "junit.xml"
    junit_path.unlink(missing_ok=True)  # a report from an earlier `testbed test` must not stand for this one
    selection = [
        str(python),
        "-m",
        "pytest",
        *config.tests.paths,
        *pytest_arguments(config, facts),
        *(extra_args or []),
    ]
    split = parallel_split.pytest_args(record.shard, run_folder, config.directory)
    phase_started = time.monotonic()  # tests.deadline bounds the whole phase, the count below included
    if count > 1 and (auto or (not asked_workers and config.tests.workers == "auto")):
        # xdist starts its workers before any of them collects (it cannot know the tests' number), so they are
        # counted first: a pass that only reads the durations (pytest-split picks a shard's tests by them).
        reading = [arg for arg in split if arg not in ("--store-durations", "--clean-durations")]
        tests = _tests_collected(
            [*selection, *reading, "-p", "no:cacheprovider"],
            state,
            run_id,
            env,
            config.directory,
            config.tests.deadline,
        )
        if tests is not None:
            count = max(1, min(count, tests))
    argv = [
        *selection,
        f"--junitxml={junit_path}",
        "-o",
        "junit_family=xunit1",
        "--tb=short",
        f"--timeout={config.tests.timeout}",
        "-p",
        "no:cacheprovider",
    ]
    argv += split
    handover = Handover(state.runtime_dir, isolation, keep_failed=keep_failed)
    gate, gate_args = _open_gate(config, record, count, reset, env, handover)
    argv += gate_args
    if config.tests.coverage:
        argv += [f"--cov={target}" for target in config.tests.coverage]
        argv += [
            f"--cov-report=xml:{run_folder / 'coverage.xml'}",
            f"--cov-report=html:{run_folder / 'htmlcov'}",
            "--cov-report=term",
        ]
    started = time.monotonic()
    try:
        # pytest's output reaches pytest.log only through the redactor: no secret value is ever on disk.
        # Capped (testbed.core.logcap); a full disk under it stops pytest at once (DiskFull), not at the deadline.
        with redacted_output.redacting_log(run_folder / "pytest.log", redactor, root=run_folder) as log:
            # Under a supervisor: whatever the tests start (setsid, nohup, double fork) ends with them.
            rc, _, _ = supervisor.run(
                argv,
                state=state,
                run_id=run_id,
                what="tests",
                deadline=max(1.0, config.tests.deadline - (time.monotonic() - phase_started)),
                env=env,
                cwd=config.directory,
                stdout=log.fd,
                stderr=subprocess.STDOUT,
                on_start=lambda process: log.stop_on_full(process.terminate),
            )
    finally:
        try:
            gate.close()  # raises the reset's error, which stopped pytest at the gate
        finally:
            handover.close()  # raises the per-test reset's first error, which stopped the tests
            keep_databases(state, handover.kept)
    seconds = time.monotonic() - started
    reported = rc
    rc = parallel_split.exit_code(record.shard, rc, run_folder / "pytest.log")
    empty_group = reported == ExitCode.NO_TESTS and rc == 0  # every test went to the other shards
    parallel_split.keep_coverage_data(state.runtime_dir / COVERAGE_DATA, run_folder)
    (state.runtime_dir / COVERAGE_DATA).unlink(missing_ok=True)
    # What pytest and coverage wrote themselves is scrubbed before anything reads or uploads it.
    # Coverage files hold source, not what ran: whole values suffice there, and are fast on a large tree.
    redactor.file(junit_path)
    redactor.file(run_folder / parallel_split.MEASURED_FILE)  # test ids: a parametrized one may carry a value
    redactor.file(run_folder / "coverage.xml", fragments=False)
    redactor.tree(run_folder / "htmlcov", fragments=False, root=run_folder)
    logcap.check_note(state.runtime_dir)
    summary = junit.parse(junit_path)  # None when pytest stopped before writing it (usage errors)
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0} | (summary.counts() if summary else {})
    counts["duration"] = round((summary.duration if summary else 0) or seconds, 2)
    coverage = coverage_percent(run_folder / "coverage.xml") if config.tests.coverage else None
    return {
        "rc": rc,
        "untrusted": untrusted_result(rc, summary, empty_group=empty_group),
        "tests": counts,
        "coverage": coverage,
        "seconds": round(seconds, 2),
        "workers": count,
        # The reset's own time, and what it added to the tests phase (pytest starts meanwhile).
        "reset_seconds": round(gate.seconds, 3) if reset else None,
        "reset_waited": round(gate.waited, 3) if reset else None,
        "reset_rebuilt": str(gate.outcome or "") if reset else "",
        "isolation": isolation,
        "kept": list(handover.kept),
        "log": str(run_folder / "pytest.log"),
        "deadline": config.tests.deadline if rc == ExitCode.DEADLINE else None,
        "servers_gone": servers_gone(record),
    }


def untrusted_result(rc: int, summary: JUnitSummary | None, *, empty_group: bool = False) -> str | None:
    """Why pytest's exit 0 cannot be believed, or None. A pass needs its JUnit report, with tests that ran
    and counts that agree with the exit code: a test or conftest calling os._exit(0) writes none. A shard
    whose group is empty (`empty_group`) ran no test on purpose."""
    if rc != 0:
        return None
    if summary is None:
        return "pytest exited 0 but wrote no JUnit report (a test or conftest called os._exit?)"
    if summary.problem:
        return f"pytest exited 0 but its JUnit report is unreadable ({summary.problem})"
    if summary.total == 0 and not empty_group:
        return "pytest exited 0 but its JUnit report lists no tests"
    if summary.failed or summary.errors:
        return f"pytest exited 0 but its JUnit report lists {summary.failed} failed and {summary.errors} errors"
    return None
