"""The wrapper's contract: validation before anything starts, event rendering, and every exit code."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from support import clean_env, cli, leftovers, run_folder_of, secret_hits
from testbed.core.errors import ExitCode
from testbed.core.paths import runtime_root


def _private_runtime(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An environment whose runtime root is this test's own: other runs on the host (a CI job's, a
    colleague's) come and go in the shared one, so "nothing started" is checked where only this test looks."""
    root = tmp_path / "runtime"
    return clean_env(TESTBED_RUNTIME_DIR=str(root)), root


def _runs_in(root: Path) -> set[str]:
    return {path.parent.name for path in root.glob("*/state.json")}


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (None, "no testbed.yml in"),
        ("name: x\nservers: [postgres]\nbogus: 1\n", "unknown key 'bogus'"),
        ("name: x\nservers: postgres\n", "'servers' must be a list, got str"),
        ("name: x\nservers: [postgres, mysql]\n", "unknown server 'mysql'"),
        ("name: x\nservers: [postgres]\nsettings:\n  postgres:\n    port: fifteen\n",
         "'settings.postgres.port' must be an integer, got str"),
        ("name: x\nservers: [postgres]\nsettings:\n  postgres:\n    colour: blue\n",
         "unknown key 'settings.postgres.colour'"),
        ("name: x\nservers: [postgres]\ntests:\n  timeout: true\n", "'tests.timeout' must be an integer, got bool"),
        ("name: x\nservers: [postgres]\nenv:\n  URL: '{{ postgres.nope }}'\n", "'env.URL': cannot render"),
        ("name: x\nservers: [nats]\nmigrations: migrations\n", "'migrations' needs 'postgres'"),
        ("name: x\nservers: [postgres]\n: [\n", "not valid YAML"),
    ],
)
def test_bad_config_is_exit_10_before_anything_starts(tmp_path: Path, config: str | None, expected: str) -> None:
    service = tmp_path / "svc"
    service.mkdir()
    (service / "migrations").mkdir()
    if config is not None:
        (service / "testbed.yml").write_text(config)
    env, root = _private_runtime(tmp_path)
    result = cli("run", "--service", str(service), "--run-folder", str(tmp_path / "runs"), env=env)
    assert result.returncode == ExitCode.CONFIG, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("testbed: error: ")
    assert expected in lines[0]
    assert result.stdout == ""
    assert _runs_in(root) == set()
    assert not (tmp_path / "runs").exists()


def test_every_config_problem_is_named_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "testbed.yml").write_text("servers: [postgres]\nbogus: 1\ntests:\n  nope: 2\n")
    result = cli("run", "--service", str(tmp_path))
    assert result.returncode == 10
    assert "unknown key 'bogus'" in result.stderr and "unknown key 'tests.nope'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_required_secret_in_env_mode_is_exit_11_listing_all(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()  # tests.paths' default: preflight checks it exists
    (tmp_path / "testbed.yml").write_text(
        "servers: [postgres]\nsecrets:\n  API_KEY: /a/b\n  OTHER_KEY: {parameter: /a/c}\n"
        "  OPTIONAL_KEY: {parameter: /a/d, optional: true}\n")
    env, root = _private_runtime(tmp_path)
    result = cli("run", "--service", str(tmp_path), "--secrets", "env", env=env)
    assert result.returncode == ExitCode.SECRETS
    assert "API_KEY, OTHER_KEY not set" in result.stderr and "OPTIONAL_KEY" not in result.stderr
    assert _runs_in(root) == set()


def test_ci_true_alone_is_not_github_actions(tmp_path: Path) -> None:
    # With CI=true but no GITHUB_ACTIONS, secrets come from the environment (no AWS needed).
    (tmp_path / "tests").mkdir()
    (tmp_path / "testbed.yml").write_text("servers: [postgres]\nsecrets:\n  API_KEY: /a/b\n")
    result = cli("run", "--service", str(tmp_path), env=clean_env(CI="true"))
    assert result.returncode == ExitCode.SECRETS
    assert "API_KEY not set; export them, or use --secrets ssm" in result.stderr


