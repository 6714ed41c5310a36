"""The composite action (action.yml) run on this machine step by step, as GitHub's runner runs it
(tests/support/gha_runner.py), against the example service (examples/minimal): its outputs, its step summary, the run
folder it uploads, and the job failing with testbed's exit code after the upload.

The `uses:` steps are stood in for by what they do on a runner (each stand-in below says how). The job runs
offline: UV_OFFLINE=1, so uv installs testbed and the service's dependencies from its cache, which on a runner
is what the action's uv cache step restores.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from support import BIN, PROJECT, clean_env
from support.gha_runner import Job, StepFailed, base_python, read_file_commands
from testbed.ansible import collections_install
from testbed.core import installers

EXAMPLE = PROJECT / "examples" / "minimal"


def _uv() -> Path:
    for candidate in (BIN / "uv", installers.cache_home() / "tools" / "uv" / "bin" / "uv"):
        if candidate.is_file():
            return candidate
    pytest.fail("no uv: it is in testbed's dev extra (pip install -e '.[dev]')")


# ------------------------------------------------------------------ stand-ins for the `uses:` steps


class StandIns:
    """What each pinned action does on a runner, done here; every call is recorded for the test."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, str]]] = []

    def table(self) -> dict[str, Any]:
        return {
            "actions/setup-python": self.setup_python,
            "astral-sh/setup-uv": self.setup_uv,
            "actions/cache": self.cache,
            "aws-actions/configure-aws-credentials": self.aws_credentials,
            "actions/upload-artifact": self.upload_artifact,
        }

    def called(self, action: str) -> list[dict[str, str]]:
        return [inputs for name, inputs in self.calls if name == action]

    @staticmethod
    def _link(folder: Path, name: str, target: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).unlink(missing_ok=True)
        (folder / name).symlink_to(target)

    def setup_python(self, inputs: dict[str, str], job: Job) -> dict[str, str]:
        """Puts the requested Python first on PATH from the runner's tool cache (downloaded on a miss) and
        outputs its version and path. Here the tool cache holds this machine's interpreter, which must be
        that version."""
        self.calls.append(("actions/setup-python", inputs))
        python = base_python()
        version = subprocess.run([str(python), "-c", "import platform; print(platform.python_version())"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        wanted = inputs["python-version"]
        if version != wanted and not version.startswith(wanted + "."):
            raise StepFailed(f"The version '{wanted}' with architecture 'x64' was not found (here: {version})")
        folder = job.root / "tool-cache" / "Python" / version / "x64" / "bin"
        for name in ("python", "python3"):
            self._link(folder, name, python)
        job.path_additions.append(str(folder))
        return {"python-version": version, "python-path": str(folder / "python")}

    def setup_uv(self, inputs: dict[str, str], job: Job) -> dict[str, str]:
        """Downloads uv and puts it on PATH (its own cache is off: the action caches uv's cache itself).
        Here the uv of testbed's dev extra is linked there."""
        self.calls.append(("astral-sh/setup-uv", inputs))
        assert inputs.get("enable-cache") == "false"
        folder = job.root / "tool-cache" / "uv"
        self._link(folder, "uv", _uv())
        job.path_additions.append(str(folder))
        return {"uv-version": "local", "uv-path": str(folder / "uv")}

    def cache(self, inputs: dict[str, str], _job: Job) -> dict[str, str]:
        """Restores `path` from the entry saved under `key` (or the newest under a `restore-keys` prefix) and
        saves it after the job. Here the paths already hold what earlier runs left on this machine (uv's
        cache, testbed's wheel cache), as a restored entry would: nothing is copied, the call is recorded
        and the test checks that the path is the one the tools then read."""
        self.calls.append(("actions/cache", inputs))
        assert inputs["path"] and inputs["key"]
        return {"cache-hit": "false"}

    def aws_credentials(self, inputs: dict[str, str], _job: Job) -> dict[str, str]:
        """Assumes `role-to-assume` with the job's OIDC token and exports AWS_* credentials. The runs here use
        secrets env, where the step must not run: reaching it fails the step."""
        self.calls.append(("aws-actions/configure-aws-credentials", inputs))
        raise StepFailed("Could not assume role with OIDC: no ACTIONS_ID_TOKEN_REQUEST_URL (no id-token: write)")

    def upload_artifact(self, inputs: dict[str, str], job: Job) -> dict[str, str]:
        """Uploads the files under `path` (hidden ones left out, as v4.4 does) as the artifact `name`, which a
        workflow run may hold once. Here they are copied into the job's artifact folder."""
        self.calls.append(("actions/upload-artifact", inputs))
        name, source = inputs["name"], Path(inputs["path"])
        if not name or re.search(r'[":<>|*?\\/\r\n]', name):
            raise StepFailed(f"The artifact name is not valid: {name!r}")
        target = job.artifacts / name
        if target.exists():
            raise StepFailed(f"Failed to CreateArtifact: an artifact with this name already exists ({name})")
        if not source.is_dir() or not any(p.is_file() for p in source.rglob("*")):
            if inputs.get("if-no-files-found") == "error":
                raise StepFailed(f"No files were found with the provided path: {source}")
            job.log += f"::warning::No files were found with the provided path: {source}\n"
            return {}
        shutil.copytree(source, target, ignore=shutil.ignore_patterns(".*"))
        return {"artifact-id": "1", "artifact-url": f"https://example.invalid/artifacts/{name}"}


# ------------------------------------------------------------------ a job


def _runner_env() -> dict[str, str]:
    """The runner process's environment: a user's shell without this virtualenv on PATH, offline for uv."""
    env = clean_env(UV_OFFLINE="1", PIP_NO_INDEX="1")
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if Path(p) != BIN)
    return env


def _job(tmp_path: Path, workspace: Path, stand_ins: StandIns, environment: str = "github-hosted",
         **inputs: str) -> Job:
    return Job(action_dir=PROJECT, workspace=workspace, root=tmp_path / "runner", inputs=inputs,
               stand_ins=stand_ins.table(), base_env=_runner_env(), environment=environment)


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """The example service checked out as a repository of its own, testbed.yml at its root; the folder's name is
    the repository's, as on a runner, and names the service."""
    workspace = tmp_path / "minimal"
    shutil.copytree(EXAMPLE, workspace)
    return workspace


@pytest.mark.usefixtures("fixed_ports")
def test_the_action_runs_the_example_service_and_sets_its_outputs(example: Path, tmp_path: Path):
    stand_ins = StandIns()
    job = _job(tmp_path, example, stand_ins, backend="native").run()
    assert job.exit_code == 0, job.log
    assert not job.failed
    outcomes = {r.name: r.outcome for r in job.results}
    assert outcomes["Configure AWS credentials (OIDC)"] == "skipped"  # secrets env: no AWS
    assert outcomes["Upload the run folder"] == "success"
    assert outcomes["Fail with testbed's exit code"] == "skipped"
    assert set(outcomes.values()) == {"success", "skipped"}

    outputs = job.outputs
    assert outputs["exit-code"] == "0"
    assert outputs["result"] == "passed"
    assert (outputs["passed"], outputs["failed"], outputs["errors"]) == ("2", "0", "0")
    assert outputs["coverage"] == "100"
    assert outputs["artifact-name"] == "testbed-integration-1"
    folder = Path(outputs["run-folder"])
    assert folder.parent == job.temp / "testbed-runs" / "testbed-integration-1"
    assert (folder / "junit.xml").is_file()
    report = json.loads((folder / "report.json").read_text())
    assert report["service"] == "minimal" and report["backend"] == "native" and report["exit_code"] == 0

    # testbed's own summary, once (the action adds none of its own).
    assert job.summary.count("## ✅ minimal integration tests: passed") == 1, job.summary
    assert "| 2 | 0 | 0 | 0 |" in job.summary
    assert "**Coverage:** 100.0%" in job.summary
    assert job.annotations() == []

    # The run folder was uploaded under the name the outputs give.
    uploaded = job.artifacts / outputs["artifact-name"] / folder.name
    assert (uploaded / "junit.xml").is_file() and (uploaded / "report.json").is_file()

    # The caches: uv's cache where uv reads it, keyed on testbed's pyproject.toml and the service's
    # requirements; the ansible wheel where `testbed collections install` reads it, keyed on its release.
    uv_cache, wheel = stand_ins.called("actions/cache")
    uv_dir = subprocess.run([str(_uv()), "cache", "dir"], capture_output=True, text=True, check=True,
                            env=_runner_env()).stdout.strip()
    assert uv_cache["path"] == uv_dir
    testbed_hash = job.steps["versions"]["outputs"]["testbed"]
    service_hash = job.steps["versions"]["outputs"]["service"]
    assert testbed_hash == _sha256_16((PROJECT / "pyproject.toml").read_bytes())
    assert service_hash == _sha256_16((example / "requirements.txt").read_bytes())
    assert uv_cache["key"] == f"testbed-uv-Linux-{testbed_hash}-{service_hash}"
    assert uv_cache["restore-keys"].split() == ["testbed-uv-Linux-"]
    assert wheel["key"] == f"testbed-ansible-wheel-{collections_install.ANSIBLE_RELEASE}"
    assert wheel["path"] == str(collections_install.wheel_path()) and Path(wheel["path"]).is_file()

    # testbed came from the action's own checkout, into the runner's temp folder, with the collections.
    venv = job.temp / "testbed-venv"
    assert job.steps["install"]["outputs"]["python"] == str(venv / "bin" / "python")
    assert str(venv / "bin") in job.path_additions
    assert list(venv.glob("lib/python3*/site-packages/ansible_collections/community/docker"))
    assert not list(venv.glob("lib/python3*/site-packages/boto3"))  # boto3 only for secrets ssm


def _sha256_16(data: bytes) -> str:
    import hashlib  # noqa: PLC0415

    return hashlib.sha256(data).hexdigest()[:16]


@pytest.mark.usefixtures("fixed_ports")
def test_a_failing_test_fails_the_job_with_testbeds_code_after_the_upload(example: Path, tmp_path: Path):
    (example / "tests" / "test_broken.py").write_text(
        "import notes\n\n\ndef test_notes_are_counted():\n    with notes.connect() as conn:\n"
        "        assert notes.bodies(conn) == ['never written']\n")
    stand_ins = StandIns()
    job = _job(tmp_path, example, stand_ins, backend="native").run()
    assert job.failed
    assert job.exit_code == 1, job.log
    run_step = job.result("Run testbed")
    assert run_step.outcome == "success"  # the step that runs testbed never fails
    assert job.result("Upload the run folder").outcome == "success"  # reached after the failure
    failing = job.result("Fail with testbed's exit code")
    assert (failing.outcome, failing.exit_code) == ("failure", 1)
    names = [r.name for r in job.results]
    assert names.index("Upload the run folder") < names.index("Fail with testbed's exit code")

    outputs = job.outputs
    assert (outputs["exit-code"], outputs["result"], outputs["passed"], outputs["failed"]) == (
        "1", "failed", "2", "1")
    folder = Path(outputs["run-folder"])
    uploaded = job.artifacts / outputs["artifact-name"] / folder.name / "junit.xml"
    assert "test_notes_are_counted" in uploaded.read_text()

    assert "## ❌ minimal integration tests: failed (exit 1: tests failed)" in job.summary
    assert "test_notes_are_counted" in job.summary
    # One annotation, testbed's own, pointing at the failing test.
    (annotation,) = job.annotations()
    assert annotation.startswith("::error file=tests/test_broken.py,line=")


@pytest.mark.parametrize(("inputs", "message"), [
    ({"secrets": "vault"}, "secrets must be env or ssm, not 'vault'"),
    ({"upload-artifacts": "yes"}, "upload-artifacts must be true or false, not 'yes'"),
    ({"aws-role": "arn:aws:iam::1:role/r"},
     "aws-role is for secrets: ssm (secrets is 'env'); set secrets: ssm or leave aws-role out"),
])
def test_bad_inputs_stop_the_action_with_one_line_and_exit_10_before_anything_is_installed(
        example: Path, tmp_path: Path, inputs: dict[str, str], message: str):
    stand_ins = StandIns()
    job = _job(tmp_path, example, stand_ins, **inputs).run()
    assert job.exit_code == 10
    assert job.outputs["exit-code"] == "10"
    (annotation,) = job.annotations()
    assert annotation == f"::error title=testbed action::{message}"
    assert stand_ins.calls == []  # nothing installed, nothing uploaded
    assert {r.outcome for r in job.results[1:]} == {"skipped"}


def test_an_input_testbed_refuses_is_its_one_line_and_exit_10_and_the_job_still_uploads(example: Path,
                                                                                       tmp_path: Path):
    """backend, workers, shard: testbed checks them (one place for the rule), before anything starts."""
    stand_ins = StandIns()
    job = _job(tmp_path, example, stand_ins, backend="podman").run()
    assert job.exit_code == 10 and job.outputs["exit-code"] == "10"
    run_step = job.result("Run testbed")
    assert run_step.outcome == "success"
    assert "testbed run: error: argument --backend: invalid choice: 'podman'" in run_step.log
    assert job.result("Upload the run folder").outcome == "success"  # nothing to upload: a warning, no failure
    assert job.annotations("warning") == [
        f"::warning::No files were found with the provided path: {job.temp / 'testbed-runs' / 'testbed-integration-1'}"]
    assert job.result("Fail with testbed's exit code").exit_code == 10


def test_the_aws_step_runs_for_secrets_ssm_with_a_role_only(tmp_path: Path):
    job = _job(tmp_path, tmp_path, StandIns())
    step = job.step("Configure AWS credentials (OIDC)")
    cases = {("ssm", "arn:aws:iam::1:role/r"): True, ("ssm", ""): False, ("env", ""): False}
    for (secrets, role), expected in cases.items():
        job.inputs = {"secrets": secrets, "aws-role": role}
        assert job.condition(step) is expected, (secrets, role)
    job.inputs = {"secrets": "ssm", "aws-role": "arn:aws:iam::1:role/r", "aws-region": "eu-west-1"}
    assert {k: job.render(v) for k, v in step["with"].items()} == {
        "role-to-assume": "arn:aws:iam::1:role/r", "aws-region": "eu-west-1"}


# ------------------------------------------------------------------ the run step alone, with a stand-in testbed

FAKE_TESTBED = """\
import json, os, signal, sys
from pathlib import Path


Path(os.environ["ARGS_FILE"]).write_text(json.dumps(sys.argv[1:]))
if os.environ.get("WAIT_FILE"):
    got = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda received, _frame: got.append(received))
    Path(os.environ["WAIT_FILE"]).write_text("ready")
    while not got:
        signal.pause()
    Path(os.environ["WAIT_FILE"]).write_text(f"got {got[0]}")
    sys.exit(128 + got[0])
sys.exit(int(os.environ.get("EXIT", "0")))
"""


def _run_step_job(tmp_path: Path, **inputs: str) -> tuple[Job, dict[str, Any]]:
    """A job that is at the run step: testbed (a stand-in that records its arguments) on PATH."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    fake = bin_dir / "testbed"
    fake.write_text(f"#!{sys.executable}\n{FAKE_TESTBED}")
    fake.chmod(0o755)
    job = _job(tmp_path, tmp_path, StandIns(), **inputs)
    job.path_additions.append(str(bin_dir))
    job.env["ARGS_FILE"] = str(tmp_path / "args.json")
    job.steps = {"inputs": {"outputs": {"artifact-name": "art"}}, "install": {"outputs": {"python": sys.executable}}}
    return job, job.step("Run testbed")


def _args(tmp_path: Path) -> list[str]:
    return json.loads((tmp_path / "args.json").read_text())


@pytest.mark.parametrize(("inputs", "durations", "expected"), [
    ({}, False, []),
    ({"shard": "2/3", "durations": "d.json"}, False, ["--shard", "2/3"]),
    ({"shard": "2/3", "durations": "d.json"}, True, ["--shard", "2/3", "--durations", "d.json"]),
    ({"durations": "d.json"}, True, []),  # durations only split shards
    ({"workers": "auto"}, False, ["--workers", "auto"]),
])
def test_run_step_passes_the_inputs_to_testbed(tmp_path: Path, inputs: dict[str, str], durations: bool,
                                               expected: list[str]):
    if durations:
        (tmp_path / "d.json").write_text('{"tests/test_a.py::test_a": 1.0}')
    job, step = _run_step_job(tmp_path, **inputs)
    result = job.finish("run", *_run(job, step))
    assert result.outcome == "success" and result.outputs["exit-code"] == "0", result.log
    assert _args(tmp_path) == ["run", "--service", ".", "--backend", "auto", "--ports", "fixed", "--secrets", "env",
                               "--run-folder", str(job.temp / "testbed-runs" / "art"), *expected]


def _run(job: Job, step: dict[str, Any]) -> tuple[int, str, dict[str, Path]]:
    argv, env, cwd, files = job.prepare(step)
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False)
    return done.returncode, done.stdout + done.stderr, files


def test_pytest_args_are_split_into_words_and_never_evaluated(tmp_path: Path):
    marker = tmp_path / "evaluated"
    hostile = f"""-k 'a and not b' -m "x y" $(touch {marker}) `touch {marker}` ; touch {marker} ${{HOME}}"""
    job, step = _run_step_job(tmp_path, **{"pytest-args": hostile})
    job.finish("run", *_run(job, step))
    assert _args(tmp_path)[-13:] == ["--", "-k", "a and not b", "-m", "x y", "$(touch", f"{marker})", "`touch",
                                     f"{marker}`", ";", "touch", str(marker), "${HOME}"]
    assert not marker.exists()
    assert "${{" not in step["run"]  # inputs reach the script through env: only


def test_pytest_args_that_are_not_shell_words_are_refused_with_exit_10(tmp_path: Path):
    job, step = _run_step_job(tmp_path, **{"pytest-args": "-k 'unclosed"})
    result = job.finish("run", *_run(job, step))
    assert result.outcome == "success" and result.outputs == {"exit-code": "10"}
    assert result.log.splitlines() == [
        "::error title=pytest-args::pytest-args is not a list of shell words (an unclosed quote?)"]
    assert not (tmp_path / "args.json").exists()


@pytest.mark.parametrize("code", [1, 13, 143])
def test_run_step_keeps_testbeds_exit_code_and_succeeds(tmp_path: Path, code: int):
    job, step = _run_step_job(tmp_path)
    job.env["EXIT"] = str(code)
    result = job.finish("run", *_run(job, step))
    assert (result.outcome, result.outputs["exit-code"]) == ("success", str(code))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_cancelled_jobs_signal_reaches_testbed_and_its_code_is_kept(tmp_path: Path, signum: int):
    """The runner signals the step's shell only; the shell passes it on to testbed (which tears down)."""
    job, step = _run_step_job(tmp_path)
    wait_file = tmp_path / "wait"
    job.env["WAIT_FILE"] = str(wait_file)
    argv, env, cwd, files = job.prepare(step)
    # A session of its own, so that a failing test leaves nothing behind; the signal goes to the shell alone. The
    # runner starts a step's shell with SIGINT at its default: a shell that starts with it ignored (as this
    # process's children do when the suite was started in the background) cannot trap it.
    previous = signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        shell = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                 start_new_session=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        for _ in range(600):  # testbed has installed its handlers once it writes the file
            if wait_file.is_file() and wait_file.read_text() == "ready":
                break
            try:
                shell.wait(timeout=0.1)
            except subprocess.TimeoutExpired:
                continue
            pytest.fail(f"the step ended before testbed was ready: {shell.stdout.read() if shell.stdout else ''}")
        else:
            pytest.fail("testbed never became ready")
        shell.send_signal(signum)
        log, _ = shell.communicate(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(shell.pid, signal.SIGKILL)  # the stand-in testbed too, if the shell never passed it on
        shell.wait()
    assert wait_file.read_text() == f"got {int(signum)}"
    assert shell.returncode == 0, log
    assert read_file_commands(files["output"]) == {"exit-code": str(128 + signum)}


# ------------------------------------------------------------------ Docker


@pytest.mark.docker
def test_the_action_on_the_docker_backend_of_a_self_hosted_runner(example: Path, tmp_path: Path, local_images):
    """A self-hosted runner (this machine): free ports, and no cache steps (the host keeps its own caches).
    PostgreSQL's image is the locally built one (tests/images/build.py), named in the service's testbed.yml."""
    config = example / "testbed.yml"
    config.write_text(config.read_text() + f"settings:\n  postgres:\n    image: {local_images['postgres']}\n")
    stand_ins = StandIns()
    job = _job(tmp_path, example, stand_ins, backend="docker", environment="self-hosted").run()
    assert job.exit_code == 0, job.log
    assert stand_ins.called("actions/cache") == []
    assert (job.outputs["passed"], job.outputs["failed"], job.outputs["exit-code"]) == ("2", "0", "0")
    report = json.loads((Path(job.outputs["run-folder"]) / "report.json").read_text())
    assert report["backend"] == "docker"
    assert "## ✅ minimal integration tests: passed" in job.summary
