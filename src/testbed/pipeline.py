"""The pipeline's phases as plain functions over the state file. The Ansible modules in plugins/modules
are thin shells around these, so the playbooks, the wrapper and gc share one implementation."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from testbed import docker_api, native, redact, secrets, supervisor
from testbed.config import (
    ServiceConfig,
    connection_facts,
    load_service_config,
    pytest_arguments,
    service_environment,
)
from testbed.errors import ExitCode, TestbedError
from testbed.junit import JUnitSummary
from testbed.preflight_checks import check_before_start
from testbed.servers import kind_of, migrations_server, unavailable_on
from testbed.state import ProcessIdentity, RunState, check_run_id, new_run_id, proc_stat, runtime_root

BACKENDS = ("auto", "docker", "native")
PORT_MODES = ("fixed", "auto")


def _port_holder(port: int) -> str:
    """Who listens on a TCP port, where /proc tells (root sees every process)."""
    wanted = f":{port:04X}"
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text(encoding="ascii").splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[1].endswith(wanted) and fields[3] == "0A":  # 0A: LISTEN
                inodes.add(fields[9])
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                target = str(fd.readlink())
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    name = (proc / "comm").read_text(encoding="utf-8").strip()
                    return f"{name} (pid {proc.name})"
        except OSError:
            continue
    return ""


def port_free(port: int) -> bool:
    """Whether a server could listen on the port. With SO_REUSEADDR, as the servers bind: the previous
    run's TIME_WAIT connections do not count, a listener (or a socket that refuses the bind) does."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _registry_answers(image: str, timeout: float = 3.0) -> str | None:
    """A bounded reachability check of an image's registry (never a pull, which can hang).

    The registry is the reference's first component when it looks like a host (has a dot or a port, or
    is `localhost`), else Docker Hub; an explicit port (`localhost:5000/x`, `[::1]:5000/x`) is used."""
    first, slash, _ = image.partition("/")
    registry = first if slash and ("." in first or ":" in first or first == "localhost") else "registry-1.docker.io"
    host, port = registry, 443
    if registry.startswith("["):
        host, _, rest = registry[1:].partition("]")
        port = int(rest[1:]) if rest[1:].isdigit() else 443
    elif registry.count(":") == 1 and registry.partition(":")[2].isdigit():
        host, port = registry.partition(":")[0], int(registry.partition(":")[2])
    try:
        socket.setdefaulttimeout(timeout)  # getaddrinfo has no timeout of its own
        socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return f"registry {registry} does not answer ({exc.strerror or exc})"
    finally:
        socket.setdefaulttimeout(None)


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


def choose_backend(requested: str, images: Mapping[str, str], pull: bool) -> tuple[str, str]:
    """The backend to use and why, in words. Never pulls: an image that is not here (or every image,
    with `pull`) needs its registry to answer a bounded check."""
    if requested == "native":
        return "native", "asked for"
    version = docker_api.engine_answers()
    if version is None:
        if requested == "docker":
            raise TestbedError(
                "backend docker: no Docker engine answers on "
                f"{docker_api.socket_path()}; start it or use --backend native",
                ExitCode.PROVISIONING,
            )
        return "native", "no Docker engine answers"
    to_pull = []
    for server, image in images.items():
        if not pull and docker_api.image_present(image):
            continue
        problem = _registry_answers(image)
        if problem is None:
            to_pull.append(image)
        elif requested == "docker":
            raise TestbedError(
                f"image {image} cannot be pulled: {problem}; use --backend native, "
                f"or point settings.{server}.image (or --image {server}=IMAGE) at an image you have",
                ExitCode.PROVISIONING,
            )
        else:
            return "native", f"image {image} is not here and {problem}"
    pulling = f"; {', '.join(to_pull)} will be pulled" if to_pull else ""
    if requested == "docker":
        return "docker", f"asked for (engine {version}){pulling}"
    return "docker", f"engine {version} answers and every image is at hand{pulling}"


