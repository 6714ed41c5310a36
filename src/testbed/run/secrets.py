"""The run's secrets: one 0600 file in the run's private 0700 folder, the only way values reach pytest;
where they come from (`auto`: SSM under GitHub Actions, else the environment) and the environment's values
moved into the file before anything records the environment."""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Iterable, Mapping, MutableMapping
from pathlib import Path
from typing import Any

from testbed.core import redact, secret_forms
from testbed.core.environ import is_github_actions
from testbed.core.errors import ExitCode, TestbedError
from testbed.core.paths import PRIVATE_DIR, SECRETS_NAME, runtime_root
from testbed.run.store import check_run_id


def secrets_path(run_id: str) -> Path:
    return runtime_root() / run_id / PRIVATE_DIR / SECRETS_NAME


def _private_dir(run_id: str) -> Path:
    """The run's 0700 private folder, created when missing (the wrapper writes env-mode values before
    preflight has created the runtime dir); refuses a symlink or a folder owned by someone else."""
    run_dir = runtime_root() / check_run_id(run_id)
    # The runtime dir must stay reachable by the unprivileged server user: 0755, like RunState.create.
    run_dir.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    run_dir.mkdir(mode=0o755, exist_ok=True)
    private = run_dir / PRIVATE_DIR
    private.mkdir(mode=0o700, exist_ok=True)
    info = private.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise TestbedError(f"secrets: {private} is not a folder of this user; remove it and rerun", ExitCode.SECRETS)
    private.chmod(0o700)
    return private


def check_length(variable: str, value: str) -> None:
    """Refuse a value too short to redact safely (testbed.core.redact), naming the variable, never the value."""
    if secret_forms.too_short(value):
        raise TestbedError(
            f"secrets: {variable}: value shorter than {secret_forms.MIN_SECRET_LENGTH} characters, too short to redact "
            "safely from logs and reports; use a longer one",
            ExitCode.SECRETS,
        )


def write_secret(run_id: str, variable: str, value: str | None) -> bool:
    """Add one resolved value to the run's 0600 secrets file (in a 0700 folder); False when unresolved."""
    if not value:
        return False
    check_length(variable, value)
    path = _private_dir(run_id) / SECRETS_NAME
    values = read_secrets(run_id)
    values[variable] = value
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(values, handle)
    tmp.replace(path)
    return True


def redactor(run_id: str) -> redact.Redactor:
    """Everything that redacts the run's output: its secret values, read from the 0600 file."""
    return redact.Redactor(read_secrets(run_id).values())


def remove_secrets(run_id: str) -> None:
    """Delete the run's private folder and the values in it (teardown; also when a run fails early)."""
    shutil.rmtree(runtime_root() / check_run_id(run_id) / PRIVATE_DIR, ignore_errors=True)


def read_secrets(run_id: str) -> dict[str, str]:
    path = secrets_path(run_id)
    if not path.is_file():
        return {}
    values: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
    return values


def require_env(specs: Iterable[Mapping[str, Any]], environ: Mapping[str, str]) -> None:
    """--secrets env: every required secret must be set; one line names all that are not."""
    missing = [s["variable"] for s in specs if not s.get("optional") and not environ.get(s["variable"])]
    if missing:
        raise TestbedError(
            f"secrets: {', '.join(missing)} not set; export them, or use --secrets ssm", ExitCode.SECRETS
        )
    for spec in specs:
        if environ.get(spec["variable"]):
            check_length(spec["variable"], environ[spec["variable"]])


def resolve_env_secrets(config_secrets: list[dict[str, Any]], run_id: str, environ: MutableMapping[str, str]) -> None:
    """--secrets env: move values from the environment into the run's 0600 file, so they never travel
    in ansible-runner's recorded environment. Nothing is written unless every required one is set."""
    require_env(config_secrets, environ)
    for spec in config_secrets:
        value = environ.pop(spec["variable"], None)
        if value:
            write_secret(run_id, spec["variable"], value)


def secrets_source(requested: str, environ: Mapping[str, str]) -> str:
    if requested != "auto":
        return requested
    return "ssm" if is_github_actions(environ) else "env"
