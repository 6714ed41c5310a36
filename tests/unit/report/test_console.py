"""The same outcome in the same words: a phase line printed from ansible-runner's event stream (the Renderer)
equals the one the CLI's direct paths print (a second `testbed up` finding its servers up and migrating, or
failing to; `testbed down` and the wrapper's teardown leaving something, or nothing)."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import Any

import pytest

from testbed.ansible import cleanup
from testbed.cli import devloop
from testbed.core.errors import ExitCode, TestbedError
from testbed.phases import migrations as phases_migrations
from testbed.phases import teardown as phases_teardown
from testbed.report.console import Renderer
from testbed.run import outcome as run_outcome
from testbed.run.outcome import RESULTS, Migrated, PhaseResult, ServersReady, ServerUp, TeardownResult
from testbed.run.record import RunRecord
from testbed.run.store import RunState


def _rendered(task_action: str, res: dict[str, Any], failed: bool = False, role: str = "migrations") -> list[str]:
    out = io.StringIO()
    renderer = Renderer(out)
    # Through JSON, as a module's result reaches ansible-runner's event (its keys come back sorted).
    res = json.loads(json.dumps(res, sort_keys=True))
    renderer(
        {
            "event": "runner_on_failed" if failed else "runner_on_ok",
            "event_data": {"role": role, "task_action": task_action, "res": res},
        }
    )
    return out.getvalue().splitlines()


def _direct(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], migrate: Any) -> list[str]:
    monkeypatch.setattr(phases_migrations, "migrate", migrate)
    devloop._migrate_existing("r1")
    return capsys.readouterr().out.splitlines()


@pytest.mark.parametrize("applied", [[], ["0001_init.sql", "0002_items.sql"]])
def test_migrations_line_is_the_same_from_the_cli_and_the_event_stream(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], applied: list[str]
) -> None:
    result = Migrated(tuple(applied))
    direct = _direct(monkeypatch, capsys, lambda run_id: result)
    assert direct == _rendered("testbed.pipeline.testbed_migrate", result.as_result())
    wanted = f"Applied successfully ({len(applied)} new)" if applied else "Up to date (0 new)"
    assert direct == [f"✅ Migrations: {wanted}"]


def test_a_failed_migration_is_worded_the_same_from_the_cli_and_the_event_stream(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    message = "migrations: 0003_bad.sql: syntax error at or near \"SELEC\""

    def fails(run_id: str) -> dict[str, Any]:
        raise TestbedError(message, ExitCode.MIGRATIONS)

    direct = _direct(monkeypatch, capsys, fails)
    rendered = _rendered("testbed.pipeline.testbed_migrate", {"msg": message, "exit_code": 13}, failed=True)
    assert direct == rendered == ['❌ Migrations: 0003_bad.sql: syntax error at or near "SELEC"']


def test_a_play_over_several_hosts_keeps_each_hosts_lines_and_outcome_its_own() -> None:
    """Shards in one play: events of two hosts interleave; each line names its host, and one host failing its
    tests neither hides the other's result nor becomes the other's exit code."""
    from testbed.report.console import HostRenderers  # noqa: PLC0415

    out = io.StringIO()
    renderers = HostRenderers(out, ["runner-1", "r2"])

    def event(kind: str, host: str, role: str, action: str = "", res: dict[str, Any] | None = None) -> None:
        data = {"host": host, "role": role, "task": "t", "task_action": action, "res": res or {}}
        renderers({"event": kind, "event_data": data})

    tests = {"passed": 3, "failed": 0, "duration": 1.0}
    for host in ("runner-1", "r2"):
        event("runner_on_start", host, "tests")
    event("runner_on_failed", "runner-1", "tests", "testbed_pytest", {
        "msg": "Tests: 2 passed, 1 failed in 1.0s", "exit_code": 1, "tests": {**tests, "passed": 2, "failed": 1},
    })
    event("runner_on_ok", "r2", "tests", "testbed_pytest", {"tests": tests, "coverage": 90.0})
    event("runner_on_ok", "elsewhere", "tests", "testbed_pytest", {"tests": tests})  # not a host of the play
    for host in ("runner-1", "r2"):
        event("runner_on_ok", host, "teardown", "testbed_teardown")
    assert out.getvalue().splitlines() == [
        "[runner-1] ❌ Tests: 2 passed, 1 failed in 1.0s",
        "[r2]       ✅ Tests: 3 passed in 1.0s",
        "[r2]       ✅ Coverage: 90%",
        "[runner-1] ✅ Teardown: nothing left behind",
        "[r2]       ✅ Teardown: nothing left behind",
    ]
    assert renderers.exit_codes("failed", 2) == {"runner-1": ExitCode.TESTS_FAILED, "r2": ExitCode.PASSED}
    assert renderers.hosts["r2"].phases["tests"].status == "ok"


def test_servers_a_second_up_finds_are_listed_as_readiness_lists_them() -> None:
    # The state file keeps the order testbed.yml gave (here not the display order), plus a worker's instance;
    # readiness's result reaches the Renderer with its keys sorted. Both print in the kinds' display order.
    titles = {"nats": "NATS", "postgres": "PostgreSQL", "dragonfly": "Dragonfly", "nats-gw1": "NATS (gw1)"}
    ports = {"nats": 14222, "postgres": 15433, "dragonfly": 16380, "nats-gw1": 24222}
    record = RunRecord(
        run_id="r1",
        run_folder=Path("/runs/r1"),
        runtime_dir=Path("/tmp/r1"),
        servers={name: {"title": title, "port": 0} for name, title in titles.items()},  # ports 0: Docker's auto
        facts={name: {"host": "127.0.0.1", "port": port} for name, port in ports.items()},
    )
    direct = devloop.already_up(record).lines()
    ready = ServersReady(tuple(ServerUp(name, titles[name], port, 0.2, "1.0") for name, port in ports.items()))
    rendered = _rendered("testbed.pipeline.testbed_ready", ready.as_result(), role="readiness")
    assert direct == [f"{line} (already up)" for line in rendered]
    assert rendered == [
        "✅ PostgreSQL: Running on port 15433",
        "✅ Dragonfly: Running on port 16380",
        "✅ NATS: Running on port 14222",
        "✅ NATS (gw1): Running on port 24222",
    ]


@pytest.mark.parametrize("left", [[], ["directory /tmp/testbed-0/r1/postgres"]], ids=["clean", "left"])
def test_teardown_is_worded_the_same_by_down_the_wrapper_and_the_event_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], left: list[str]
) -> None:
    monkeypatch.setenv("TESTBED_RUNTIME_DIR", str(tmp_path / "root"))
    RunState.create("phase-lines", tmp_path / "runs" / "phase-lines", None, {})
    outcome = TeardownResult("phase-lines", removed=["process 1"], left=list(left))
    # Wherever each path takes teardown from: `testbed down`, the wrapper's sweep, the teardown phase.
    monkeypatch.setattr(devloop, "teardown", lambda state, **_: outcome)
    for module in (devloop, cleanup, phases_teardown):
        monkeypatch.setattr(module, "teardown_run_id", lambda run_id, **_: outcome)

    code = devloop.cmd_down(argparse.Namespace(inventory=None, run_id="phase-lines", service=None), tmp_path)
    direct = capsys.readouterr().out.splitlines()
    wrapper = cleanup.teardown_run("phase-lines", 1.0).lines()  # after a cancel, or the run's final sweep
    try:
        result = phases_teardown.teardown_phase("phase-lines").as_result()
        rendered = _rendered("testbed_teardown", result, role="teardown")
    except TestbedError as error:  # the module's failure, as the Renderer gets it
        failed = {"msg": str(error), "exit_code": int(error.exit_code), **error.details}
        rendered = _rendered("testbed_teardown", failed, failed=True, role="teardown")
    assert direct == wrapper == rendered
    assert code == (ExitCode.TEARDOWN if left else 0)
    if left:
        assert direct == [f"❌ Teardown: left behind {left[0]}; `testbed gc` retries"]


@pytest.mark.parametrize(
    "result",
    [
        run_outcome.BackendChosen("native", "asked for", ("Dragonfly: redis-server stands in",)),
        run_outcome.SecretsResolved(("A",), ("B",)),
        run_outcome.ServersReady((ServerUp("postgres", "PostgreSQL", 15433, 0.5, "15.4"),)),
        run_outcome.Migrated(("0001_init.sql",), ()),
        run_outcome.DependenciesReady("/venvs/svc/bin/python", cached=True),
        run_outcome.TestsRan({"passed": 3, "duration": 1.5}, 91.0, workers=2, reset_seconds=0.25, reset_waited=0.0),
        run_outcome.TeardownResult("r1", removed=["process 1"]),
    ],
    ids=lambda result: type(result).__name__,
)
def test_each_module_result_reads_back_as_what_it_was(result: PhaseResult) -> None:
    """What a module returns through Ansible is the value the CLI holds: the Renderer reads back the same
    outcome, so it cannot word it differently."""
    module = next(name for name, kind in RESULTS.items() if kind is type(result))
    back = RESULTS[module].from_result(json.loads(json.dumps(result.as_result())))
    assert back.lines() == result.lines()
    assert _rendered(module, result.as_result(), role="teardown" if module == "testbed_teardown" else "tests") == (
        result.lines()
    )


def _event(kind: str, role: str, action: str, res: dict, **data: object) -> dict:
    return {"event": kind, "event_data": {"role": role, "task_action": action, "res": res, **data}}


def test_renderer_turns_events_into_phase_lines_and_exit_codes() -> None:
    out = io.StringIO()
    renderer = Renderer(out)
    renderer(_event("runner_on_ok", "preflight", "testbed_preflight",
                    {"backend": "native", "backend_reason": "asked for", "notices": ["note"], "service": "s"}))
    renderer(_event("runner_on_ok", "readiness", "testbed_ready", {"servers": {
        "nats": {"title": "NATS", "port": 14222}, "postgres": {"title": "PostgreSQL", "port": 15433}}}))
    renderer(_event("runner_on_ok", "migrations", "testbed_migrate", {"applied": ["1.sql", "2.sql"]}))
    renderer(_event("runner_on_failed", "tests", "testbed_pytest", {
        "msg": "Tests: 1 passed, 1 failed in 3.2s (pytest exit 1; see x)", "exit_code": 1,
        "tests": {"passed": 1, "failed": 1, "duration": 3.2}, "coverage": 87.5}))
    renderer(_event("runner_on_failed", "secrets", "testbed_secret", {"msg": "ignored"}, ignore_errors=True))
    renderer(_event("runner_on_ok", "teardown", "testbed_teardown", {"removed": []}))
    lines = out.getvalue().splitlines()
    assert lines == [
        "✅ Backend: native (asked for)", "ℹ️  note",
        "✅ PostgreSQL: Running on port 15433", "✅ NATS: Running on port 14222",
        "✅ Migrations: Applied successfully (2 new)",
        "❌ Tests: 1 passed, 1 failed in 3.2s (pytest exit 1; see x)", "✅ Coverage: 87.5%",
        "✅ Teardown: nothing left behind",
    ]
    assert renderer.exit_code("failed", 2) == ExitCode.TESTS_FAILED
    assert renderer.tests == {"passed": 1, "failed": 1, "duration": 3.2}


def test_renderer_teardown_failure_after_passing_tests_is_14() -> None:
    renderer = Renderer(io.StringIO())
    renderer(_event("runner_on_ok", "tests", "testbed_pytest", {"tests": {"passed": 3, "duration": 1.0}}))
    renderer(_event("runner_on_failed", "teardown", "testbed_teardown",
                    {"msg": "teardown: left behind directory /x", "exit_code": 14}))
    assert renderer.exit_code("failed", 2) == ExitCode.TEARDOWN


def test_renderer_first_failure_wins_over_a_later_teardown_failure() -> None:
    renderer = Renderer(io.StringIO())
    renderer(_event("runner_on_failed", "migrations", "testbed_migrate", {"msg": "migrations: x", "exit_code": 13}))
    renderer(_event("runner_on_failed", "teardown", "testbed_teardown", {"msg": "left", "exit_code": 14}))
    assert renderer.exit_code("failed", 2) == ExitCode.MIGRATIONS
