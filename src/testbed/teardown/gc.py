"""`testbed gc`: runs whose owner is gone (or whose lease ran out) torn down, ansible-runner's private
folders of dead owners removed, unused virtualenvs and PostgreSQL templates pruned."""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from testbed.backends import docker_api
from testbed.core import paths, venv_cache
from testbed.core.paths import KEPT_FILE, OWNER_FILE, runtime_root
from testbed.core.processes import ProcessIdentity
from testbed.run.outcome import TeardownResult
from testbed.run.record import RunRecord
from testbed.run.store import all_runs
from testbed.teardown import reaper
from testbed.teardown.teardown import stateless_runs, teardown, teardown_without_state


def _prune_private_dirs(stale_after: float, now: float) -> None:
    """ansible-runner's private folders whose wrapper is gone, unless kept on purpose (--keep-runner-dir)."""
    for private in runtime_root().glob("runner-*") if runtime_root().is_dir() else ():
        try:
            alive = ProcessIdentity.from_dict(json.loads((private / OWNER_FILE).read_text(encoding="utf-8"))).alive()
        except FileNotFoundError:  # a wrapper writes its owner file just after making the folder: wait for it
            alive = _younger_than(private, stale_after, now)
        except (OSError, ValueError, KeyError):
            alive = False
        if not alive and not (private / KEPT_FILE).exists():
            shutil.rmtree(private, ignore_errors=True)


def _younger_than(path: Path, seconds: float, now: float) -> bool:
    try:
        return now - path.stat().st_mtime <= seconds
    except OSError:
        return False


def collectable(record: RunRecord, ttl: float, now: float) -> str | None:
    """Why a run may be collected, or None while it is in use."""
    lease = record.lease_until
    if lease and lease > now:
        return None
    if lease:
        return "its lease expired"
    if not record.owner_alive():
        return "its owner is gone"
    if now - (record.created or now) > ttl:
        return f"it is older than {int(ttl)} s"
    return None


def gc(
    ttl: float = 6 * 3600, run_id_prefix: str = "", grace: float = 5.0, warn: Callable[[str], None] | None = None
) -> list[TeardownResult]:
    """Tear down every run of this host whose owner is gone, whose lease expired, or that outlived `ttl`;
    prune PostgreSQL templates and service virtualenvs unused for a week (never one a run that is up uses);
    then remove containers and networks labelled by testbed whose run no longer has a state file."""
    now = time.time()
    results = []
    known: set[str] = set()
    pythons: list[Path] = []  # of the runs that stay up: their virtualenvs are in use
    for state in all_runs(warn or (lambda warning: print(f"⚠️  {warning}", file=sys.stderr))):
        try:
            record = state.load()
        except (OSError, ValueError):
            continue
        known.add(record.run_id)
        if record.run_id.startswith(run_id_prefix) and collectable(record, ttl, now):
            results.append(teardown(state, grace=grace, include_controller=True))
        elif record.python and not record.torn_down:
            pythons.append(record.python)
    stale_after = 600  # a run folder without state, untouched this long, belongs to no run in progress
    for folder in stateless_runs():
        # Its servers (and anything marked with it) are stopped before the folder goes, unless its tests are
        # still running: their owner is alive (the supervisor ends them when it is not), and so is its run.
        stale = now - folder.stat().st_mtime > stale_after
        if stale and folder.name.startswith(run_id_prefix) and not reaper.supervising(folder.name):
            results.append(teardown_without_state(folder.name, grace))
    for template in paths.template_root().iterdir() if paths.template_root().is_dir() else ():
        # Unused templates expire; a half-copied one (a killed run's) is stale after ten minutes.
        age = now - template.stat().st_mtime
        if age > (stale_after if template.name.startswith(".") else paths.TEMPLATE_TTL):
            shutil.rmtree(template, ignore_errors=True)

    venv_cache.prune(in_use=[python.parent.parent for python in pythons], now=now)  # <venv>/bin/python
    _prune_private_dirs(stale_after, now)
    if docker_api.engine_answers(timeout=2.0):
        root = str(runtime_root())
        for container in docker_api.containers_of():
            labels = container.get("Labels") or {}
            run = labels.get(docker_api.LABEL_RUN, "")
            # Another uid's or another TESTBED_RUNTIME_DIR's runs are not ours to judge.
            if labels.get(docker_api.LABEL_ROOT) == root and run not in known and run.startswith(run_id_prefix):
                orphan = TeardownResult(run)
                name = container["Names"][0].lstrip("/") if container.get("Names") else container["Id"]
                (orphan.removed if docker_api.remove_container(container["Id"]) else orphan.left).append(
                    f"container {name}"
                )
                results.append(orphan)
        for network in docker_api.networks_of():
            labels = network.get("Labels") or {}
            run = labels.get(docker_api.LABEL_RUN, "")
            if labels.get(docker_api.LABEL_ROOT) == root and run not in known and run.startswith(run_id_prefix):
                orphan = TeardownResult(run)
                (orphan.removed if docker_api.remove_network(network["Id"]) else orphan.left).append(
                    f"network {network['Name']}"
                )
                results.append(orphan)
    return results
