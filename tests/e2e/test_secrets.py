"""Secrets from SSM (a moto server on loopback, real boto3 HTTP calls) and from the environment: delivered
to the service's tests through the 0600 file only, every failure one line naming variable and parameter
with exit code 11 and no server started, and no value anywhere a run writes or prints."""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from support import (
    FIXTURES,
    PROJECT,
    clean_env,
    cli,
    leftovers,
    playbook,
    refusing_port,
    run_folder_of,
    run_testbed,
    unique_run_id,
    without_masks,
)
from testbed.core.errors import ExitCode
from testbed.core.paths import runtime_root
from testbed.core.ports import free_port
from testbed.run import secrets as run_secrets

VARIABLE = "BASIC_API_KEY"
PARAMETER = "/testbed/test/api_key"
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account


@dataclass(frozen=True)
class Creds:
    key_id: str
    secret: str
    token: str = ""


@dataclass(frozen=True)
class FakeAWS:
    endpoint: str
    value: str
    reader: Creds  # an assumed role allowed ssm:GetParameter (with a session token)
    denied: Creds  # an IAM user explicitly denied ssm:GetParameter
    empty_file: Path


def _check_iam_is_enforced(endpoint: str, value: str, role: dict[str, str], key: dict[str, str]) -> None:
    """Over real HTTP: the role reads the SecureString decrypted, the denied user is refused."""
    import boto3  # noqa: PLC0415
    import botocore.exceptions  # noqa: PLC0415

    def client(key_id: str, secret: str, token: str | None = None):
        return boto3.client("ssm", endpoint_url=endpoint, region_name=REGION, aws_access_key_id=key_id,
                            aws_secret_access_key=secret, aws_session_token=token)

    got = client(role["AccessKeyId"], role["SecretAccessKey"], role["SessionToken"]).get_parameter(
        Name=PARAMETER, WithDecryption=True)["Parameter"]
    assert got["Type"] == "SecureString"
    assert got["Value"] == value
    with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
        client(key["AccessKeyId"], key["SecretAccessKey"]).get_parameter(Name=PARAMETER, WithDecryption=True)