def _context(data: Mapping[str, Any], notices: list[str]) -> dict[str, Any]:
    """What the later phases need of a run, from its state."""
    specs = containers(data["run_id"], data["servers"]) if data["backend"] == "docker" else []
    network = f"testbed-{data['run_id']}"
    return {
        "run_id": data["run_id"],
        "run_folder": data["run_folder"],
        "runtime_dir": data["runtime_dir"],
        "backend": data["backend"],
        "backend_reason": data["backend_reason"],
        "notices": notices,
        "service": data["service"],
        "servers": data["servers"],
        "secrets": data["config"]["secrets"],
        "containers": specs,
        "network": network,
        "network_labels": {docker_api.LABEL_RUN: data["run_id"], docker_api.LABEL_ROOT: str(runtime_root())},
        "records": (
            [{"kind": "network", "name": network}]
            + [{"kind": "container", "name": c["name"], "service": c["service"]} for c in specs]
        ),
    }


def _existing_run(run_id: str) -> dict[str, Any] | None:
    """Bringing up a run that exists (and is not torn down) reuses it: a second `up` changes nothing."""
    if not run_id:
        return None
    try:
        state = RunState.find(run_id)
    except TestbedError:
        return None
    _record_controller(state)
    data = state.read()
    if data.get("torn_down"):
        return None
    context = _context(data, data.get("notices", []))
    context["changed"] = False
    return context


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


def preflight(params: Mapping[str, Any]) -> dict[str, Any]:
    """Validate everything, pick the backend and ports, create the run's state; start nothing."""
    backend = params.get("backend") or "auto"
    ports = params.get("ports") or "fixed"
    if backend not in BACKENDS:
        raise TestbedError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
    if ports not in PORT_MODES:
        raise TestbedError(f"ports {ports!r} is not one of {', '.join(PORT_MODES)}")
    config = load_service_config(params["service_dir"], params["catalogue"])
    check_before_start(config)
    existing = _existing_run(params.get("run_id") or "")
    if existing is not None:
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

    busy = []
    for name, settings in servers.items():
        for key in kind_of(name, settings).ports(settings):
            if ports == "auto":
                # Docker publishes an ephemeral port and testbed reads it back; native picks one now.
                settings[key] = 0 if chosen == "docker" else free_port()
            elif not port_free(int(settings[key])):
                holder = _port_holder(int(settings[key]))
                who = f" by {holder}" if holder else " (bound by a socket that does not listen)"
                busy.append(f"{settings['title']} port {settings[key]} is taken{who}")
    if busy:
        raise TestbedError("; ".join(busy) + " — stop it, or use --ports auto", ExitCode.PROVISIONING)

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
        },
    )
    if params.get("lease_seconds"):
        with state.update() as data:
            data["lease_until"] = time.time() + int(params["lease_seconds"])
    _record_controller(state)
    (run_folder / "diagnostics").mkdir(exist_ok=True)
    (run_folder / "diagnostics" / "config.json").write_text(json.dumps(config.as_dict(), indent=2), encoding="utf-8")
    return _context(state.read(), notices)


