"""Teardown from the state file alone, and gc of runs whose owner is gone: one implementation for the
playbooks' `always`, the wrapper's signal handler, `testbed down` and `testbed gc`, on both backends."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from testbed import docker_api, files, logcap, native, reaper, secrets
from testbed.errors import TestbedError
from testbed.phase_results import TeardownResult
from testbed.run_record import PROCESS_KINDS, Resource, RunRecord
from testbed.state import (
    KEPT_FILE,
    OWNER_FILE,
    STATE_NAME,
    ProcessIdentity,
    RunState,
    all_runs,
    owned_by_us,
    runtime_root,
    stop_processes,
)


def _save_container_log(container: str, service: str, run_folder: Path) -> None:
    """The container's log, capped as a native server's is (testbed.logcap); best effort."""
    with contextlib.suppress(OSError, TestbedError):
        text = docker_api.logs(container).encode("utf-8", "surrogateescape")
        capped = logcap.head_and_tail(text, logcap.SERVER_HEAD, logcap.SERVER_TAIL)
        files.write(run_folder / "logs" / f"{service}.log", capped, root=run_folder)


def teardown(
    state: RunState,
    grace: float = 5.0,
    collect_logs: bool = True,
    include_controller: bool = False,
    hurry: Callable[[], bool] | None = None,
) -> TeardownResult:
    """Remove everything the state file records, containers and processes first, then folders.
    The controller (the ansible-playbook running this run) is stopped only from outside it: by gc, or by
    the wrapper after a cancel."""
    record = state.load()
    result = TeardownResult(record.run_id)
    run_folder = record.run_folder
    # Named (once) and torn down all the same: a run folder that became a link, a disk that filled up.
    try:
        os.close(files.open_folder(run_folder))
    except files.LinkRefused as refused:
        result.refuse(refused)  # nothing below is written or scrubbed through it
    except OSError:
        pass  # gone: nothing to scrub there
    for folder in (run_folder, state.runtime_dir):
        full = files.full_filesystem(folder)
        if full is not None:
            result.refuse(full)

    for item in record.of_kind("container"):
        container, service = item.name or "", item.service or item.name or ""
        try:
            stranger = _not_labelled_for(container, record.run_id)
            if stranger:
                result.left.append(f"container {container} ({stranger}: not removed)")
                continue
            if collect_logs and run_folder.is_dir():
                _save_container_log(container, service, run_folder)
            (result.removed if docker_api.remove_container(container) else result.left).append(f"container {container}")
        except OSError as exc:
            result.left.append(f"container {container} (engine: {exc})")

    kinds = PROCESS_KINDS if include_controller else tuple(k for k in PROCESS_KINDS if k != "controller")
    servers = record.of_kind(*kinds)
    processes = [(r.identity(), r.signal_to_stop) for r in servers]
    folders = record.of_kind("directory")

    def remove_folders(service: str | None) -> None:
        for item in [f for f in folders if service is None or f.service == service]:
            folders.remove(item)
            path = item.path or Path()
            if not _inside(path, (state.runtime_dir, run_folder)):
                result.left.append(f"directory {path} (outside the run's folders: not removed)")
                continue
            shutil.rmtree(path, ignore_errors=True)
            (result.left if path.exists() else result.removed).append(f"directory {path}")

    def stopped(identity: ProcessIdentity) -> None:
        # A server's data goes as soon as it has exited, while slower ones are still stopping.
        service = next((r.service for r in servers if r.pid == identity.pid), None)
        if service:
            remove_folders(service)

    survivors = {identity.pid for identity in stop_processes(processes, grace, hurry, stopped)}
    for identity, _ in processes:
        label = f"process {identity.pid}"
        (result.left if identity.pid in survivors else result.removed).append(label)

    # What the state does not list: the tests' and the install's stragglers, a killed postmaster's memory.
    _sweep(record.run_id, {identity.pid for identity, _ in processes}, result)

    for network in (r.name or "" for r in record.of_kind("network")):
        try:
            (result.removed if docker_api.remove_network(network) else result.left).append(f"network {network}")
        except OSError as exc:
            result.left.append(f"network {network} (engine: {exc})")

    remove_folders(None)  # the rest: survivors' (now killed), the run's own

    # Whatever a server or a test wrote into the run's folders is scrubbed while the values are still known;
    # then the values never outlive the run, even when something else was left behind.
    redactor = secrets.redactor(record.run_id)
    redactor.tree(run_folder, skip=("htmlcov",))  # htmlcov: scrubbed when pytest ended
    # The runtime dir may still hold a server's data that could not be removed: whole values only, fast.
    redactor.tree(state.runtime_dir, skip=(secrets.PRIVATE_DIR,), fragments=False)
    secrets.remove_secrets(record.run_id)
    if not state.path.is_file():
        # Another teardown of the same run (the playbook's own `always`, racing gc after a killed wrapper)
        # finished first and removed the runtime dir: nothing is left to record.
        return result
    still_there = False
    try:
        with state.update() as current:
            current["torn_down"] = time.time()
            current["left"] = result.left
            # Keep whatever was not removed: what failed, and anything recorded while this ran.
            removed = set(result.removed)
            current["resources"] = [r for r in current["resources"] if Resource.from_dict(r).label not in removed]
            still_there = bool(current["resources"]) and any(r["kind"] != "controller" for r in current["resources"])
    except FileNotFoundError:
        return result  # the same race, lost between the check and the lock
    except (files.DiskFull, files.LinkRefused) as refused:
        result.refuse(refused)  # the state file keeps its last whole version; what it lists was removed above
    if not result.left and not still_there:
        # The canonical state goes with the runtime dir; the run folder keeps the final copy.
        shutil.rmtree(state.runtime_dir, ignore_errors=True)
    return result


def teardown_run_id(
    run_id: str, grace: float = 5.0, include_controller: bool = False, hurry: Callable[[], bool] | None = None
) -> TeardownResult:
    """Tear a run down by its id. A run that never got a state file has at most its private folder
    (secrets the wrapper moved there before preflight failed): remove that."""
    try:
        state = RunState.find(run_id)
    except TestbedError:
        return _teardown_without_state(run_id, grace)
    return teardown(state, grace=grace, include_controller=include_controller, hurry=hurry)


def without_state(run_id: str) -> list[str]:
    """What still runs of a run whose state file is gone: its servers (found as teardown finds them without
    it) and what carries its marker, by name and pid; empty when nothing does."""
    runtime_dir = runtime_root() / run_id
    pids = {pid for pid, _ in reaper.servers_in(runtime_dir)} if _our_folder(runtime_dir) else set()
    return reaper.names(sorted(pids | set(reaper.marked(run_id))))


def stateless_runs() -> list[Path]:
    """The runtime folders of this host's runs that have no state file (a test deleted it, or the run
    never wrote one): teardown finds what is left of them from the folders themselves."""
    root = runtime_root()
    if not root.is_dir():
        return []
    return [
        folder
        for folder in sorted(root.iterdir())
        if _our_folder(folder)
        and not folder.name.startswith("runner-")
        and folder != native.template_root()
        and not (folder / STATE_NAME).exists()
    ]


def _our_folder(folder: Path) -> bool:
    return folder.is_dir() and not folder.is_symlink() and owned_by_us(folder)


def _teardown_without_state(run_id: str, grace: float) -> TeardownResult:
    """The state file is gone (never written, or deleted by a test): find the run's servers by their data
    folders and pid files in its runtime folder, its tests' stragglers by their marker, its containers by
    label; stop them, then remove the folder."""
    result = TeardownResult(run_id)
    runtime_dir = runtime_root() / run_id
    if _our_folder(runtime_dir):
        servers = reaper.servers_in(runtime_dir)
        survivors = reaper.kill(servers, grace)
        for pid, _ in servers:
            (result.left if pid in survivors else result.removed).append(f"process {pid}")
        _sweep(run_id, {pid for pid, _ in servers}, result)
        shutil.rmtree(runtime_dir, ignore_errors=True)
        if runtime_dir.exists():
            result.left.append(f"directory {runtime_dir}")
    else:
        _sweep(run_id, set(), result)
    with contextlib.suppress(OSError):
        if docker_api.engine_answers(timeout=2.0):
            for container in docker_api.containers_of(run_id):
                if (container.get("Labels") or {}).get(docker_api.LABEL_ROOT) == str(runtime_root()):
                    name = container["Names"][0].lstrip("/") if container.get("Names") else container["Id"]
                    done = docker_api.remove_container(container["Id"])
                    (result.removed if done else result.left).append(f"container {name}")
    return result


def _sweep(run_id: str, postmasters: set[int], result: TeardownResult) -> None:
    removed, left = reaper.kill_marked(run_id)
    result.removed += removed
    result.left += left
    removed, left = reaper.shared_memory(postmasters, _server_uid())
    result.removed += removed
    result.left += left


def _server_uid() -> int | None:
    """The dedicated account native servers run as when testbed is root: its orphaned segments are ours."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(native.SERVER_USER).pw_uid
    except KeyError:
        return None


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