@pytest.fixture(scope="module")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeAWS]:
    """One moto server for the module: a SecureString parameter, a role that may read it and a user that
    may not; IAM is enforced (moto's reset-auth) once everything is set up."""
    import boto3  # noqa: PLC0415

    home = tmp_path_factory.mktemp("moto")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = (home / "moto.log").open("wb")
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=clean_env())
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log_text = (home / "moto.log").read_text()
                    raise RuntimeError(f"moto server did not start: {log_text}") from None
                time.sleep(0.2)
        setup = {"endpoint_url": endpoint, "region_name": REGION,
                 "aws_access_key_id": "AKIASETUPSETUPSETUP0", "aws_secret_access_key": "setup"}
        value = "tbv-" + secrets.token_urlsafe(24)
        boto3.client("ssm", **setup).put_parameter(Name=PARAMETER, Value=value, Type="SecureString")
        iam = boto3.client("iam", **setup)

        def policy(effect: str) -> str:
            return json.dumps({"Version": "2012-10-17", "Statement": [
                {"Effect": effect, "Action": ["ssm:GetParameter", "kms:Decrypt"], "Resource": "*"}]})

        root = f"arn:aws:iam::{ACCOUNT}:root"
        trust = {"Version": "2012-10-17",
                 "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"AWS": root}}]}
        iam.create_role(RoleName="ci", AssumeRolePolicyDocument=json.dumps(trust))
        iam.put_role_policy(RoleName="ci", PolicyName="read", PolicyDocument=policy("Allow"))
        role = boto3.client("sts", **setup).assume_role(
            RoleArn=f"arn:aws:iam::{ACCOUNT}:role/ci", RoleSessionName="testbed")["Credentials"]
        iam.create_user(UserName="denied")
        iam.put_user_policy(UserName="denied", PolicyName="deny", PolicyDocument=policy("Deny"))
        key = iam.create_access_key(UserName="denied")["AccessKey"]
        # From now on every request is authenticated and authorised against moto's IAM.
        request = urllib.request.Request(f"{endpoint}/moto-api/reset-auth", data=b"0", method="POST",
                                         headers={"Content-Type": "text/plain"})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert json.loads(response.read())["status"] == "ok"
        _check_iam_is_enforced(endpoint, value, role, key)
        empty = home / "empty"
        empty.write_text("")
        reader = Creds(role["AccessKeyId"], role["SecretAccessKey"], role["SessionToken"])
        yield FakeAWS(endpoint, value, reader, Creds(key["AccessKeyId"], key["SecretAccessKey"]), empty)
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def _service(tmp_path: Path, value: str, parameter: str = PARAMETER) -> Path:
    """A private copy of the secretive fixture, told the sha256 (never the value) it must receive."""
    target = tmp_path / "secretive"
    shutil.copytree(FIXTURES / "services" / "secretive", target)
    config = target / "testbed.yml"
    text = config.read_text().replace("SHA256_PLACEHOLDER", hashlib.sha256(value.encode()).hexdigest())
    config.write_text(text.replace(PARAMETER, parameter))
    return target


def _aws_env(aws: FakeAWS, creds: Creds | None, endpoint: str | None = None, **extra: str) -> dict[str, str]:
    """A user's shell with exactly these AWS credentials (or none): no profile files, no instance metadata."""
    env = clean_env(AWS_CONFIG_FILE=str(aws.empty_file), AWS_SHARED_CREDENTIALS_FILE=str(aws.empty_file),
                    AWS_EC2_METADATA_DISABLED="true", AWS_REGION=REGION,
                    TESTBED_SSM_ENDPOINT_URL=endpoint or aws.endpoint, **extra)
    env.pop(VARIABLE, None)
    if creds is not None:
        env |= {"AWS_ACCESS_KEY_ID": creds.key_id, "AWS_SECRET_ACCESS_KEY": creds.secret}
        if creds.token:
            env["AWS_SESSION_TOKEN"] = creds.token
    return env


class ProcessWatch:
    """Every process whose command line names the run's runtime dir (servers' do), seen during the run."""

    def __init__(self, run_id: str) -> None:
        self.marker = f"/{run_id}/"
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            for proc in Path("/proc").iterdir():
                if proc.name.isdigit():
                    try:
                        raw = (proc / "cmdline").read_bytes()
                    except OSError:
                        continue
                    cmdline = raw.replace(b"\0", b" ").decode(errors="replace")
                    if self.marker in cmdline and "pytest" not in cmdline:
                        self.seen.add(cmdline[:160])
            self._stop.wait(0.05)

    def __enter__(self) -> ProcessWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _watched_run(service: Path, runs: Path, env: dict[str, str], run_id: str, *extra: str,
                 source: str = "ssm") -> tuple[subprocess.CompletedProcess[str], ProcessWatch]:
    with ProcessWatch(run_id) as watch:
        result = run_testbed(service, runs, "--secrets", source, *extra, run_id=run_id, env=env)
    return result, watch


def _hits(needles: dict[str, str], roots: list[Path], texts: dict[str, str]) -> list[str]:
    """Where any needle occurs: file paths (every file under the roots, read as bytes) and named texts."""
    found = []
    files = [p for root in roots if root.exists() for p in sorted(root.rglob("*")) if p.is_file()]
    for path in files:
        data = path.read_bytes()
        found += [f"{name} in {path}" for name, needle in needles.items() if needle.encode() in data]
    for where, text in texts.items():
        found += [f"{name} in {where}" for name, needle in needles.items() if needle in text]
    return found


# ------------------------------------------------------------------ delivered, and never leaked


@pytest.mark.slow
@pytest.mark.parametrize("github", [False, True], ids=["local", "github-actions"])
def test_ssm_value_reaches_the_tests_and_leaks_nowhere(aws: FakeAWS, tmp_path: Path, github: bool) -> None:
    service, runs, run_id = _service(tmp_path, aws.value), tmp_path / "runs", unique_run_id("secrets")
    extra_env: dict[str, str] = {}
    github_files: list[Path] = []
    if github:
        github_files = [tmp_path / "step_summary.md", tmp_path / "github_output"]
        for path in github_files:
            path.write_text("")
        extra_env = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(github_files[0]),
                     "GITHUB_OUTPUT": str(github_files[1]), "GITHUB_RUN_ID": "4242", "GITHUB_JOB": "secrets"}
    env = _aws_env(aws, aws.reader, **extra_env)
    runner_dir = runtime_root() / f"runner-{run_id}"
    try:
        # Under GitHub Actions, auto must pick SSM (nothing is in the environment to fall back on).
        source = "auto" if github else "ssm"
        result, watch = _watched_run(service, runs, env, run_id, "--keep-runner-dir", source=source)
        out = result.stdout
        assert result.returncode == 0, out + result.stderr
        assert "✅ Secrets: 1 resolved" in out
        assert "✅ Tests: 3 passed" in out, out
        folder = run_folder_of(out)
        # The fixture's test compared the sha256 of what it received with the stored value's.
        junit = (folder / "junit.xml").read_text()
        for counter in ('tests="3"', 'failures="0"', 'errors="0"'):
            assert counter in junit
        assert "test_received_the_secret" in junit
        assert any("postgres" in line for line in watch.seen), "the watcher must see the run's servers"

        lines = out.splitlines()
        masks = [line for line in lines if line.startswith("::add-mask::")]
        if github:
            # Masked as soon as the secrets phase resolved it: before the line that reports it.
            assert masks == [f"::add-mask::{aws.value}"], out
            assert lines.index(masks[0]) < lines.index("✅ Secrets: 1 resolved")
            assert "result=passed" in github_files[1].read_text()
            assert "integration tests" in github_files[0].read_text()
        else:
            assert masks == []

        assert runner_dir.is_dir(), "--keep-runner-dir keeps ansible-runner's private data dir"
        assert not (runner_dir / "artifacts" / "run" / "command").exists()
        needles = {"the SSM value": aws.value, "AWS_SECRET_ACCESS_KEY": aws.reader.secret,
                   "AWS_SESSION_TOKEN": aws.reader.token}
        scanned = [p for root in (folder, runner_dir) for p in root.rglob("*") if p.is_file()]
        assert len(scanned) > 20, scanned  # job events, junit, coverage, logs, state, report
        for name in ("junit.xml", "coverage.xml", "htmlcov/index.html", "pytest.log", "logs/postgres.log",
                     "logs/dragonfly.log", "state.json", "report.json", "durations.json"):
            assert (folder / name).is_file(), name
        hits = _hits(needles, [folder, runner_dir, *github_files],
                     {"stdout": without_masks(out), "stderr": result.stderr})
        assert hits == []
        assert not run_secrets.secrets_path(run_id).exists()
    finally:
        shutil.rmtree(runner_dir, ignore_errors=True)
    assert leftovers(run_id) == []


