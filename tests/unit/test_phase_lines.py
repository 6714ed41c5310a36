"""The same outcome in the same words: a phase line printed from ansible-runner's event stream (the Renderer)
equals the one the CLI's direct paths print (a second `testbed up` migrating, or failing to)."""

from __future__ import annotations

import io
from typing import Any

import pytest

from testbed import cli_devloop, pipeline
from testbed.errors import ExitCode, TestbedError
from testbed.render import Renderer


def _rendered(task_action: str, res: dict[str, Any], failed: bool = False, role: str = "migrations") -> list[str]:
    out = io.StringIO()
    renderer = Renderer(out)
    renderer(
        {
            "event": "runner_on_failed" if failed else "runner_on_ok",
            "event_data": {"role": role, "task_action": task_action, "res": res},
        }
    )
    return out.getvalue().splitlines()


def _direct(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], migrate: Any) -> list[str]:
    monkeypatch.setattr(pipeline, "migrate", migrate)
    cli_devloop._migrate_existing("r1")
    return capsys.readouterr().out.splitlines()


@pytest.mark.parametrize("applied", [[], ["0001_init.sql", "0002_items.sql"]])
def test_migrations_line_is_the_same_from_the_cli_and_the_event_stream(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], applied: list[str]
) -> None:
    result = {"applied": applied, "skipped": [], "changed": bool(applied)}
    direct = _direct(monkeypatch, capsys, lambda run_id: result)
    assert direct == _rendered("testbed.pipeline.testbed_migrate", result)
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
