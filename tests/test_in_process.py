"""testbed's modules run inside Ansible's worker on this machine (src/testbed/ansible_action.py) and as
module processes elsewhere: both ways must give the same results, and the fast path must really skip the
module process."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import clean_env, playbook
from testbed.core.paths import runtime_root
from testbed.run.store import new_run_id

SERVICE = Path(__file__).parent / "fixtures" / "services" / "basic"


def _run(tmp_path: Path, in_process: bool) -> tuple[dict, list[str]]:
    remote_tmp = tmp_path / f"remote-tmp-{in_process}"
    out = tmp_path / f"results-{in_process}.json"
    run_id = new_run_id()
    env = clean_env(ANSIBLE_KEEP_REMOTE_FILES="1", ANSIBLE_REMOTE_TMP=str(remote_tmp), ANSIBLE_PIPELINING="0")
    result = playbook("tests/fixtures/playbooks/module_paths.yml", {
        "testbed_service": str(SERVICE), "testbed_run_id": run_id, "testbed_run_root": str(tmp_path / "runs"),
        "module_paths_out": str(out), "testbed_in_process": in_process,
        # Without pipelining a module process leaves its AnsiballZ file behind (KEEP_REMOTE_FILES): the evidence.
        "ansible_pipelining": False,
    }, env=env)
    assert result.returncode == 0, result.stdout[-3000:]
    shipped = sorted(p.name for p in remote_tmp.rglob("AnsiballZ_testbed_*.py")) if remote_tmp.exists() else []
    return json.loads(out.read_text()), shipped


def test_modules_give_the_same_results_in_ansibles_worker_as_in_their_own_process(tmp_path: Path) -> None:
    fast, fast_shipped = _run(tmp_path, in_process=True)
    slow, slow_shipped = _run(tmp_path, in_process=False)

    # The fast path ships no module; the other way ships every testbed module the playbook used.
    assert fast_shipped == []
    assert set(slow_shipped) == {"AnsiballZ_testbed_preflight.py", "AnsiballZ_testbed_ready.py",
                                 "AnsiballZ_testbed_teardown.py"}

    for result in (fast, slow):
        assert result["preflight"]["backend"] == "native"
        assert result["preflight"]["changed"] is True
        assert result["missing"]["failed"] is True
        assert result["teardown"]["ok"] is True
        # Torn down: nothing of the run is left in testbed's runtime folder.
        assert not (runtime_root() / result["preflight"]["run_id"]).exists()
    # The same keys (the values name the run, which differs), the same one-line errors and exit codes.
    assert set(fast["preflight"]) == set(slow["preflight"])
    assert set(fast["teardown"]) == set(slow["teardown"])
    assert fast["missing"]["exit_code"] == slow["missing"]["exit_code"] == 10
    run_ids = fast["preflight"]["run_id"], slow["preflight"]["run_id"]
    assert fast["missing"]["msg"].replace(*run_ids) == slow["missing"]["msg"]
    assert "\n" not in fast["missing"]["msg"]
    assert fast["bad"]["failed"] is slow["bad"]["failed"] is True
    assert fast["bad"]["msg"] == slow["bad"]["msg"]
    assert "'timeout'" in fast["bad"]["msg"]
