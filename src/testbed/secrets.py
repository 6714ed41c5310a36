"""The service's secrets: resolved into one 0600 file in the run's private 0700 folder, which is the only
way values reach pytest; failures name the variable and parameter, never a value."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from testbed import redact
from testbed.errors import ExitCode, TestbedError
from testbed.state import check_run_id, runtime_root

SECRETS_NAME = "secrets.json"
PRIVATE_DIR = "private"  # the run's 0700 folder in its runtime folder


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
    """Refuse a value too short to redact safely (testbed.redact), naming the variable, never the value."""
    if redact.too_short(value):
        raise TestbedError(
            f"secrets: {variable}: value shorter than {redact.MIN_SECRET_LENGTH} characters, too short to redact "
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


_AWS_CODE = re.compile(r"An error occurred \((\w+)\)")
_EXCEPTION = re.compile(r"(?:botocore|boto3)\.exceptions\.(\w+)")
# (phrases in a lookup's error, lower-cased) -> what to say; the first match wins.
_REASONS: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("required python library (botocore and boto3)",),  # amazon.aws's lookup, boto3 absent
        "boto3 is not installed (pip install 'testbed[aws]', or use --secrets env)",
    ),
    (
        ("unable to locate credentials", "nocredentials"),
        "no AWS credentials (in CI: configure-aws-credentials; locally: AWS_PROFILE, or --secrets env)",
    ),
    (
        ("accessdenied", "access denied", "not authorized"),
        "access denied (the role needs ssm:GetParameter on it, and kms:Decrypt for its key)",
    ),
    (
        (
            "expiredtoken",
            "token included in the request is expired",
            "invalidclienttokenid",
            "unrecognizedclient",
            "signaturedoesnotmatch",
            "security token included in the request is invalid",
        ),
        "AWS credentials were refused (expired or invalid)",
    ),
    (("parameternotfound", "resourcenotfound"), "not found"),
    (
        (
            "could not connect to the endpoint",
            "endpointconnectionerror",
            "connect timeout",
            "connecttimeout",
            "read timeout",
            "readtimeout",
            "connection refused",
            "connectionclosederror",
            "name or service not known",
        ),
        "the SSM endpoint is unreachable (check TESTBED_SSM_ENDPOINT_URL / the network)",
    ),
    (("noregion", "must specify a region"), "no AWS region (set AWS_REGION)"),
)


def _classify_ssm_error(message: str) -> str:
    """One phrase for why a lookup failed, never echoing what it said: at most an error code."""
    lowered = message.lower()
    for phrases, reason in _REASONS:
        if any(phrase in lowered for phrase in phrases):
            return reason
    code = _AWS_CODE.search(message) or _EXCEPTION.search(message)
    return f"the lookup failed ({code.group(1)})" if code else "the lookup failed"


def _failure_reason(outcome: Mapping[str, Any]) -> str:
    message = " ".join(str(outcome.get("msg", "")).split())
    if outcome.get("exit_code") is not None and message:
        # testbed_secret's own one-line error (Ansible has already masked the no_log value out of it).
        return message.removeprefix("secrets: ")
    return _classify_ssm_error(message)


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


def check_secrets(params: Mapping[str, Any]) -> dict[str, Any]:
    """After the no_log resolution step: name every secret that did not resolve, never a value."""
    source = params["source"]
    run_id = params["run_id"]
    region = params.get("region") or "the default region"
    outcomes = {r.get("item", {}).get("variable"): r for r in params.get("results") or []}
    present = set(read_secrets(run_id)) if source == "file" else set()
    problems: list[str] = []
    skipped: list[str] = []
    for spec in params["specs"]:
        variable, parameter = spec["variable"], spec["parameter"]
        outcome = outcomes.get(variable, {})
        if outcome.get("failed"):
            where = f"{variable} (SSM parameter {parameter})" if source == "ssm" else variable
            reason = _failure_reason(outcome).removeprefix(f"{variable}: ")  # testbed_secret's own names it
            problems.append(f"{where}: {reason}" + (f" in {region}" if reason == "not found" else ""))
        elif outcome.get("present") or variable in present:
            continue
        elif source in ("env", "file") and spec.get("optional"):
            skipped.append(variable)
        elif source == "ssm":
            problems.append(f"{variable}: SSM parameter {parameter} not found in {region}")
        else:
            problems.append(f"{variable} is not set (export it, or use --secrets ssm)")
    if problems:
        raise TestbedError("secrets: " + "; ".join(problems), ExitCode.SECRETS)
    return {
        "resolved": [s["variable"] for s in params["specs"] if s["variable"] not in skipped],
        "skipped_optional": skipped,
        "changed": False,
    }