def test_bad_run_id_and_image_override_are_exit_10(service: Path) -> None:
    assert cli("run", "--service", str(service), "--run-id", "Bad_ID!").returncode == 10
    bad_image = cli("run", "--service", str(service), "--image", "mysql=mysql:8")
    assert bad_image.returncode == 10 and "--image 'mysql=mysql:8'" in bad_image.stderr


def test_commands_that_need_an_environment_suggest_up(service: Path) -> None:
    for command in ("test", "env", "logs"):
        result = cli(command, "--service", str(service))
        assert result.returncode == ExitCode.PROVISIONING
        assert "start one with `testbed up`" in result.stderr










@pytest.mark.slow
@pytest.mark.parametrize(
    ("test_body", "pytest_args", "code"),
    [
        ("def test_interrupts():\n    raise KeyboardInterrupt\n", [], 2),
        ("", ["-p", "internal_error_plugin"], 3),
        ("", ["--no-such-pytest-option"], 4),
    ],
)
def test_pytest_exit_codes_pass_through(service: Path, runs: Path, test_body: str, pytest_args: list[str],
                                        code: int) -> None:
    if test_body:
        (service / "tests" / "test_extra.py").write_text(test_body)
    (service / "internal_error_plugin.py").write_text(
        "def pytest_collection_modifyitems(items):\n    raise RuntimeError('plugin broke on purpose')\n")
    result = cli("run", "--service", str(service), "--backend", "native", "--ports", "auto",
                 "--run-folder", str(runs), "--", *pytest_args,
                 env=clean_env(PYTHONPATH=str(service)))
    assert result.returncode == code, result.stdout + result.stderr
    assert f"pytest exit {code}" in result.stdout
    assert leftovers(run_folder_of(result.stdout).name) == []


@pytest.mark.usefixtures("machine_wide")  # a run left behind on purpose: another run would collect it
@pytest.mark.slow
def test_teardown_that_cannot_remove_something_is_14_even_when_tests_pass(service: Path, runs: Path) -> None:
    # The service's test makes a file in PostgreSQL's data directory immutable: teardown cannot remove it.
    (service / "tests" / "test_pin.py").write_text(
        "import subprocess, psycopg\nfrom basic_app import dsn\n\n"
        "def test_pin_data_dir():\n"
        "    with psycopg.connect(dsn()) as conn:\n"
        "        data = conn.execute('SHOW data_directory').fetchone()[0]\n"
        "    open(data + '/pinned', 'w').close()\n"
        "    subprocess.run(['chattr', '+i', data + '/pinned'], check=True)\n")
    result = cli("run", "--service", str(service), "--backend", "native", "--ports", "auto",
                 "--run-folder", str(runs))
    run_id = run_folder_of(result.stdout).name
    try:
        assert result.returncode == ExitCode.TEARDOWN, result.stdout
        assert "✅ Tests: 5 passed" in result.stdout
        assert "❌ Teardown: left behind directory" in result.stdout
    finally:
        for pinned in runtime_root().glob(f"{run_id}/postgres/pinned"):
            subprocess.run(["chattr", "-i", str(pinned)], check=True)
        gc = cli("gc", "--run-id-prefix", run_id, "--ttl", "0")
        assert gc.returncode == 0, gc.stdout + gc.stderr
    assert leftovers(run_id) == []


