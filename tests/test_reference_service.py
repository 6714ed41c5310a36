"""services/agent_executor through testbed: README's main job, and a service broken on purpose."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from conftest import PROJECT, clean_env, cli, leftovers, run_folder_of

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
