"""The secrets phase's check: every required secret resolved (SSM or the environment), and a failure named
by its variable and parameter and classified (no access, not found, no credentials), never by a value."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from testbed.core.errors import ExitCode, TestbedError
from testbed.run.secrets import read_secrets

_AWS_CODE = re.compile(r"An error occurred \((\w+)\)")


_EXCEPTION = re.compile(r"(?:botocore|boto3)\.exceptions\.(\w+)")


# (phrases in a lookup's error, lower-cased) -> what to say; the first match wins.
_REASONS: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("required python library (botocore and boto3)",),  # amazon.aws's lookup, boto3 absent
        "boto3 is not installed (pip install boto3, testbed's aws extra; or use --secrets env)",
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