def containers(run_id: str, servers: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The container for each server, from the same catalogue the native backend reads. `present` says
    whether its image is here already (the servers role pulls only the others, before any container)."""
    specs = []
    for name, settings in servers.items():
        spec: dict[str, Any] = {
            "service": name,
            "name": f"testbed-{run_id}-{name}",
            "image": settings["image"],
            "labels": {
                docker_api.LABEL_RUN: run_id,
                docker_api.LABEL_SERVICE: name,
                docker_api.LABEL_ROOT: str(runtime_root()),
            },
            "env": {},
            "tmpfs": [],
            "command": [],
            "present": docker_api.image_present(settings["image"]),
        }
        kind = kind_of(name, settings)
        parts = kind.container(settings)
        spec |= {"command": parts.command, "env": parts.env, "tmpfs": parts.tmpfs}
        spec["ports"] = [f"127.0.0.1:{settings[key] or ''}:{inner}" for key, inner in kind.ports(settings).items()]
        specs.append(spec)
    return specs


def record(run_id: str, resources: list[Mapping[str, Any]]) -> None:
    state = RunState.find(run_id)
    for resource in resources:
        state.record(resource)


def start_native(run_id: str) -> dict[str, Any]:
    state = RunState.find(run_id)
    data = state.read()
    return native.start(state, data["servers"], Path(data["run_folder"]) / "logs")


def _published_ports(data: Mapping[str, Any]) -> dict[str, Any]:
    """Read back the host ports Docker published (ephemeral with ports: auto)."""
    servers = {name: dict(settings) for name, settings in data["servers"].items()}
    published: dict[str, Any] = {}
    for item in (r for r in data["resources"] if r["kind"] == "container"):
        try:
            status, body = docker_api.request("GET", f"/containers/{item['name']}/json", timeout=5)
        except OSError as exc:  # the engine went away after starting the containers
            raise TestbedError(
                f"{servers[item['service']]['title']}: cannot read the ports of container "
                f"{item['name']}: {exc}; once it answers, `testbed gc` removes what the run left",
                ExitCode.PROVISIONING,
            ) from exc
        if status != 200:
            raise TestbedError(
                f"{servers[item['service']]['title']}: container {item['name']} is missing", ExitCode.PROVISIONING
            )
        published[item["service"]] = json.loads(body)["NetworkSettings"]["Ports"] or {}
    for name, ports in published.items():
        for key, container_port in kind_of(name, servers[name]).ports(servers[name]).items():
            bindings = ports.get(f"{container_port}/tcp") or []
            if bindings:
                servers[name][key] = int(bindings[0]["HostPort"])
    return servers


def _gone(data: Mapping[str, Any]) -> Callable[[str], str | None]:
    processes = {r["service"]: ProcessIdentity.from_dict(r) for r in data["resources"] if r["kind"] == "process"}
    names = {r["service"]: r["name"] for r in data["resources"] if r["kind"] == "container"}

    def gone(service: str) -> str | None:
        if service in processes and not processes[service].alive():
            return "the server exited"
        if service in names:
            try:
                status, body = docker_api.request("GET", f"/containers/{names[service]}/json", timeout=3)
            except OSError as exc:
                return f"the Docker engine stopped answering ({exc})"
            if status == 404:
                return "the container is gone"
            state = json.loads(body).get("State", {})
            if not state.get("Running"):
                return f"the container exited with code {state.get('ExitCode')}"
        return None

    return gone


def _log_tail(run_folder: Path, data: Mapping[str, Any], service: str, lines: int = 15) -> list[str]:
    names = {r["service"]: r["name"] for r in data["resources"] if r["kind"] == "container"}
    try:
        if service in names:
            text = docker_api.logs(names[service], tail=lines)
        else:
            text = (run_folder / "logs" / f"{service}.log").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]


def ready(run_id: str, timeout: float) -> dict[str, Any]:
    """Wait until every server answers its protocol; record the facts tests will see."""
    from testbed import probes  # noqa: PLC0415 - psycopg, redis and nats-py load only where they probe

    state = RunState.find(run_id)
    deadline = time.monotonic() + timeout
    for _attempt in range(PORT_RETRIES + 1):
        data = state.read()
        run_folder = Path(data["run_folder"])
        servers = _published_ports(data)
        facts = connection_facts(servers)
        results = probes.wait_ready(facts, max(deadline - time.monotonic(), 1.0), _gone(data), servers=servers)
        # With auto ports a native server can lose the race for its port to another process: retry it on
        # a fresh one (Docker publishes ephemeral ports itself and never races).
        lost = [name for name, r in results.items() if not r.ready and _lost_port_race(data, run_folder, name)]
        if not lost:
            break
        _restart_on_new_ports(state, lost)
    diagnostics = run_folder / "diagnostics"
    diagnostics.mkdir(exist_ok=True)
    (diagnostics / "readiness.json").write_text(
        json.dumps({k: v.as_dict() for k, v in results.items()}, indent=2), encoding="utf-8"
    )
    with state.update() as current:
        # "servers" keeps what was asked for (ports 0 under Docker's auto ports); facts hold what is.
        current["facts"] = facts
        current["versions"] = {k: v.version for k, v in results.items()}
    failed = [r for r in results.values() if not r.ready]
    if failed:
        first = failed[0]
        title = servers[first.service]["title"]
        port = servers[first.service]["port"]
        why = first.last_error or "no answer"
        raise TestbedError(
            f"{title} not ready on port {port} after {first.seconds:.1f}s: {why}", ExitCode.PROVISIONING
        ).with_log(_log_tail(run_folder, data, first.service))
    return {
        "servers": {
            name: {
                "title": servers[name]["title"],
                "port": servers[name]["port"],
                "seconds": round(r.seconds, 3),
                "version": r.version,
            }
            for name, r in results.items()
        }
    }


PORT_RETRIES = 3
_IN_USE = ("address already in use", "address in use")


def _lost_port_race(data: Mapping[str, Any], run_folder: Path, service: str) -> bool:
    if data.get("ports") != "auto" or data.get("backend") != "native":
        return False
    return any(marker in line.lower() for line in _log_tail(run_folder, data, service, 30) for marker in _IN_USE)


def _restart_on_new_ports(state: RunState, services: list[str]) -> None:
    with state.update() as data:
        for name in services:
            for key in kind_of(name, data["servers"][name]).ports(data["servers"][name]):
                data["servers"][name][key] = free_port()
        servers = {name: data["servers"][name] for name in services}
        log_dir = Path(data["run_folder"]) / "logs"
    native.start(state, servers, log_dir)


def migrate(run_id: str) -> dict[str, Any]:
    from testbed import migrations  # noqa: PLC0415 - psycopg is only needed once servers are up

    data = RunState.find(run_id).read()
    folder = data["config"]["migrations"]
    if not folder:
        return {"applied": [], "skipped": [], "changed": False}
    target = migrations_server(data["servers"])
    if target is None:  # config validation requires one; a state file edited by hand may not have it
        raise TestbedError("migrations: the run has no server that runs them", ExitCode.MIGRATIONS)
    conninfo = kind_of(target, data["servers"][target]).conninfo(data["facts"][target])
    try:
        schema = data["config"].get("migrations_schema") or migrations.DEFAULT_SCHEMA
        result = migrations.apply(conninfo, Path(folder), schema=schema)
    except migrations.MigrationError as exc:
        raise TestbedError(f"migrations: {exc}", ExitCode.MIGRATIONS) from exc
    return {"applied": list(result.applied), "skipped": list(result.skipped), "changed": bool(result.applied)}


def prepare_tests(run_id: str) -> dict[str, Any]:
    """Install the service's dependencies (cached) and record the interpreter to test with."""
    state = RunState.find(run_id)
    data = state.read()
    config = ServiceConfig.from_dict(data["config"])
    from testbed import deps  # noqa: PLC0415

    python, cached = deps.ensure(config, state)
    with state.update() as current:
        current["python"] = str(python)
    return {"python": str(python), "cached": cached, "changed": not cached}


def _deps_python(config: ServiceConfig) -> str:
    from testbed import deps  # noqa: PLC0415

    return str(deps.ensure(config)[0])


def _coverage_percent(path: Path) -> float | None:
    try:
        root = ET.parse(path).getroot()  # noqa: S314 - written by this run's own coverage.py
    except (OSError, ET.ParseError):
        return None
    return round(float(root.get("line-rate", "0")) * 100, 1)


def run_tests(run_id: str, extra_args: list[str] | None = None) -> dict[str, Any]:
    """Run the service's pytest with the provisioned environment; secrets come from the 0600 file, never
    from a command line or Ansible's environment."""
    from testbed import junit, shard  # noqa: PLC0415

    state = RunState.find(run_id)
    data = state.read()
    config = ServiceConfig.from_dict(data["config"])
    python = data.get("python") or _deps_python(config)
    run_folder = Path(data["run_folder"])
    facts = data["facts"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "AWS_", "TESTBED_"))}
    env |= service_environment(config, facts)
    values = secrets.read_secrets(run_id)
    env |= values
    redactor = redact.Redactor(values.values())
    env |= {"COVERAGE_FILE": str(state.runtime_dir / "coverage.data"), "PYTHONDONTWRITEBYTECODE": "1"}
    junit_path = run_folder / "junit.xml"
    junit_path.unlink(missing_ok=True)  # a report from an earlier `testbed test` must not stand for this one
    argv = [
        str(python),
        "-m",
        "pytest",
        *config.tests.paths,
        *pytest_arguments(config, facts),
        *(extra_args or []),
        f"--junitxml={junit_path}",
        "-o",
        "junit_family=xunit1",
        "--tb=short",
        f"--timeout={config.tests.timeout}",
        "-p",
        "no:cacheprovider",
    ]
    argv += shard.pytest_args(data, run_folder, config.directory)
    if config.tests.coverage:
        argv += [f"--cov={target}" for target in config.tests.coverage]
        argv += [
            f"--cov-report=xml:{run_folder / 'coverage.xml'}",
            f"--cov-report=html:{run_folder / 'htmlcov'}",
            "--cov-report=term",
        ]
    started = time.monotonic()
    # pytest's output reaches pytest.log only through the redactor: no secret value is ever on disk.
    with redact.redacting_log(run_folder / "pytest.log", redactor) as log:
        # Under a supervisor: whatever the tests start (setsid, nohup, double fork) ends with them.
        rc, _, _ = supervisor.run(
            argv,
            state=state,
            run_id=run_id,
            what="tests",
            deadline=config.tests.deadline,
            env=env,
            cwd=config.directory,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    seconds = time.monotonic() - started
    rc = shard.exit_code(data, rc, run_folder / "pytest.log")
    gone = {name: _gone(data)(name) for name in data["servers"]}
    shard.keep_coverage_data(state.runtime_dir / "coverage.data", run_folder)
    (state.runtime_dir / "coverage.data").unlink(missing_ok=True)
    # What pytest and coverage wrote themselves is scrubbed before anything reads or uploads it.
    # Coverage files hold source, not what ran: whole values suffice there, and are fast on a large tree.
    redactor.file(junit_path)
    redactor.file(run_folder / "coverage.xml", fragments=False)
    redactor.tree(run_folder / "htmlcov", fragments=False)
    summary = junit.parse(junit_path)  # None when pytest stopped before writing it (usage errors)
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0} | (summary.counts() if summary else {})
    counts["duration"] = round((summary.duration if summary else 0) or seconds, 2)
    coverage = _coverage_percent(run_folder / "coverage.xml") if config.tests.coverage else None
    return {
        "rc": rc,
        "untrusted": untrusted_result(rc, summary),
        "tests": counts,
        "coverage": coverage,
        "seconds": round(seconds, 2),
        "log": str(run_folder / "pytest.log"),
        "deadline": config.tests.deadline if rc == ExitCode.DEADLINE else None,
        "servers_gone": [
            f"{data['servers'][name]['title']} exited" + ("" if why == "the server exited" else f" ({why})")
            for name, why in gone.items()
            if why
        ],
    }


