"""A run's state file as one typed value: every key testbed writes survives RunRecord's round trip, and a state
file an earlier version wrote still loads (no server started: the phases' writers are replayed on the file)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from support import FIXTURES
from testbed.config import catalogue
from testbed.config.environment import connection_facts
from testbed.core.processes import ProcessIdentity
from testbed.parallel import split
from testbed.phases import preflight
from testbed.run.record import Resource, RunRecord
from testbed.run.store import RunState

BASIC = FIXTURES / "services" / "basic"


@pytest.fixture
def opened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RunState:
    """A run as preflight leaves it (native, auto ports, a lease), then what every later phase writes."""
    monkeypatch.setenv("TESTBED_RUNTIME_DIR", str(tmp_path / "root"))
    context = preflight.open_run(
        {
            "service_dir": str(BASIC),
            "catalogue": catalogue.load_catalogue(),
            "backend": "native",
            "ports": "auto",
            "run_root": str(tmp_path / "runs"),
            "run_id": "record-trip",
            "workers": "2",
            "lease_seconds": 600,
            "owner_pid": os.getpid(),
        }
    )
    state = RunState.find(context["run_id"])
    state.record({"kind": "directory", "service": "postgres", "path": str(state.runtime_dir / "postgres")})
    owner = ProcessIdentity.of(os.getpid())
    assert owner is not None
    state.record({"kind": "process", "service": "postgres", **owner.as_dict(), "stop_signal": 2, "argv": ["postgres"]})
    state.record({"kind": "supervisor", "what": "tests", **owner.as_dict(), "stop_signal": 15})
    state.record({"kind": "container", "name": "testbed-record-trip-nats", "service": "nats"})
    state.record({"kind": "network", "name": "testbed-record-trip"})
    with state.update() as data:  # readiness, the dependency step
        data["facts"] = connection_facts(data["servers"])
        data["versions"] = dict.fromkeys(data["servers"], "1.0")
        data["python"] = "/venvs/basic/bin/python"
    split.record("record-trip", "2/3", "")
    return state


def test_every_key_testbed_writes_survives_the_round_trip(opened: RunState) -> None:
    raw = opened.read()
    assert RunRecord.from_dict(raw).as_dict() == raw
    with opened.update() as data:  # teardown's keys
        data["torn_down"] = time.time()
        data["left"] = ["process 1"]
        data["added_by_a_later_version"] = {"kept": True}
    raw = opened.read()
    assert RunRecord.from_dict(raw).as_dict() == raw
    # The file itself, as written, not only a dict: JSON gives back what it was given.
    assert json.loads(json.dumps(opened.load().as_dict(), sort_keys=True)) == raw


def test_the_record_is_typed_and_answers_what_readers_ask(opened: RunState) -> None:
    record = opened.load()
    assert record.run_id == "record-trip" and record.backend == "native" and record.ports == "auto"
    assert record.run_folder == Path(opened.read()["run_folder"]) and record.runtime_dir == opened.runtime_dir
    assert record.service_config().name == "basic" and record.workers == 2
    assert record.dev_loop and record.leased(time.time()) and not record.leased(time.time() + 3600)
    assert record.owner_alive()
    assert [r.service for r in record.processes()] == ["postgres"]
    assert record.processes()[0].identity().alive() and record.processes()[0].signal_to_stop == 2
    assert record.containers() == {"nats": "testbed-record-trip-nats"}
    assert sorted(record.servers) == ["dragonfly", "dragonfly-gw1", "nats", "nats-gw1", "postgres"]
    assert sorted(record.own_facts()) == ["dragonfly", "nats", "postgres"]  # not the workers' instances
    assert record.python == Path("/venvs/basic/bin/python")
    assert record.shard is not None and (record.shard.index, record.shard.count) == (2, 3)
    assert [r.label for r in record.of_kind("directory", "network")] == [
        f"directory {opened.runtime_dir / 'postgres'}",
        "network testbed-record-trip",
    ]


def _previous_version(raw: dict[str, Any]) -> dict[str, Any]:
    """The same run as testbed wrote it before workers, shards, versions and the migrations schema."""
    old = {k: v for k, v in raw.items() if k not in ("workers", "notices", "versions", "python", "shard", "facts")}
    old["config"] = {k: v for k, v in raw["config"].items() if k != "migrations_schema"}
    old["config"]["tests"] = {k: v for k, v in raw["config"]["tests"].items() if k != "workers"}
    return old


def test_a_state_file_an_earlier_version_wrote_still_loads(opened: RunState) -> None:
    record = RunRecord.from_dict(_previous_version(opened.read()))
    assert record.workers == 1 and record.notices == [] and record.facts == {} and record.python is None
    assert record.shard is None and record.service_config().tests.workers == 1
    bare = RunRecord.from_dict({"run_id": "r", "run_folder": "/f", "runtime_dir": "/d"})  # RunState.create's own
    assert bare.config is None and bare.resources == [] and not bare.dev_loop and not bare.owner_alive()


def test_a_malformed_state_file_is_a_value_error_naming_the_run() -> None:
    with pytest.raises(ValueError, match="state file of run 'r' is malformed"):
        RunRecord.from_dict({"run_id": "r", "run_folder": "/f", "runtime_dir": "/d", "resources": [{"pid": 1}]})
    with pytest.raises(ValueError, match="holds no service config"):
        RunRecord.from_dict({"run_id": "r", "run_folder": "/f", "runtime_dir": "/d"}).service_config()


def test_a_resource_keeps_only_the_keys_it_was_recorded_with() -> None:
    for recorded in (
        {"kind": "network", "name": "n"},
        {"kind": "directory", "service": "s", "path": "/p"},
        {"kind": "controller", "pid": 5, "start_time": 9, "boot_id": "b", "stop_signal": 15, "what": "ansible worker"},
    ):
        assert Resource.from_dict(recorded).as_dict() == recorded
    with pytest.raises(ValueError, match="without pid"):
        Resource.from_dict({"kind": "network", "name": "n"}).identity()
