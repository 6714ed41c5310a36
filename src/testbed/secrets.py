"""The service's secrets: resolved into one 0600 file in the run's private 0700 folder, which is the only
way values reach pytest; failures name the variable and parameter, never a value."""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from testbed.errors import ExitCode, TestbedError
from testbed.state import check_run_id, runtime_root

SECRETS_NAME = "secrets.json"


def secrets_path(run_id: str) -> Path:
    return runtime_root() / run_id / "private" / SECRETS_NAME


def _private_dir(run_id: str) -> Path:
    """The run's 0700 private folder, created when missing (the wrapper writes env-mode values before
    preflight has created the runtime dir); refuses a symlink or a folder owned by someone else."""
    run_dir = runtime_root() / check_run_id(run_id)
    # The runtime dir must stay reachable by the unprivileged server user: 0755, like RunState.create.
    run_dir.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    run_dir.mkdir(mode=0o755, exist_ok=True)
    private = run_dir / "private"
    private.mkdir(mode=0o700, exist_ok=True)
    info = private.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise TestbedError(f"secrets: {private} is not a folder of this user; remove it and rerun",
                           ExitCode.SECRETS)
    private.chmod(0o700)
    return private


def write_secret(run_id: str, variable: str, value: str | None) -> bool:
    """Add one resolved value to the run's 0600 secrets file (in a 0700 folder); False when unresolved."""
    if not value:
        return False
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


def remove_secrets(run_id: str) -> None:
    """Delete the run's private folder and the values in it (teardown; also when a run fails early)."""
    shutil.rmtree(runtime_root() / check_run_id(run_id) / "private", ignore_errors=True)


def read_secrets(run_id: str) -> dict[str, str]:
    path = secrets_path(run_id)
    if not path.is_file():
        return {}
    values: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
    return values


def _classify_ssm_error(message: str) -> str:
    """One phrase for why a lookup failed, without echoing anything it returned."""
    lowered = message.lower()
    if "unable to locate credentials" in lowered or "nocredentials" in lowered:
        return "no AWS credentials (in CI: configure-aws-credentials; locally: AWS_PROFILE, or --secrets env)"
    if "accessdenied" in lowered or "access denied" in lowered or "not authorized" in lowered:
        return "access denied (the role needs ssm:GetParameter on it, and kms:Decrypt for its key)"
    if "could not connect" in lowered or "connect timeout" in lowered or "endpoint" in lowered:
        return "the SSM endpoint is unreachable (check TESTBED_SSM_ENDPOINT_URL / the network)"
    if "expired" in lowered or "invalidclienttokenid" in lowered or "signature" in lowered:
        return "AWS credentials were refused (expired or invalid)"
    return "the lookup failed (run with -v for Ansible's reason; it never includes the value)"


def check_secrets(params: Mapping[str, Any]) -> dict[str, Any]:
    """After the no_log resolution step: name every secret that did not resolve, never a value."""
    source = params["source"]
    run_id = params["run_id"]
    outcomes = {r.get("item", {}).get("variable"): r for r in params.get("results") or []}
    present = set(read_secrets(run_id)) if source == "file" else set()
    problems: list[str] = []
    skipped: list[str] = []
    for spec in params["specs"]:
        variable, parameter = spec["variable"], spec["parameter"]
        outcome = outcomes.get(variable, {})
        if outcome.get("failed"):
            problems.append(f"{variable} (SSM parameter {parameter}): {_classify_ssm_error(str(outcome.get('msg', '')))}")
        elif outcome.get("present") or variable in present:
            continue
        elif source in ("env", "file") and spec.get("optional"):
            skipped.append(variable)
        elif source == "ssm":
            problems.append(f"{variable}: SSM parameter {parameter} not found in {params.get('region', '?')}")
        else:
            problems.append(f"{variable} is not set (export it, or use --secrets ssm)")
    if problems:
        raise TestbedError("secrets: " + "; ".join(problems), ExitCode.SECRETS)
    return {"resolved": [s["variable"] for s in params["specs"] if s["variable"] not in skipped],
            "skipped_optional": skipped, "changed": False}
