"""`testbed run`'s own checks before anything starts: --shard and --durations together, --shards without --shard
or --run-id."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from testbed.cli import arguments
from testbed.cli.run import _run_shards, _shard_vars
from testbed.config.catalogue import load_catalogue
from testbed.config.service import load_service_config
from testbed.core.errors import TestbedError


def _args(*argv: str) -> argparse.Namespace:
    return arguments.parser().parse_args(["run", *argv])


def test_a_shard_and_its_durations_become_playbook_variables(service: Path) -> None:
    config = load_service_config(service, load_catalogue())
    durations = service / "durations.json"
    durations.write_text('{"tests/test_servers.py::test_postgres": 1.5}')
    assert _shard_vars(_args("--shard", "2/3", "--durations", str(durations)), config) == {
        "testbed_shard": "2/3", "testbed_durations": str(durations.resolve())}
    assert _shard_vars(_args(), config) == {}


@pytest.mark.parametrize(("argv", "message"), [
    (["--durations", "d.json"], "--durations only splits a run given --shard K/N"),
    (["--shard", "4/3"], r"^--shard '4/3': expected K/N with 1 <= K <= N"),
])
def test_a_bad_split_is_refused_before_anything_starts(service: Path, argv: list[str], message: str) -> None:
    config = load_service_config(service, load_catalogue())
    with pytest.raises(TestbedError, match=message):
        _shard_vars(_args(*argv), config)


@pytest.mark.parametrize("argv", [["--shards", "2", "--shard", "1/2"], ["--shards", "2", "--run-id", "my-run"]])
def test_shards_give_each_run_its_own_shard_and_id(service: Path, argv: list[str]) -> None:
    config = load_service_config(service, load_catalogue())
    with pytest.raises(TestbedError, match=r"^--shards gives each shard its own --shard K/N and run id; leave"):
        _run_shards(_args(*argv), config, service)