def _inside(path: Path, folders: tuple[Path, ...]) -> bool:
    """`path` lies below one of `folders`, with no symbolic link from that folder down to it: a run folder
    replaced by a link to /etc must not make /etc/x look like the run's."""
    plain = Path(os.path.normpath(path.absolute()))
    for folder in folders:
        if plain == folder or not plain.is_relative_to(folder):
            continue
        try:
            os.close(files.open_folder(plain.parent, folder))
        except (OSError, files.LinkRefused):
            continue
        return True
    return False


def _not_labelled_for(container: str, run_id: str) -> str | None:
    """Why a recorded container is not this run's (labels say otherwise), or None."""
    status, body = docker_api.request("GET", f"/containers/{container}/json", timeout=10)
    if status != 200:
        return None  # gone already: removing it is a no-op
    labels = json.loads(body).get("Config", {}).get("Labels") or {}
    if labels.get(docker_api.LABEL_RUN) != run_id:
        return f"labelled for run {labels.get(docker_api.LABEL_RUN)!r}, not this one"
    return None


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
            results.append(_teardown_without_state(folder.name, grace))
    for template in native.template_root().iterdir() if native.template_root().is_dir() else ():
        # Unused templates expire; a half-copied one (a killed run's) is stale after ten minutes.
        age = now - template.stat().st_mtime
        if age > (stale_after if template.name.startswith(".") else native.TEMPLATE_TTL):
            shutil.rmtree(template, ignore_errors=True)
    from testbed import dependencies  # noqa: PLC0415 - the install's module, needed here only

    dependencies.prune(in_use=[python.parent.parent for python in pythons], now=now)  # <venv>/bin/python
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
