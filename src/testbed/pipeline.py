"""The pipeline's phases as plain functions over the state file. The Ansible modules in plugins/modules
are thin shells around these, so the playbooks, the wrapper and gc share one implementation."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from testbed import docker_api, files, native, workers
from testbed.backend_choice import BACKENDS, choose_backend
from testbed.config import load_service_config
from testbed.docker_backend import containers
from testbed.errors import ExitCode, TestbedError
from testbed.phase_results import DependenciesReady, Migrated, TeardownResult, tests_line
from testbed.ports import free_port, port_free, port_holder
from testbed.preflight_checks import check_before_start
from testbed.pytest_run import run_tests
from testbed.run_record import RunRecord
from testbed.servers import WORKER_OF, kind_of, migrations_server, unavailable_on
from testbed.state import ProcessIdentity, RunState, check_run_id, new_run_id, proc_stat, runtime_root

__all__ = [
    "BACKENDS",
    "PORT_MODES",
    "install_dependencies",
    "migrate",
    "open_run",
    "pytest_phase",
    "record",
    "start_native",
    "teardown_phase",
]

PORT_MODES = ("fixed", "auto")


def _playbook_pid() -> int | None:
    """The ansible-playbook process above this module: the run's owner when no wrapper says otherwise."""
    pid = os.getppid()
    while pid > 1:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        if any(part.endswith(b"ansible-playbook") for part in cmdline[:2]):
            return pid
        fields = proc_stat(pid)
        if fields is None:
            return None
        pid = int(fields[1])
    return None


def _context(record: RunRecord, notices: list[str]) -> dict[str, Any]:
    """What the later phases (the roles) need of a run, from its state: the keys they read."""
    specs = containers(record.run_id, record.servers) if record.backend == "docker" else []
    network = f"testbed-{record.run_id}"
    return {
        "run_id": record.run_id,
        "run_folder": str(record.run_folder),
        "runtime_dir": str(record.runtime_dir),
        "backend": record.backend,
        "backend_reason": record.backend_reason,
        "notices": notices,
        "service": record.service,
        "servers": record.servers,
        "secrets": record.service_config().as_dict()["secrets"],
        "containers": specs,
        "network": network,
        "network_labels": {docker_api.LABEL_RUN: record.run_id, docker_api.LABEL_ROOT: str(runtime_root())},
        "records": (
            [{"kind": "network", "name": network}]
            + [{"kind": "container", "name": c["name"], "service": c["service"]} for c in specs]
        ),
    }


def _existing_run(run_id: str, count: int) -> dict[str, Any] | None:
    """Bringing up a run that exists (and is not torn down) reuses it: a second `up` changes nothing, unless
    it asks for more pytest workers than the run has servers for: their instances are added (and started by
    the servers phase, which starts only what is missing)."""
    if not run_id:
        return None
    try:
        state = RunState.find(run_id)
    except TestbedError:
        return None
    _record_controller(state)
    record = state.load()
    if record.torn_down:
        return None
    grown = count > record.workers
    if grown:
        with state.update() as current:
            added = workers.missing_instances(current["servers"], count)
            current["servers"] = workers.with_instances(current["servers"], count)
            _pick_ports({name: current["servers"][name] for name in added}, "auto", current["backend"])
            current["workers"] = count
        record = state.load()
    context = _context(record, record.notices)
    context["changed"] = grown
    return context


def _pick_ports(servers: Mapping[str, dict[str, Any]], ports: str, backend: str) -> None:
    """Each server's ports: checked free (fixed), or picked now (auto; Docker publishes ephemeral ones, read
    back later). A worker's instance always gets an auto port: nobody connects to it by a known number."""
    busy = []
    for name, settings in servers.items():
        for key in kind_of(name, settings).ports(settings):
            if ports == "auto" or settings.get(WORKER_OF):
                settings[key] = 0 if backend == "docker" else free_port()
            elif not port_free(int(settings[key])):
                holder = port_holder(int(settings[key]))
                who = f" by {holder}" if holder else " (bound by a socket that does not listen)"
                busy.append(f"{settings['title']} port {settings[key]} is taken{who}")
    if busy:
        raise TestbedError("; ".join(busy) + " — stop it, or use --ports auto", ExitCode.PROVISIONING)