@pytest.mark.slow
def test_github_actions_groups_annotations_summary_and_outputs(service: Path, runs: Path, tmp_path: Path) -> None:
    (service / "tests" / "test_broken.py").write_text("def test_broken():\n    assert 1 + 1 == 3, 'arithmetic'\n")
    summary, outputs = tmp_path / "summary.md", tmp_path / "outputs.txt"
    env = clean_env(GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(summary), GITHUB_OUTPUT=str(outputs),
                    GITHUB_RUN_ID="42", GITHUB_RUN_ATTEMPT="2", GITHUB_JOB="integration")
    # Under GitHub Actions secrets come from SSM unless asked otherwise; this test uses the environment.
    result = cli("run", "--service", str(service), "--backend", "native", "--ports", "auto", "--secrets", "env",
                 "--run-folder", str(runs), env=env)
    assert result.returncode == 1, result.stdout
    out = result.stdout
    assert "::group::Preflight" in out and "::group::Tests" in out
    assert out.count("::group::") == out.count("::endgroup::")
    assert "::add-mask::" in out  # the fixture's secret is masked before anything that follows
    assert out.index("::add-mask::") < out.index("✅ Secrets")
    annotations = [line for line in out.splitlines() if line.startswith("::error ")]
    assert len(annotations) == 1 and "file=" in annotations[0] and "test_broken.py" in annotations[0]
    assert ",line=2" in annotations[0]
    run_id = run_folder_of(out).name
    assert run_id.startswith("gh-42-2-integration-")
    text = summary.read_text()
    assert "```mermaid" in text and "gantt" in text and "Tests" in text
    assert "result=failed" in outputs.read_text() and "failed=1" in outputs.read_text()
    assert secret_hits(summary, outputs) == []
    assert leftovers(run_id) == []


@pytest.mark.parametrize("argv", [["run", "--backend", "bogus"], ["merge", "x"], ["bogus"], ["run", "-q"]])
def test_bad_arguments_are_one_line_and_exit_10(argv: list[str]) -> None:
    """argparse's own exit 2 is pytest's "interrupted" in the table: bad arguments are bad input (10)."""
    result = cli(*argv)
    assert result.returncode == ExitCode.CONFIG, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "error:" in result.stderr and "--help" in result.stderr


def test_a_run_folder_that_cannot_be_made_is_exit_10_before_anything_starts(service: Path, tmp_path: Path) -> None:
    env, root = _private_runtime(tmp_path)
    result = cli("run", "--service", str(service), "--backend", "native", "--run-folder", "/proc/nope", env=env)
    assert result.returncode == ExitCode.CONFIG, result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == [
        "testbed: error: --run-folder /proc/nope: cannot create or write it (No such file or directory); "
        "point --run-folder at a folder you can write"]
    assert result.stdout == "" and _runs_in(root) == set()


# Where a Ctrl-C can land before the playbook runs, each hit on purpose (tests/fixtures/sigint_at): as a function
# is entered, or while a finalizer runs there (a generator the garbage collector closes: Python's own
# KeyboardInterrupt is dropped in one, and the run used to go on and pass).
SIGINT_LANDINGS = [
    ("testbed.cli.main:<module>", "call"),  # the CLI's modules import
    ("argparse:ArgumentParser.parse_known_args", "call"),
    ("testbed.cli.common:validate", "call"),
    ("testbed.cli.common:validate", "finalizer"),
    ("testbed.ansible.cleanup:sweep_orphans", "call"),  # the run's set-up, before the playbook
    ("testbed.ansible.driver:_head_start", "finalizer"),
    ("ansible_runner.interface:run_async", "call"),  # the playbook's start
]


@pytest.mark.parametrize(("at", "how"), SIGINT_LANDINGS)
def test_an_early_ctrl_c_is_one_line_and_leaves_nothing(service: Path, runs: Path, at: str, how: str) -> None:
    """Wherever the signal lands (imports, parsing, validation, the set-up before the playbook, its start), the
    run ends with 130, no traceback, and nothing of it left."""
    import os  # noqa: PLC0415
    import secrets  # noqa: PLC0415

    from support import FIXTURES, PROJECT, run_testbed_argv  # noqa: PLC0415

    run_id = f"early-int-{secrets.token_hex(3)}"
    env = clean_env(PYTHONPATH=str(FIXTURES / "sigint_at"), SIGINT_AT=at, SIGINT_HOW=how,
                    SIGINT_PARENT=str(os.getpid()))
    done = subprocess.run(run_testbed_argv(service, runs, run_id=run_id), cwd=PROJECT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    out = done.stdout + done.stderr
    assert done.returncode == ExitCode.SIGINT, out
    assert "Traceback" not in out and "Exception ignored" not in out, out
    assert "Interrupted by SIGINT" in out
    assert leftovers(run_id) == []
