"""testbed's modules run inside Ansible's worker on this machine (src/testbed/ansible/action.py) and as
module processes elsewhere: both ways must give the same results, the fast path must really skip the
module process, and each result is what the module's RETURN documents."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import testbed_code as sources  # how the documentation reads each module's RETURN (ansible-doc)
from support import FIXTURES, clean_env, playbook
from testbed.core.paths import runtime_root
from testbed.run.store import new_run_id

SERVICE = FIXTURES / "services" / "basic"

# What the playbook registered, by the module that returned it (tests/fixtures/playbooks/module_paths.yml).
MODULES = {"preflight": "testbed_preflight", "native": "testbed_native", "ready": "testbed_ready",
           "secret": "testbed_secret", "secrets_check": "testbed_secrets_check", "migrate": "testbed_migrate",
           "deps": "testbed_deps", "pytest": "testbed_pytest", "teardown": "testbed_teardown"}
# Keys Ansible adds to a registered result (`invocation` on the module path, the loop's on a loop item).
ANSIBLE_KEYS = {"changed", "failed", "invocation", "item", "ansible_loop_var"}


def _run(tmp_path: Path, in_process: bool) -> tuple[dict, list[str]]:
    remote_tmp = tmp_path / f"remote-tmp-{in_process}"
    out = tmp_path / f"results-{in_process}.json"
    run_id = new_run_id()
    env = clean_env(ANSIBLE_KEEP_REMOTE_FILES="1", ANSIBLE_REMOTE_TMP=str(remote_tmp), ANSIBLE_PIPELINING="0")
    result = playbook("tests/fixtures/playbooks/module_paths.yml", {
        "testbed_service": str(SERVICE), "testbed_run_id": run_id, "testbed_run_root": str(tmp_path / "runs"),
        "module_paths_out": str(out), "testbed_in_process": in_process,
        # The run's owner is this test's process. Left to preflight, a module process's owner is the nearest
        # ansible-playbook above it: the task's worker, gone when the task ends, and then any other run's start
        # (its sweep of runs whose owner is gone) took this run mid-play.
        "testbed_owner_pid": os.getpid(),
        # Without pipelining a module process leaves its AnsiballZ file behind (KEEP_REMOTE_FILES): the evidence.
        "ansible_pipelining": False,
    }, env=env)
    assert result.returncode == 0, result.stdout[-3000:]
    shipped = sorted(p.name for p in remote_tmp.rglob("AnsiballZ_testbed_*.py")) if remote_tmp.exists() else []
    return json.loads(out.read_text()), shipped


Ran = tuple[dict, list[str]]


@pytest.fixture(scope="module")
def both_ways(tmp_path_factory: pytest.TempPathFactory) -> tuple[Ran, Ran]:
    """The playbook run in Ansible's worker, then as module processes: each way's results and shipped modules."""
    tmp_path = tmp_path_factory.mktemp("module-paths")
    return _run(tmp_path, in_process=True), _run(tmp_path, in_process=False)


def test_modules_give_the_same_results_in_ansibles_worker_as_in_their_own_process(both_ways: tuple[Ran, Ran]) -> None:
    (fast, fast_shipped), (slow, slow_shipped) = both_ways

    # The fast path ships no module; the other way ships every testbed module the playbook used.
    assert fast_shipped == []
    assert set(slow_shipped) == {f"AnsiballZ_{module}.py" for module in MODULES.values()}

    for result in (fast, slow):
        assert result["preflight"]["backend"] == "native"
        assert result["preflight"]["changed"] is True
        assert result["missing"]["failed"] is True
        assert result["teardown"]["ok"] is True
        # Torn down: nothing of the run is left in testbed's runtime folder.
        assert not (runtime_root() / result["preflight"]["run_id"]).exists()
    # The same keys (the values name the run, which differs), the same one-line errors and exit codes.
    for name in MODULES:
        assert set(fast[name]) - ANSIBLE_KEYS == set(slow[name]) - ANSIBLE_KEYS, name
    assert fast["missing"]["exit_code"] == slow["missing"]["exit_code"] == 10
    run_ids = fast["preflight"]["run_id"], slow["preflight"]["run_id"]
    assert fast["missing"]["msg"].replace(*run_ids) == slow["missing"]["msg"]
    assert "\n" not in fast["missing"]["msg"]
    assert fast["bad"]["failed"] is slow["bad"]["failed"] is True
    assert fast["bad"]["msg"] == slow["bad"]["msg"]
    assert "'timeout'" in fast["bad"]["msg"]



def test_each_result_is_what_its_module_documents(both_ways: tuple[Ran, Ran]) -> None:
    """Every key a module returned on success is in its RETURN, and every key RETURN promises on success (here: a
    run that started servers and ran its tests) came back; a failure's own keys are documented too."""
    returns = {module: found["return"] for module, found in sources.module_docs().items()}
    for results, _ in both_ways:
        for name, module in MODULES.items():
            promised = {key for key, spec in returns[module].items() if not spec["returned"].startswith("failure")}
            assert set(results[name]) - ANSIBLE_KEYS == promised, module
        failure = set(results["missing"]) - ANSIBLE_KEYS - {"msg", "exception"}
        assert failure == {"exit_code"} and failure <= set(returns["testbed_ready"])