@pytest.mark.slow
def test_env_value_is_moved_out_of_the_environment_before_ansible_runner(tmp_path: Path) -> None:
    value = "tbe-" + secrets.token_urlsafe(24)
    service, runs, run_id = _service(tmp_path, value), tmp_path / "runs", unique_run_id("secrets")
    env = clean_env(**{VARIABLE: value})
    runner_dir = runtime_root() / f"runner-{run_id}"
    try:
        result, _ = _watched_run(service, runs, env, run_id, "--keep-runner-dir", source="env")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "✅ Tests: 3 passed" in result.stdout
        folder = run_folder_of(result.stdout)
        hits = _hits({"the env value": value}, [folder, runner_dir],
                     {"stdout": result.stdout, "stderr": result.stderr})
        assert hits == []
    finally:
        shutil.rmtree(runner_dir, ignore_errors=True)
    assert leftovers(run_id) == []


# ------------------------------------------------------- each failure: one line, exit 11, nothing started


FAILURES = {
    "missing-parameter": f"❌ Secrets: {VARIABLE}: SSM parameter /testbed/test/no_such_parameter "
                         f"not found in {REGION}",
    "access-denied": f"❌ Secrets: {VARIABLE} (SSM parameter {PARAMETER}): access denied "
                     "(the role needs ssm:GetParameter on it, and kms:Decrypt for its key)",
    "no-credentials": f"❌ Secrets: {VARIABLE} (SSM parameter {PARAMETER}): no AWS credentials "
                      "(in CI: configure-aws-credentials; locally: AWS_PROFILE, or --secrets env)",
    "unreachable-endpoint": f"❌ Secrets: {VARIABLE} (SSM parameter {PARAMETER}): "
                            "the SSM endpoint is unreachable (check TESTBED_SSM_ENDPOINT_URL / the network)",
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(FAILURES))
def test_ssm_failure_is_one_line_exit_11_and_starts_nothing(aws: FakeAWS, tmp_path: Path, case: str) -> None:
    parameter = "/testbed/test/no_such_parameter" if case == "missing-parameter" else PARAMETER
    service, runs, run_id = _service(tmp_path, aws.value, parameter), tmp_path / "runs", unique_run_id("secrets")
    creds = {"missing-parameter": aws.reader, "access-denied": aws.denied, "no-credentials": None,
             "unreachable-endpoint": aws.reader}[case]
    started = time.monotonic()
    with refusing_port() as closed:
        endpoint = f"http://127.0.0.1:{closed}" if case == "unreachable-endpoint" else None
        result, watch = _watched_run(service, runs, _aws_env(aws, creds, endpoint), run_id)
    out = result.stdout
    assert result.returncode == ExitCode.SECRETS, out + result.stderr
    failures = [line for line in out.splitlines() if line.startswith("❌")]
    assert failures == [FAILURES[case]], out
    assert time.monotonic() - started < 120  # a short connect timeout and few retries

    # Nothing was started: no process of the run ever ran, no server phase, no server log.
    assert watch.seen == set()
    assert "Running on port" not in out
    folder = run_folder_of(out)
    report = json.loads((folder / "report.json").read_text())
    assert report["exit_code"] == 11
    assert [p["name"] for p in report["phases"]] == ["preflight", "secrets", "teardown"]
    assert not (folder / "logs").exists()
    assert not (folder / "junit.xml").exists()
    assert leftovers(run_id) == []

    needles = {"the SSM value": aws.value, "the reader's secret key": aws.reader.secret,
               "the reader's session token": aws.reader.token,
               "the denied user's secret key": aws.denied.secret}
    assert _hits(needles, [folder], {"stdout": out, "stderr": result.stderr}) == []