def _record_controller(state: RunState) -> None:
    """Record the ansible-playbook running this module: a killed wrapper leaves it running, and gc stops it
    with the servers."""
    pid = _playbook_pid()
    controller = ProcessIdentity.of(pid) if pid else None
    if controller is None:
        return
    with state.update() as data:
        if not any(r["kind"] == "controller" and r["pid"] == controller.pid for r in data["resources"]):
            data["resources"].append({"kind": "controller", **controller.as_dict(), "stop_signal": 15})


def open_run(params: Mapping[str, Any]) -> dict[str, Any]:
    """The preflight phase's work: validate everything (the checks), pick the backend and ports, and create the
    run's state, or reuse the run if it exists; start nothing."""
    backend = params.get("backend") or "auto"
    ports = params.get("ports") or "fixed"
    if backend not in BACKENDS:
        raise TestbedError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
    if ports not in PORT_MODES:
        raise TestbedError(f"ports {ports!r} is not one of {', '.join(PORT_MODES)}")
    config = load_service_config(params["service_dir"], params["catalogue"])
    asked = str(params.get("workers") or "0")
    count = workers.count(config.tests.workers if asked == "0" else asked, "workers")
    check_before_start(config, worker_count=count)
    crowded = workers.crowding(count)
    existing = _existing_run(params.get("run_id") or "", count)
    if existing is not None:
        existing["notices"] = [*existing["notices"], *crowded]
        return existing
    servers = {name: dict(settings) for name, settings in config.servers.items()}
    for name, image in (params.get("images") or {}).items():
        if name not in servers:
            raise TestbedError(
                f"image override for {name!r}, which the service does not use (it uses {', '.join(servers)})"
            )
        servers[name]["image"] = image
    imageless = [name for name, settings in servers.items() if not settings["image"]]
    if backend == "auto" and imageless:
        chosen, reason = "native", f"{imageless[0]} has no image"
    else:
        images = {n: s["image"] for n, s in servers.items() if s["image"]}
        chosen, reason = choose_backend(backend, images, bool(params.get("pull")))
    unavailable = unavailable_on(servers, chosen)
    if unavailable:
        raise TestbedError(unavailable, ExitCode.CONFIG)
    notices: list[str] = []
    if chosen == "native":
        _, notices = native.binaries(servers)
    servers = workers.with_instances(servers, count)
    _pick_ports(servers, ports, chosen)

    run_id = check_run_id(params.get("run_id") or new_run_id())
    run_folder = Path(params["run_root"]).resolve() / run_id
    owner_pid = params.get("owner_pid") or _playbook_pid()
    owner = ProcessIdentity.of(int(owner_pid)) if owner_pid else None
    state = RunState.create(
        run_id,
        run_folder,
        owner,
        {
            "backend": chosen,
            "backend_reason": reason,
            "service": config.name,
            "ports": ports,
            "config": config.as_dict(),
            "servers": servers,
            "notices": notices,
            "workers": count,
        },
    )
    if params.get("lease_seconds"):
        with state.update() as data:
            data["lease_until"] = time.time() + int(params["lease_seconds"])
    _record_controller(state)
    files.write(run_folder / "diagnostics" / "config.json", json.dumps(config.as_dict(), indent=2), root=run_folder)
    return _context(state.load(), [*notices, *crowded])


def record(run_id: str, resources: list[Mapping[str, Any]]) -> None:
    state = RunState.find(run_id)
    for resource in resources:
        state.record(resource)


def start_native(run_id: str) -> dict[str, Any]:
    state = RunState.find(run_id)
    record = state.load()
    return native.start(state, record.servers, record.run_folder / "logs")


