"""Each pytest-xdist worker's own rendering of `tests.pytest_args`: the plugin putting it in place of the
controller's, through real pytest-xdist workers, and the templates refused because pytest reads them
before the plugin can act. No server is started."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from testbed.config import catalogue
from testbed.config import service as config_service
from testbed.config.environment import early_worker_templates
from testbed.parallel import workers
from testbed.parallel.plugin.testbed_workers import own_arguments

CATALOGUE = catalogue.load_catalogue()
SHARED_S3 = """
  - s3:
      port: 15000
      native: {command: [moto_server, -p, "{{ port }}"]}
      workers: shared
"""


def _config(tmp_path: Path, pytest_args: list[str]) -> config_service.ServiceConfig:
    (tmp_path / "testbed.yml").write_text(
        f"servers:\n  - postgres\n  - nats\n{SHARED_S3}migrations: null\n"
        f"tests:\n  paths: [.]\n  pytest_args: {json.dumps(pytest_args)}\n"
    )
    return config_service.load_service_config(tmp_path, CATALOGUE)


GW0 = ["--db=postgresql://h:1/app", "-r", "fE", "--nats", "nats://h:2"]
GW1 = ["--db=postgresql://h:1/app_gw1", "-r", "fE", "--nats", "nats://h:3"]


def test_a_worker_s_arguments_take_the_place_of_the_controller_s() -> None:
    args = ["-p", "x", "tests", *GW0, "-k", "nats://h:2", "-p", "testbed_workers"]
    assert own_arguments(args, "gw1", {"gw0": GW0, "gw1": GW1})
    # Only the run of gw0's list: the same string elsewhere (a -k expression here) is left alone.
    assert args == ["-p", "x", "tests", *GW1, "-k", "nats://h:2", "-p", "testbed_workers"]


def test_every_copy_is_replaced_since_the_last_one_wins() -> None:
    args = [*GW0, "tests", *GW0]  # PYTEST_ADDOPTS or addopts holding them too, before the command line
    assert own_arguments(args, "gw1", {"gw0": GW0, "gw1": GW1})
    assert args == [*GW1, "tests", *GW1]


@pytest.mark.parametrize(
    ("worker", "arguments"),
    [
        ("gw0", {"gw0": GW0, "gw1": GW1}),  # gw0's are the controller's
        ("gw2", {"gw0": GW0, "gw1": GW1}),
        ("gw1", {}),  # no templated argument differs from gw0's
        ("gw1", {"gw0": GW0, "gw1": GW0}),
    ],
)
def test_nothing_changes_where_a_worker_has_nothing_of_its_own(worker: str, arguments: dict[str, list[str]]) -> None:
    args = ["tests", *GW0]
    assert not own_arguments(args, worker, arguments)
    assert args == ["tests", *GW0]


def test_a_worker_without_the_controller_s_arguments_stops_rather_than_share_gw0_s_servers() -> None:
    with pytest.raises(pytest.UsageError, match=r"worker gw1 did not get tests\.pytest_args"):
        own_arguments(["tests", *GW0[:2]], "gw1", {"gw0": GW0, "gw1": GW1})


# The suite's --db comes from a plugin that reads it early too (in pytest_load_initial_conftests, as
# pytest-django reads its settings), its --nats from its conftest.
PLUGIN = """
import os

early = {}

def pytest_addoption(parser):
    parser.addoption("--db")

def pytest_load_initial_conftests(early_config):
    early["db"] = early_config.known_args_namespace.db
"""
CONFTEST = """
import json, os, suiteplugin

def pytest_addoption(parser):
    parser.addoption("--nats")

def pytest_configure(config):
    seen = {"db": config.getoption("--db"), "nats": config.getoption("--nats"), "early": suiteplugin.early["db"]}
    worker = os.environ.get("PYTEST_XDIST_WORKER", "controller")
    with open(os.path.join(os.environ["SEEN"], worker + ".json"), "w") as out:
        json.dump(seen, out)
"""


def test_real_xdist_workers_parse_their_own_arguments_and_the_controller_keeps_gw0_s(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text(CONFTEST)
    (suite / "suiteplugin.py").write_text(PLUGIN)
    (suite / "test_x.py").write_text("def test_x(): pass\n")
    seen = tmp_path / "seen"
    seen.mkdir()
    gw2 = ["--db=postgresql://h:1/app_gw2", "-r", "fE", "--nats", "nats://h:4"]
    arguments = {"gw0": GW0, "gw1": GW1, "gw2": gw2}
    shares = workers.write_shares(tmp_path / "shares.json", {"gw1": {}, "gw2": {}}, arguments)
    assert oct(shares.stat().st_mode & 0o777) == "0o600"
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": os.pathsep.join([str(workers.PLUGIN_DIR), str(suite)]),
        workers.SHARES_VARIABLE: str(shares),
        "SEEN": str(seen),
    }
    # As testbed runs it: the controller's own arguments (gw0's), then its plugin.
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", "-p", "suiteplugin"]
    argv += [str(suite), *GW0, "-p", workers.PLUGIN, "-n", "3"]
    result = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    found = {path.stem: json.loads(path.read_text()) for path in seen.iterdir()}
    assert found == {
        "controller": {"db": "postgresql://h:1/app", "nats": "nats://h:2", "early": "postgresql://h:1/app"},
        "gw0": {"db": "postgresql://h:1/app", "nats": "nats://h:2", "early": "postgresql://h:1/app"},
        "gw1": {"db": "postgresql://h:1/app_gw1", "nats": "nats://h:3", "early": "postgresql://h:1/app_gw1"},
        "gw2": {"db": "postgresql://h:1/app_gw2", "nats": "nats://h:4", "early": "postgresql://h:1/app_gw2"},
    }


@pytest.mark.parametrize(
    ("pytest_args", "index", "option"),
    [
        (["-o", "redis_url={{ nats.url }}"], 1, "-o"),
        (["-oredis_url={{ nats.url }}"], 0, "-o"),
        (["--override-ini=db={{ postgres.url }}"], 0, "--override-ini"),
        (["--override-ini", "db={{ postgres.database }}"], 1, "--override-ini"),
        (["-c", "{{ postgres.database }}.ini"], 1, "-c"),
        (["--rootdir={{ nats.port }}"], 0, "--rootdir"),
        (["-p", "plugin_{{ nats.port }}"], 1, "-p"),
    ],
)
def test_a_template_pytest_reads_before_the_plugin_is_refused_with_workers(
    tmp_path: Path, pytest_args: list[str], index: int, option: str
) -> None:
    service = _config(tmp_path, pytest_args)
    problems = early_worker_templates(service, 2)
    assert len(problems) == 1 and problems[0].startswith(f"'tests.pytest_args[{index}]' ")
    assert f" is given to {option}, which pytest reads before testbed can give each of 2 workers its own " in (
        problems[0]
    )
    assert early_worker_templates(service, 1) == []  # one worker: nothing to give per worker


@pytest.mark.parametrize(
    "pytest_args",
    [
        ["--db={{ postgres.url }}", "--nats", "{{ nats.url }}"],  # the suite's own options: given per worker
        ["-o", "s3={{ s3.url }}"],  # a server the workers share: the same for each, as declared
        ["-o", "plain=1", "-p", "{{ 'no' }}:x"],  # no server named
    ],
)
def test_templates_that_every_worker_can_have_its_own_of_are_accepted(tmp_path: Path, pytest_args: list[str]) -> None:
    assert early_worker_templates(_config(tmp_path, pytest_args), 3) == []