def test_ci_alone_does_not_switch_to_ssm(tmp_path: Path) -> None:
    service = _service(tmp_path, "unused")
    result = cli("run", "--service", str(service), "--backend", "native", "--ports", "auto",
                 "--run-folder", str(tmp_path / "runs"), env=clean_env(CI="true"))
    assert result.returncode == ExitCode.SECRETS, result.stdout + result.stderr
    assert f"{VARIABLE} not set; export them, or use --secrets ssm" in result.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_playbook_refuses_verbosity_that_would_print_values(aws: FakeAWS, tmp_path: Path) -> None:
    service, runs, run_id = _service(tmp_path, aws.value), tmp_path / "runs", unique_run_id("secrets")
    env = _aws_env(aws, aws.reader, ANSIBLE_VERBOSITY="4")
    result = playbook("integration.yml", {"testbed_service": str(service), "testbed_backend": "native",
                                          "testbed_ports": "auto", "testbed_run_root": str(runs),
                                          "testbed_run_id": run_id, "testbed_secrets": "ssm"}, env=env)
    assert result.returncode != 0
    assert "rerun with at most -vv" in result.stdout
    assert aws.value not in result.stdout + result.stderr
    assert leftovers(run_id) == []


# ------------------------------------------------------------------ the 0600 file and the messages, directly








def test_every_task_that_touches_a_value_is_no_log() -> None:
    """no_log on the task, and on the module's value parameter: two guards, each enough on its own."""
    touching = 0
    for path in sorted((PROJECT / "roles" / "secrets" / "tasks").glob("*.yml")):
        for task in yaml.safe_load(path.read_text()) or []:
            text = json.dumps(task)
            if "testbed_secret\"" in text or "ssm_parameter" in text or "item.variable)" in text:
                touching += 1
                assert task.get("no_log") is True, f"{path.name}: {task.get('name')}"
                # The check step after it reports a failure; no_log would hide it.
                assert task.get("ignore_errors") is True, f"{path.name}: {task.get('name')}"
    assert touching >= 2  # env.yml and ssm.yml
    module = (PROJECT / "plugins" / "modules" / "testbed_secret.py").read_text()
    assert '"value": {"type": "raw", "no_log": True}' in module
