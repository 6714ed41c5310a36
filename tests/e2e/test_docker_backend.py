"""The Docker backend (community.docker) end to end, on locally built images (no registry): the whole
pipeline, its failure paths, idempotence of the servers role, how `auto` picks, and an engine that stops
answering mid-run. Every run uses --ports auto and its own run folder, and must leave no container,
network or volume behind. No engine is a failure (the `local_images` fixture), never a skip."""

from __future__ import annotations

import contextlib
import http.server
import json
import re
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from images.events import EngineEvents, existing_volumes
from support import (
    PROJECT,
    clean_env,
    cli,
    image_args,
    leftovers,
    playbook,
    refusing_port,
    run_folder_of,
    run_testbed,
    run_testbed_argv,
    unique_run_id,
)
from testbed.backends import choice, docker_api
from testbed.core.errors import ExitCode, TestbedError

pytestmark = pytest.mark.docker

RECAP = re.compile(r"^\S+\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)


# --------------------------------------------------------------------------- helpers


def _failures(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("❌")]


def _assert_nothing_left(run_id: str, events: EngineEvents, *, had_containers: bool = True) -> None:
    """No process, folder, container or network of the run (conftest.leftovers), and none of the volumes
    its containers mounted (anonymous volumes carry no label: the engine's events name them)."""
    assert leftovers(run_id) == []
    events.stop()
    ours = events.containers(f"testbed-{run_id}-")
    if had_containers:
        assert ours, "the engine's event stream shows no container of the run"
    assert existing_volumes(events.volumes_mounted_by(ours)) == []


def _docker(*args: str) -> str:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, f"docker {' '.join(args)}: {proc.stderr}"
    return proc.stdout


@pytest.fixture
def events() -> Iterator[EngineEvents]:
    with EngineEvents() as stream:
        yield stream


class _Registry(http.server.BaseHTTPRequestHandler):
    """A registry that answers /v2/ and knows no image: every manifest is unknown."""

    seen: list[str]

    def _answer(self, code: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_GET(self) -> None:
        self.seen.append(self.path)
        if self.path.rstrip("/") == "/v2":
            self._answer(200, {})
        else:
            self._answer(404, {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]})

    do_HEAD = do_GET

    def log_message(self, *args: object) -> None:  # the engine tries TLS first: quiet, not a failure
        pass


@pytest.fixture
def refused() -> Iterator[int]:
    """A registry port that refuses connections for the whole test."""
    with refusing_port() as port:
        yield port


@pytest.fixture
def empty_registry() -> Iterator[tuple[int, list[str]]]:
    """A registry on loopback (the engine treats 127.0.0.0/8 as insecure: plain HTTP) without images."""
    seen: list[str] = []
    handler = type("Registry", (_Registry,), {"seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()


# --------------------------------------------------------------------------- 1. end to end


@pytest.mark.slow
def test_docker_run_passes_end_to_end_and_leaves_nothing(
    service: Path, runs: Path, local_images: dict[str, str], events: EngineEvents
) -> None:
    run_id = unique_run_id("dk-e2e")
    result = run_testbed(service, runs, backend="docker", run_id=run_id, images=local_images, timeout=300)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert re.search(r"^✅ Backend: docker \(asked for \(engine [^)]+\)\)$", out, re.MULTILINE), out
    ports = [int(p) for p in re.findall(r"^✅ (?:PostgreSQL|Dragonfly|NATS): Running on port (\d+)$", out, re.M)]
    assert len(ports) == 3 and len(set(ports)) == 3 and all(p >= 1024 for p in ports), out
    for line in ("✅ Migrations: Applied successfully (2 new)", "✅ Coverage: 100%",
                 "✅ Teardown: nothing left behind"):
        assert line in out
    passed = re.search(r"^✅ Tests: (\d+) passed in", out, re.MULTILINE)
    assert passed, out
    assert _failures(out) == []

    folder = run_folder_of(out)
    assert folder == runs / run_id
    for name in ("junit.xml", "coverage.xml", "htmlcov/index.html", "report.json", "state.json",
                 "diagnostics/readiness.json", "diagnostics/config.json"):
        assert (folder / name).is_file(), name
    junit = (folder / "junit.xml").read_text()
    assert f'tests="{passed.group(1)}"' in junit and 'failures="0"' in junit
    report = json.loads((folder / "report.json").read_text())
    assert report["exit_code"] == 0 and report["backend"] == "docker"
    # Each container's log, fetched from the engine before the container was removed.
    for server, marker in (("postgres", "database system is ready to accept connections"),
                           ("dragonfly", "redis-server stands in for Dragonfly"),
                           ("nats", "Server is ready")):
        assert marker in (folder / "logs" / f"{server}.log").read_text(), server

    assert sorted(events.created(f"testbed-{run_id}-")) == [
        f"testbed-{run_id}-{s}" for s in ("dragonfly", "nats", "postgres")]
    _assert_nothing_left(run_id, events)


# --------------------------------------------------------------------------- 2. failure paths


@pytest.mark.slow
def test_auto_picks_docker_and_a_failing_test_exits_1(
    service: Path, runs: Path, local_images: dict[str, str], events: EngineEvents
) -> None:
    """Also requirement 4 end to end (one pipeline run for both): `auto` with the local images picks
    Docker, and the run goes through every phase on it."""
    tests = service / "tests" / "test_servers.py"
    tests.write_text(tests.read_text() + "\n\ndef test_fails():\n    assert 1 == 2\n")
    run_id = unique_run_id("dk-fail")
    result = run_testbed(service, runs, backend="auto", run_id=run_id, images=local_images, timeout=300)
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert re.search(r"^✅ Backend: docker \(engine .+ answers and every image is at hand\)$", out, re.MULTILINE), out
    assert json.loads((run_folder_of(out) / "report.json").read_text())["backend"] == "docker"
    assert re.search(r"^❌ Tests: \d+ passed, 1 failed in", out, re.MULTILINE), out
    assert "✅ Teardown: nothing left behind" in out
    folder = run_folder_of(out)
    assert 'failures="1"' in (folder / "junit.xml").read_text()
    assert (folder / "logs" / "postgres.log").stat().st_size > 0
    _assert_nothing_left(run_id, events)


@pytest.mark.slow
def test_broken_migration_exits_13_and_tears_down(
    service: Path, runs: Path, local_images: dict[str, str], events: EngineEvents
) -> None:
    broken = "-- a comment\n\nALTER TABLE items\n  ADD COLUMN x SELEC;\n"
    (service / "migrations" / "0003_broken.sql").write_text(broken)
    run_id = unique_run_id("dk-migr")
    result = run_testbed(service, runs, backend="docker", run_id=run_id, images=local_images, timeout=300)
    out = result.stdout
    assert result.returncode == ExitCode.MIGRATIONS, out + result.stderr
    assert "0003_broken.sql line 4" in out
    assert "✅ Teardown: nothing left behind" in out
    _assert_nothing_left(run_id, events)


@pytest.fixture
def never_ready_image(local_images: dict[str, str]) -> Iterator[str]:
    """A local image whose entrypoint prints a line and sleeps: it never listens. Derived from a local
    image without any registry (create + commit --change), and removed afterwards."""
    tag = f"testbed-local/never-ready:{uuid.uuid4().hex[:8]}"
    container = _docker("create", local_images["dragonfly"]).strip()
    try:
        _docker("commit", "--change", 'ENTRYPOINT ["sh", "-c", "echo never ready; exec sleep 600"]',
                "--change", "CMD []", container, tag)
    finally:
        _docker("rm", "--force", "--volumes", container)
    try:
        yield tag
    finally:
        subprocess.run(["docker", "rmi", "--force", tag], capture_output=True, check=False)


@pytest.mark.slow
def test_container_that_never_becomes_ready_exits_12_naming_it(
    service: Path, runs: Path, local_images: dict[str, str], never_ready_image: str, events: EngineEvents
) -> None:
    run_id = unique_run_id("dk-ready")
    started = time.monotonic()
    result = run_testbed(service, runs, "--readiness-timeout", "3", backend="docker", run_id=run_id,
                         images=dict(local_images, postgres=never_ready_image), timeout=300)
    out = result.stdout
    assert result.returncode == ExitCode.PROVISIONING, out + result.stderr
    assert time.monotonic() - started < 90
    found = re.search(r"^❌ Readiness: PostgreSQL not ready on port (\d+) after [\d.]+s: (.+)$", out, re.MULTILINE)
    assert found, out
    assert int(found.group(1)) >= 1024, "the port Docker published, not the one asked for (0)"
    assert found.group(2).strip() and found.group(2) != "no answer", "the last error is named"
    assert "   │ never ready" in out.splitlines(), "the tail of the container's log follows the message"
    assert "never ready" in (run_folder_of(out) / "logs" / "postgres.log").read_text()
    _assert_nothing_left(run_id, events)


@pytest.mark.parametrize("registry", ["down", "without-the-tag"])
def test_missing_image_fails_fast_in_one_line_creating_nothing(
    service: Path, runs: Path, local_images: dict[str, str], events: EngineEvents,
    empty_registry: tuple[int, list[str]], registry: str, refused: int,
) -> None:
    """A tag that exists nowhere: its registry does not answer (preflight says so), or answers without it
    (the pull, before any container, says so). Either way one line, exit 12, no container."""
    port, seen = empty_registry
    if registry == "down":
        port = refused
    image = f"127.0.0.1:{port}/testbed-missing/postgres:nowhere-{uuid.uuid4().hex[:6]}"
    run_id = unique_run_id("dk-miss")
    started = time.monotonic()
    result = run_testbed(service, runs, backend="docker", run_id=run_id, images=dict(local_images, postgres=image),
                         timeout=300)
    elapsed = time.monotonic() - started
    out = result.stdout
    assert result.returncode == ExitCode.PROVISIONING, out + result.stderr
    assert elapsed < 30, f"took {elapsed:.0f}s"
    failures = _failures(out)
    assert len(failures) == 1, out
    line = failures[0]
    assert f"image {image} cannot be pulled" in line
    assert "--backend native" in line and "--image postgres=" in line
    if registry == "down":
        assert line.startswith("❌ Preflight: ") and f"registry 127.0.0.1:{port} does not answer" in line
    else:
        assert line.startswith("❌ Servers: ") and "manifest unknown" in line
        assert any("/manifests/" in path for path in seen), "the engine asked the registry"
    assert events.created(f"testbed-{run_id}-") == [], "no container was created"
    _assert_nothing_left(run_id, events, had_containers=False)


# --------------------------------------------------------------------------- 3. idempotence


def _containers_now(run_id: str) -> dict[str, tuple[str, str, str]]:
    return {c["Names"][0]: (c["Id"], c["Created"], json.dumps(sorted(c["Ports"], key=json.dumps), sort_keys=True))
            for c in docker_api.containers_of(run_id)}


def _recap(output: str) -> dict[str, int]:
    found = RECAP.findall(output)
    assert found, output[-3000:]
    ok, changed, unreachable, failed = (int(n) for n in found[-1])
    return {"ok": ok, "changed": changed, "unreachable": unreachable, "failed": failed}


@pytest.mark.slow
def test_servers_phase_is_idempotent_and_down_removes_everything(
    service: Path, runs: Path, local_images: dict[str, str], events: EngineEvents
) -> None:
    run_id = unique_run_id("dk-idem")
    extravars = {"testbed_service": str(service), "testbed_backend": "docker", "testbed_ports": "auto",
                 "testbed_run_root": str(runs), "testbed_run_id": run_id, "testbed_images": local_images,
                 # Under a lease: a concurrent `testbed gc` leaves it alone once up.yml's process is gone.
                 "testbed_lease_seconds": 900}
    try:
        up = playbook("playbooks/up.yml", extravars)
        assert up.returncode == 0, up.stdout[-3000:]
        assert _recap(up.stdout)["changed"] > 0
        before = _containers_now(run_id)
        assert len(before) == 3
        network = docker_api.networks_of(run_id)
        assert [n["Name"] for n in network] == [f"testbed-{run_id}"]

        # The servers role again, in check mode: the pull reports nothing to change (testbed_docker skips).
        check = playbook("tests/fixtures/playbooks/servers_again.yml", extravars)
        assert check.returncode == 0, check.stdout[-4000:]
        assert _recap(check.stdout) == {"ok": _recap(check.stdout)["ok"], "changed": 0, "unreachable": 0,
                                        "failed": 0}

        # And the whole of up.yml again, for real: not one task changed anything.
        again = playbook("playbooks/up.yml", extravars)
        assert again.returncode == 0, again.stdout[-3000:]
        recap = _recap(again.stdout)
        assert recap["changed"] == 0 and recap["failed"] == 0, again.stdout[-4000:]
        assert _containers_now(run_id) == before, "no container was recreated"
        assert [n["Id"] for n in docker_api.networks_of(run_id)] == [n["Id"] for n in network]
    finally:
        down = playbook("playbooks/down.yml", {"testbed_run_id": run_id})
        if down.returncode != 0:  # never leave the leased run behind, whatever failed
            cli("down", "--run-id", run_id)
    assert down.returncode == 0, down.stdout[-3000:]
    assert _recap(down.stdout)["failed"] == 0
    # Created once: the second run created no container either.
    assert len(events.created(f"testbed-{run_id}-")) == 3
    _assert_nothing_left(run_id, events)


# --------------------------------------------------------------------------- 4. how auto picks


def test_auto_picks_docker_when_the_engine_answers_and_every_image_is_here(local_images: dict[str, str]) -> None:
    backend, reason = choice.choose_backend("auto", local_images, pull=False)
    assert backend == "docker"
    assert reason.endswith("answers and every image is at hand"), reason


def test_auto_picks_native_when_an_image_is_missing_and_its_registry_does_not_answer(
    local_images: dict[str, str], refused: int,
) -> None:
    port = refused
    image = f"127.0.0.1:{port}/testbed-missing/nats:nowhere"
    started = time.monotonic()
    backend, reason = choice.choose_backend("auto", dict(local_images, nats=image), pull=False)
    assert time.monotonic() - started < 10
    assert backend == "native"
    assert reason.startswith(f"image {image} is not here and registry 127.0.0.1:{port} does not answer"), reason
    # Asked for docker, the same situation is an error that names the image and the ways out.
    with pytest.raises(TestbedError) as error:
        choice.choose_backend("docker", dict(local_images, nats=image), pull=False)
    assert error.value.exit_code == ExitCode.PROVISIONING
    assert f"image {image} cannot be pulled" in str(error.value)
    assert "--backend native" in str(error.value) and "--image nats=" in str(error.value)


def test_auto_picks_docker_when_a_missing_image_can_be_pulled(
    local_images: dict[str, str], empty_registry: tuple[int, list[str]]
) -> None:
    """A registry that answers is enough (never a pull in preflight); the reason says what will be pulled."""
    image = f"127.0.0.1:{empty_registry[0]}/testbed/nats:2.10"
    backend, reason = choice.choose_backend("auto", dict(local_images, nats=image), pull=False)
    assert backend == "docker"
    assert reason.endswith(f"; {image} will be pulled"), reason
    assert empty_registry[1] == [], "a TCP connect only: nothing was asked of the registry"


def test_auto_picks_native_without_an_engine(local_images: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    assert choice.choose_backend("auto", local_images, pull=False) == ("native", "no Docker engine answers")
    assert choice.choose_backend("native", local_images, pull=False) == ("native", "asked for")
    with pytest.raises(TestbedError) as error:
        choice.choose_backend("docker", local_images, pull=False)
    assert error.value.exit_code == ExitCode.PROVISIONING
    assert "/nonexistent.sock" in str(error.value) and "--backend native" in str(error.value)


@pytest.mark.parametrize(("image", "address"), [
    ("postgres:15", ("registry-1.docker.io", 443)),
    ("library/postgres:15", ("registry-1.docker.io", 443)),
    ("nats@sha256:" + "0" * 64, ("registry-1.docker.io", 443)),
    ("docker.dragonflydb.io/dragonflydb/dragonfly:v1.25.2", ("docker.dragonflydb.io", 443)),
    ("localhost/team/postgres:15", ("localhost", 443)),
    ("localhost:5000/team/postgres:15", ("localhost", 5000)),
    ("127.0.0.1:5000/postgres", ("127.0.0.1", 5000)),
    ("[::1]:5000/postgres:15", ("::1", 5000)),
])
def test_registry_check_asks_the_image_registry(
    image: str, address: tuple[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Which host and port the bounded check connects to (stubbed: nothing leaves this process)."""
    asked: list[tuple[str, int]] = []

    def refuse(host: str, port: int, *args: object, **kwargs: object) -> None:
        asked.append((host, port))
        raise OSError("stubbed: no network in this test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    problem = choice._registry_answers(image)
    assert asked == [address]
    assert problem is not None and "does not answer (stubbed" in problem


# --------------------------------------------------------------------------- 5. the engine goes away


class EngineProxy:
    """A unix socket forwarding to the real engine's, until stop(): then connections are refused, as
    from an engine that stopped. The containers keep running in the real engine."""

    def __init__(self, path: Path, target: str) -> None:
        self.path = path
        self.target = target
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(64)
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def stop(self) -> None:
        """Refuse new connections (the socket file stays: connect() gets ECONNREFUSED), cut open ones."""
        self._server.close()
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()


@pytest.mark.usefixtures("machine_wide")  # containers left ownerless on purpose: another run would collect them
@pytest.mark.slow
def test_engine_that_stops_answering_mid_run_is_named_and_gc_cleans_up(
    service: Path, runs: Path, local_images: dict[str, str], events: EngineEvents
) -> None:
    folder = Path(tempfile.mkdtemp(prefix="tb-engine-"))  # short: a unix socket path has ~107 bytes
    sock = folder / "docker.sock"
    proxy = EngineProxy(sock, docker_api.socket_path())
    run_id = unique_run_id("dk-gone")
    argv = run_testbed_argv(service, runs, "-v", backend="docker", run_id=run_id, images=local_images)
    lines: list[str] = []
    try:
        with subprocess.Popen(argv, cwd=PROJECT, env=clean_env(DOCKER_HOST=f"unix://{sock}"), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as proc:
            watchdog = threading.Timer(240, proc.kill)
            watchdog.start()
            try:
                assert proc.stdout is not None
                for line in proc.stdout:
                    lines.append(line.rstrip("\n"))
                    # -v prints each task as it ends: the containers are up, readiness comes next.
                    if line.startswith("   · Start one container per server:"):
                        proxy.stop()
                rc = proc.wait()
            finally:
                watchdog.cancel()
        out = "\n".join(lines)
        assert rc == ExitCode.PROVISIONING, out
        unreachable = f"no Docker engine answers on {sock} (Connection refused)"
        readiness = [line for line in _failures(out) if line.startswith("❌ Readiness: ")]
        assert len(readiness) == 1, out
        assert re.match(rf"❌ Readiness: (PostgreSQL|Dragonfly|NATS): cannot read the ports of container "
                        rf"testbed-{run_id}-\w+: {re.escape(unreachable)}; .*`testbed gc`", readiness[0]), out
        teardown = [line for line in _failures(out) if line.startswith("❌ Teardown: ")]
        assert teardown and unreachable in teardown[0], out
        assert "internal error" not in out and "Traceback" not in out
        # What the run could not remove is still there (the real engine never stopped)...
        assert any(item.startswith("container ") for item in leftovers(run_id))
    finally:
        proxy.stop()
        sock.unlink(missing_ok=True)
        folder.rmdir()

    # ...until, with the engine back, gc removes it: the wrapper that owned the run is gone.
    gc = cli("gc", "--run-id-prefix", run_id, "--ttl", "0")
    assert gc.returncode == 0, gc.stdout + gc.stderr
    removed = re.search(r"^gc: \d+ run\(s\) collected, (\d+) resource\(s\) removed$", gc.stdout.strip())
    assert removed and int(removed.group(1)) >= 4, gc.stdout  # three containers and the network
    _assert_nothing_left(run_id, events)


# --------------------------------------------------------------------------- isolation


@pytest.mark.slow
def test_two_concurrent_docker_runs_with_auto_ports_both_pass(
    service: Path, tmp_path: Path, local_images: dict[str, str], events: EngineEvents
) -> None:
    results: dict[str, subprocess.CompletedProcess[str]] = {}
    ids = {name: unique_run_id(f"dk-par-{name}") for name in ("a", "b")}

    def run(name: str) -> None:
        results[name] = run_testbed(service, tmp_path / name, backend="docker", run_id=ids[name],
                                    images=local_images, timeout=300)

    threads = [threading.Thread(target=run, args=(name,)) for name in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ports = []
    for name, result in results.items():
        assert result.returncode == 0, result.stdout + result.stderr
        ports.append(set(re.findall(r"Running on port (\d+)", result.stdout)))
        _assert_nothing_left(ids[name], events)
    assert not ports[0] & ports[1]


@pytest.mark.slow
def test_dev_loop_on_the_docker_backend(service: Path, runs: Path, local_images: dict[str, str],
                                        events: EngineEvents) -> None:
    up = cli("up", "--service", str(service), "--backend", "docker", "--ports", "auto", "--run-folder", str(runs),
             *image_args(local_images))
    assert up.returncode == 0, up.stdout + up.stderr
    run_id = next(runs.iterdir()).name
    try:
        again = cli("up", "--service", str(service))
        assert again.returncode == 0 and "(already up)" in again.stdout, again.stdout
        status = cli("status", "--service", str(service))
        assert run_id in status.stdout and "docker" in status.stdout and "✅ NATS: port" in status.stdout
        env = cli("env", "--service", str(service))
        assert re.search(r"^export POSTGRES_PORT=\d+$", env.stdout, re.M), env.stdout
        tested = cli("test", "--service", str(service), "--", "-k", "postgres or nats")
        assert tested.returncode == 0 and "✅ Tests: 2 passed" in tested.stdout, tested.stdout
        logs = cli("logs", "--service", str(service), "nats")
        assert logs.returncode == 0 and "Server is ready" in logs.stdout
    finally:
        down = cli("down", "--service", str(service))
    assert down.returncode == 0, down.stdout + down.stderr
    _assert_nothing_left(run_id, events)
