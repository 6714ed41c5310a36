"""`tests.workers` and `--workers`: a count or auto, and each bad value named with its key."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from testbed.config import catalogue, service
from testbed.config import workers as config_workers
from testbed.core.errors import ExitCode, TestbedError

CATALOGUE = catalogue.load_catalogue()


@pytest.mark.parametrize(("given", "expected"), [(1, 1), ("3", 3), (64, 64), ("auto", os.cpu_count() or 1)])
def test_counts(given: object, expected: int) -> None:
    assert config_workers.count(given, "--workers") == expected


@pytest.mark.parametrize("given", [0, "0", 65, "-1", "two", True, 1.5, None])
def test_bad_counts_name_the_key(given: object) -> None:
    with pytest.raises(TestbedError) as caught:
        config_workers.count(given, "'tests.workers'")
    assert caught.value.exit_code == ExitCode.CONFIG
    assert str(caught.value) == f"'tests.workers' must be a number from 1 to 64, or auto; got {given!r}"


def test_tests_workers_in_testbed_yml(tmp_path: Path) -> None:
    (tmp_path / "testbed.yml").write_text("servers: [dragonfly]\ntests:\n  workers: auto\n")
    assert service.load_service_config(tmp_path, CATALOGUE).tests.workers == "auto"
    (tmp_path / "testbed.yml").write_text("servers: [dragonfly]\ntests:\n  workers: [2]\n")
    with pytest.raises(TestbedError) as caught:
        service.load_service_config(tmp_path, CATALOGUE)
    assert "'tests.workers' must be" in str(caught.value) and caught.value.exit_code == ExitCode.CONFIG
    assert json.dumps(service.TestsSpec().workers) == "1"