def migrate(run_id: str) -> Migrated:
    """Apply the service's migrations. In a dev-loop run (`testbed up`) that already kept its migrated state,
    a migration added since is applied to that kept state and the database is reset from it, so it lands on
    fresh data; the first time, the migrated state is kept for `testbed test`'s reset."""
    from testbed import migrations  # noqa: PLC0415 - psycopg is only needed once servers are up

    state = RunState.find(run_id)
    record = state.load()
    servers, facts = record.servers, record.facts
    config = record.service_config()
    folder = config.migrations
    target = migrations_server(servers)
    if folder and target is None:  # config validation requires one; a state file edited by hand may not
        raise TestbedError("migrations: the run has no server that runs them", ExitCode.MIGRATIONS)
    kept, lost = workers.kept_state(record)
    if lost and target is not None:
        # The database holds whatever the tests left: start it over empty, migrate it and keep that (below).
        kind_of(target, servers[target]).empty(servers[target], facts[target])
    applied: list[str] = []
    skipped: list[str] = []
    if folder and target is not None:
        kind = kind_of(target, servers[target])
        where = kept or facts[target]
        try:
            schema = config.migrations_schema or migrations.DEFAULT_SCHEMA
            result = migrations.apply(kind.conninfo(where), folder, schema=schema)
        except migrations.MigrationError as exc:
            raise TestbedError(f"migrations: {exc}", ExitCode.MIGRATIONS) from exc
        applied, skipped = list(result.applied), list(result.skipped)
        if kept and applied:
            kind.reset(servers[target], facts[target])
    if record.dev_loop and not kept:
        workers.snapshot(servers, facts)
        with state.update() as current:
            current["kept_at"] = time.time()
    rebuilt = servers[target]["title"] if lost and target is not None else ""
    return Migrated(tuple(applied), tuple(skipped), rebuilt)


def install_dependencies(run_id: str) -> DependenciesReady:
    """Install the service's dependencies (cached) and record the interpreter to test with."""
    state = RunState.find(run_id)
    config = state.load().service_config()
    from testbed import dependencies  # noqa: PLC0415

    python, cached = dependencies.ensure(config, state)
    with state.update() as current:
        current["python"] = str(python)
    return DependenciesReady(str(python), cached)


def pytest_phase(
    run_id: str, extra_args: list[str] | None = None, asked_workers: str = "0", reset: bool = True
) -> dict[str, Any]:
    """run_tests, failing the phase with pytest's own exit code when the tests did not pass."""
    count = 0 if asked_workers in ("", "0") else workers.count(asked_workers, "workers")
    result = run_tests(run_id, extra_args, count, reset, auto=asked_workers == "auto")
    rc = result["rc"]
    gone = "; ".join(result["servers_gone"])
    if result.get("untrusted"):
        # Counted as pytest's internal error (3): something ended it without its own reporting.
        error = TestbedError(
            f"Tests: {result['untrusted']}{'; ' + gone if gone else ''}; see {result['log']}", ExitCode.INTERNAL_ERROR
        )
        error.details |= result
        raise error
    if rc == 0 and gone:  # the tests passed, but against an environment that went away under them
        error = TestbedError(
            f"Tests: {tests_line(result['tests'])}, but {gone} during the tests", ExitCode.PROVISIONING
        )
        error.details |= result
        raise error
    if rc == 0:
        return result
    if rc == ExitCode.DEADLINE:
        error = TestbedError(
            f"Tests: outlived tests.deadline ({result['deadline']} s): pytest and everything it started were "
            f"killed{'; ' + gone if gone else ''}; see {result['log']}",
            ExitCode.DEADLINE,
        )
        error.details |= result
        raise error
    if rc == ExitCode.NO_TESTS:
        error = TestbedError("Tests: no tests collected (counted as a failure)", ExitCode.NO_TESTS)
    elif rc in (ExitCode.TESTS_FAILED, ExitCode.INTERRUPTED, ExitCode.INTERNAL_ERROR, ExitCode.USAGE_ERROR):
        error = TestbedError(
            f"Tests: {tests_line(result['tests'])} (pytest exit {rc}{'; ' + gone if gone else ''}; "
            f"see {result['log']})",
            ExitCode(rc),
        )
    else:
        error = TestbedError(f"Tests: pytest ended with exit {rc}; see {result['log']}", ExitCode.INTERNAL_ERROR)
    error.details |= result
    raise error


def teardown_phase(run_id: str, grace: float = 5.0) -> TeardownResult:
    from testbed.teardown import teardown_run_id  # noqa: PLC0415

    result = teardown_run_id(run_id, grace=grace)
    if not result.ok:
        error = result.error()
        error.details |= result.as_dict()
        raise error
    return result
