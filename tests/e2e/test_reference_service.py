"""services/agent_executor through testbed: README's main job, and a service broken on purpose."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from support import BIN, PROJECT, RUN_FOLDER, clean_env, cli, leftovers, run, run_folder_of

pytestmark = pytest.mark.slow
SERVICE = PROJECT / "services" / "agent_executor"


def test_agent_executor_suite_passes_with_coverage(runs: Path) -> None:
    result = cli("run", "--service", str(SERVICE), "--backend", "native", "--ports", "auto",
                 "--run-folder", str(runs))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "✅ Migrations: Applied successfully (2 new)" in result.stdout
    passed = re.search(r"✅ Tests: (\d+) passed", result.stdout)
    assert passed and int(passed.group(1)) >= 10
    coverage = re.search(r"✅ Coverage: ([\d.]+)%", result.stdout)
    assert coverage and float(coverage.group(1)) >= 85
    assert leftovers(run_folder_of(result.stdout).name) == []


def test_a_worker_that_never_acknowledges_fails_the_matching_test(runs: Path, tmp_path: Path) -> None:
    broken = tmp_path / "agent_executor"
    shutil.copytree(SERVICE, broken, ignore=shutil.ignore_patterns("__pycache__", ".venv"))
    worker = broken / "agent_executor" / "worker.py"
    source = worker.read_text()
    assert "await msg.ack_sync()" in source
    worker.write_text(source.replace("await msg.ack_sync()", "pass  # broken on purpose: never acknowledge"))
    # Its own dependency cache: the copy's virtualenv goes with the test's temporary folder.
    result = cli("run", "--service", str(broken), "--backend", "native", "--ports", "auto",
                 "--run-folder", str(runs), "--", "-k", "nats_consumer_processing or end_to_end",
                 env=clean_env(TESTBED_CACHE_DIR=str(tmp_path / "cache")))
    assert result.returncode == 1, result.stdout + result.stderr
    log = (run_folder_of(result.stdout) / "pytest.log").read_text()
    assert "FAILED tests/integration/test_nats_consumer.py::test_nats_consumer_processing" in log
    assert leftovers(run_folder_of(result.stdout).name) == []


def test_the_repositorys_integration_yml_runs_the_reference_service_with_no_service_named() -> None:
    # The seed's own command, from the repository's root: no testbed_service (auto ports so it can run beside
    # other work; the playbook takes them as the wrapper's --ports auto).
    had_runs = (SERVICE / "runs").exists()
    result = run([str(BIN / "ansible-playbook"), "integration.yml", "-e", "testbed_backend=native",
                  "-e", "testbed_ports=auto"], cwd=PROJECT, timeout=900)
    folder = run_folder_of(result.stdout) if RUN_FOLDER.search(result.stdout) else None
    try:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr
        assert folder is not None and folder.parent == SERVICE / "runs"
        junit = (folder / "junit.xml").read_text()
        assert 'failures="0"' in junit and 'errors="0"' in junit
        assert leftovers(folder.name) == []
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)  # in the checkout's git-ignored runs/
        if not had_runs and (SERVICE / "runs").is_dir() and not any((SERVICE / "runs").iterdir()):
            (SERVICE / "runs").rmdir()


def test_a_failing_preflight_of_the_repositorys_integration_yml_is_one_error(tmp_path: Path) -> None:
    # What the root playbook said before it had a default service: no testbed.yml in the folder it was given.
    result = run([str(BIN / "ansible-playbook"), "integration.yml", "-e", f"testbed_service={tmp_path}"],
                 cwd=PROJECT)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert output.count("FAILED!") == 1 and output.count("[ERROR]") == 1, output
    assert f"no testbed.yml in {tmp_path}" in output
    assert "run_folder" not in output  # no second error from the play's `always`
    assert re.search(r"ok=\d+\s+changed=\d+\s+unreachable=0\s+failed=1\s", result.stdout), result.stdout
    assert "Run folder:" not in output  # no run was created
