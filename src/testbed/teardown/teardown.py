"""Teardown from the state file alone: one implementation for the playbooks' `always`, the wrapper's signal
handler, `testbed down` and `testbed gc`, on both backends; and an environment whose state file is gone, found
from what remains (its data folders, postmaster.pid, the run's marker)."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from testbed.backends import docker_api
from testbed.core import files, host, logcap, paths
from testbed.core.errors import TestbedError
from testbed.core.paths import PRIVATE_DIR, STATE_NAME, owned_by_us, runtime_root
from testbed.core.processes import ProcessIdentity, stop_processes
from testbed.run import secrets
from testbed.run.outcome import TeardownResult
from testbed.run.record import PROCESS_KINDS, Resource
from testbed.run.store import RunState
from testbed.teardown import reaper


def _save_container_log(container: str, service: str, run_folder: Path) -> None:
    """The container's log, capped as a native server's is (testbed.core.logcap); best effort."""
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
    redactor.tree(state.runtime_dir, skip=(PRIVATE_DIR,), fragments=False)
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
        return teardown_without_state(run_id, grace)
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
        and folder != paths.template_root()
        and not (folder / STATE_NAME).exists()
    ]


def _our_folder(folder: Path) -> bool:
    return folder.is_dir() and not folder.is_symlink() and owned_by_us(folder)


def teardown_without_state(run_id: str, grace: float) -> TeardownResult:
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
    server_uid = _server_uid()
    for removed, left in (reaper.shared_memory(postmasters, server_uid), reaper.shared_memory_files(server_uid)):
        result.removed += removed
        result.left += left


def _server_uid() -> int | None:
    """The dedicated account native servers run as when testbed is root: its orphaned segments are ours."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(host.SERVER_USER).pw_uid
    except KeyError:
        return None


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
