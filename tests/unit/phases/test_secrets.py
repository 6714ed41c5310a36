"""The secrets phase's results: a failure names the variable and parameter, never the value; optional secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.core.errors import ExitCode, TestbedError
from testbed.phases import secrets as phases_secrets
from testbed.run import secrets as run_secrets

VARIABLE, PARAMETER, REGION = "BASIC_API_KEY", "/testbed/test/api_key", "us-east-1"


@pytest.mark.parametrize(("message", "reason"), [
    ("An unhandled exception occurred while running the lookup plugin 'amazon.aws.ssm_parameter'. "
     "Error was a <class 'botocore.exceptions.NoCredentialsError'>, "
     "original message: Unable to locate credentials",
     "no AWS credentials"),
    ("Failed to access SSM parameter /x (AccessDenied)", "access denied"),
    ("SSM lookup exception: An error occurred (ExpiredTokenException) when calling the GetParameter "
     "operation: The security token included in the request is expired", "AWS credentials were refused"),
    ("Could not connect to the endpoint URL: \"http://127.0.0.1:9/\"", "the SSM endpoint is unreachable"),
    ("Connect timeout on endpoint URL: \"https://ssm.us-east-1.amazonaws.com/\"",
     "the SSM endpoint is unreachable"),
    ("SSM lookup exception: An error occurred (ThrottlingException) when calling the GetParameter operation: "
     "Rate exceeded", "the lookup failed (ThrottlingException)"),
    ("something else entirely: s3cr3t?", "the lookup failed"),
])
def test_failure_messages_name_variable_and_parameter_only(message: str, reason: str) -> None:
    specs = [{"variable": VARIABLE, "parameter": PARAMETER, "optional": False}]
    results = [{"failed": True, "msg": message, "item": specs[0]}]
    with pytest.raises(TestbedError) as caught:
        phases_secrets.check_secrets({"source": "ssm", "run_id": "unit-run", "region": REGION, "specs": specs,
                                  "results": results})
    text = str(caught.value)
    assert caught.value.exit_code == ExitCode.SECRETS
    assert text.startswith(f"secrets: {VARIABLE} (SSM parameter {PARAMETER}): {reason}")
    assert "s3cr3t" not in text
    assert "\n" not in text


def test_optional_secret_is_skipped_only_outside_ssm(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESTBED_RUNTIME_DIR", str(tmp_path / "rt"))
    specs = [{"variable": "NEEDED", "parameter": "/p/needed", "optional": False},
             {"variable": "EXTRA", "parameter": "/p/extra", "optional": True}]
    run_secrets.write_secret("unit-run", "NEEDED", "needed-value")
    done = phases_secrets.check_secrets({"source": "file", "run_id": "unit-run", "specs": specs, "results": []})
    assert done["resolved"] == ["NEEDED"]
    assert done["skipped_optional"] == ["EXTRA"]
    results = [{"present": True, "item": specs[0]}, {"present": False, "item": specs[1]}]
    expected = r"^secrets: EXTRA: SSM parameter /p/extra not found in us-east-1$"
    with pytest.raises(TestbedError, match=expected):
        phases_secrets.check_secrets({"source": "ssm", "run_id": "unit-run", "region": REGION, "specs": specs,
                                  "results": results})