def tests_line(tests: Mapping[str, Any]) -> str:
    """`5 passed in 4.2s`, `1 passed, 1 failed in 3.2s`: pytest's own wording."""
    parts = [
        f"{tests[key]} {word}"
        for key, word in (("passed", "passed"), ("failed", "failed"), ("errors", "errors"), ("skipped", "skipped"))
        if tests.get(key)
    ]
    return f"{', '.join(parts) or 'no tests ran'} in {tests.get('duration', 0):.1f}s"


def untrusted_result(rc: int, summary: JUnitSummary | None) -> str | None:
    """Why pytest's exit 0 cannot be believed, or None. A pass needs its JUnit report, with tests that ran
    and counts that agree with the exit code: a test or conftest calling os._exit(0) writes none."""
    if rc != 0:
        return None
    if summary is None:
        return "pytest exited 0 but wrote no JUnit report (a test or conftest called os._exit?)"
    if summary.problem:
        return f"pytest exited 0 but its JUnit report is unreadable ({summary.problem})"
    if summary.total == 0:
        return "pytest exited 0 but its JUnit report lists no tests"
    if summary.failed or summary.errors:
        return f"pytest exited 0 but its JUnit report lists {summary.failed} failed and {summary.errors} errors"
    return None


def pytest_phase(run_id: str, extra_args: list[str] | None = None) -> dict[str, Any]:
    """run_tests, failing the phase with pytest's own exit code when the tests did not pass."""
    result = run_tests(run_id, extra_args)
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


def teardown_phase(run_id: str, grace: float = 5.0) -> dict[str, Any]:
    from testbed.teardown import teardown_run_id  # noqa: PLC0415

    result = teardown_run_id(run_id, grace=grace)
    if not result.ok:
        error = TestbedError(f"teardown: left behind {', '.join(result.left)}; `testbed gc` retries", ExitCode.TEARDOWN)
        error.details |= result.as_dict()
        raise error
    return result.as_dict() | {"changed": bool(result.removed)}
