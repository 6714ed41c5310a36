"""Where secrets come from and how they are handed on: too-short values refused naming only the variable, the
private file's mode, and its removal."""

from __future__ import annotations

import secrets
import stat
from pathlib import Path

import pytest

from testbed.core.errors import ExitCode, TestbedError
from testbed.run import secrets as run_secrets


def test_short_value_is_refused_naming_the_variable_only(tmp_path: Path) -> None:
    run_id = f"short-{secrets.token_hex(4)}"
    with pytest.raises(TestbedError) as caught:
        run_secrets.write_secret(run_id, "API_KEY", "abc1234")
    assert caught.value.exit_code == ExitCode.SECRETS
    assert "API_KEY" in str(caught.value) and "abc1234" not in str(caught.value)
    assert not run_secrets.secrets_path(run_id).exists()


def test_secrets_file_is_0600_in_a_0700_folder_and_removed(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESTBED_RUNTIME_DIR", str(tmp_path / "rt"))
    assert run_secrets.write_secret("unit-run", "A", "one-value") is True
    assert run_secrets.write_secret("unit-run", "B", "two-value") is True
    assert run_secrets.write_secret("unit-run", "C", "") is False
    path = run_secrets.secrets_path("unit-run")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    # The unprivileged server user still reaches the runtime dir around the private folder.
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o755
    assert run_secrets.read_secrets("unit-run") == {"A": "one-value", "B": "two-value"}
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    run_secrets.remove_secrets("unit-run")
    assert not path.parent.exists()
    assert run_secrets.read_secrets("unit-run") == {}
