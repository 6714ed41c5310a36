"""The run store: run ids, the state file (canonical in the runtime folder, mirrored into the run folder), its
locked updates, and the runs of this host (another user's never trusted)."""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path

import pytest

from testbed.config.catalogue import load_catalogue
from testbed.config.service import load_service_config
from testbed.core.errors import ExitCode, TestbedError
from testbed.run import store

NOBODY = 65534


@pytest.fixture(autouse=True)
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TESTBED_RUNTIME_DIR", str(tmp_path / "root"))
    return tmp_path / "root"


@pytest.mark.parametrize(("environ", "pattern"), [
    ({"TESTBED_RUN_ID": "My Run_1"}, r"my-run-1-[0-9a-f]{6}"),
    ({"GITHUB_ACTIONS": "true", "GITHUB_RUN_ID": "42", "GITHUB_RUN_ATTEMPT": "2", "GITHUB_JOB": "Integration"},
     r"gh-42-2-integration-[0-9a-f]{6}"),
    ({}, r"local-\d{8}-\d{6}-[0-9a-f]{6}"),
])
def test_a_new_run_id_says_where_it_comes_from_and_is_unique(environ: dict[str, str], pattern: str) -> None:
    first, second = store.new_run_id(environ), store.new_run_id(environ)
    assert re.fullmatch(pattern, first) and first != second
    assert store.check_run_id(first) == first


@pytest.mark.parametrize("bad", ["ab", "Bad", "-lead", "a b", "x" * 64, "a/b"])
def test_a_bad_run_id_says_what_it_must_be(bad: str) -> None:
    with pytest.raises(TestbedError, match="must be 3-63 lowercase letters, digits or '-'") as caught:
        store.check_run_id(bad)
    assert caught.value.exit_code == ExitCode.CONFIG


def test_the_state_is_created_once_mirrored_and_updated_under_its_lock(tmp_path: Path) -> None:
    state = store.RunState.create("store-run", tmp_path / "runs" / "store-run", None, {"service": "basic"})
    again = store.RunState.create("store-run", tmp_path / "runs" / "store-run", None, {"service": "other"})
    assert again.load().service == "basic"  # an existing state is never overwritten

    def add(i: int) -> None:
        state.record({"kind": "directory", "service": f"s{i}", "path": f"/x/{i}"})

    threads = [threading.Thread(target=add, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    state.record({"kind": "directory", "service": "s0", "path": "/x/0"})  # recorded twice: kept once
    record = store.RunState.find("store-run").load()
    assert sorted(r.service or "" for r in record.resources) == [f"s{i}" for i in range(8)]  # none lost
    mirror = json.loads((tmp_path / "runs" / "store-run" / "state.json").read_text())
    assert mirror == state.read()


def test_an_unknown_run_is_named_with_where_it_was_looked_for(root: Path) -> None:
    with pytest.raises(TestbedError, match=rf"no run 'nowhere' on this host \(looked in {root / 'nowhere'}\)"):
        store.RunState.find("nowhere")


def test_another_user_s_state_is_never_trusted(tmp_path: Path, root: Path) -> None:
    store.RunState.create("ours-run", tmp_path / "runs" / "ours-run", None, {})
    theirs = root / "their-run"
    theirs.mkdir()
    (theirs / "state.json").write_text(json.dumps({"run_id": "their-run"}))
    os.chown(theirs / "state.json", NOBODY, NOBODY)
    warnings: list[str] = []
    assert [state.runtime_dir.name for state in store.all_runs(warnings.append)] == ["ours-run"]
    assert warnings == [f"ignoring {theirs / 'state.json'}: not owned by you (uid {os.geteuid()}), so not trusted"]
    with pytest.raises(TestbedError, match="is not owned by you"):
        store.RunState.find("their-run")


def test_the_environment_up_for_a_folder_is_found_by_its_folder_and_lease(tmp_path: Path) -> None:
    service = tmp_path / "svc"
    service.mkdir()
    (service / "testbed.yml").write_text("servers: [nats]\ninstall: none\n")
    (service / "tests").mkdir()
    config = load_service_config(service, load_catalogue()).as_dict()
    state = store.RunState.create("up-run", tmp_path / "runs" / "up-run", None, {"config": config})
    with pytest.raises(TestbedError, match="no environment is up for svc; start one with `testbed up`"):
        store.require_up(service)
    with state.update() as data:
        data["lease_until"] = 4102444800.0  # year 2100
    found = store.require_up(service)
    assert found.runtime_dir == state.runtime_dir
    assert store.leased_run(tmp_path / "other") is None
