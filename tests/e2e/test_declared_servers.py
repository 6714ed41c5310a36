"""Servers a service declares itself in testbed.yml (servers/declared.py): moto's S3 server (from the
package index, HTTP readiness) and memcached (Debian's package, TCP readiness) beside the catalogue's
postgres, end to end through `testbed run` and the dev loop, and bad declarations refused in preflight."""

from __future__ import annotations

import contextlib
import http.server
import os
import re
import secrets
import shutil
import signal
import sys
import threading
from pathlib import Path

import pytest

from support import FIXTURES, cli, leftovers, run_folder_of
from testbed.core.errors import ExitCode
from testbed.core.paths import runtime_root
from testbed.core.ports import port_free
from testbed.teardown import reaper

pytestmark = pytest.mark.slow


@pytest.fixture
def declared(tmp_path: Path) -> Path:
    """A private copy of the fixture service that declares s3 (moto) and cache (memcached)."""
    target = tmp_path / "declared"
    shutil.copytree(FIXTURES / "services" / "declared", target)
    return target


def _ports(out: str) -> dict[str, int]:
    return {title: int(port) for title, port in re.findall(r"^✅ (.+): Running on port (\d+)$", out, re.M)}


def test_declared_s3_and_memcached_serve_the_tests_natively(declared: Path, runs: Path) -> None:
    result = cli("run", "--service", str(declared), "--backend", "native", "--ports", "auto",
                 "--run-folder", str(runs), timeout=300)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    ports = _ports(result.stdout)
    assert set(ports) == {"PostgreSQL", "S3 (moto)", "memcached"}, out
    # Auto ports: neither declared server is on the port its declaration names.
    assert ports["S3 (moto)"] != 15000 and ports["memcached"] != 15011
    assert "✅ Tests: 3 passed" in result.stdout, out
    run_folder = run_folder_of(result.stdout)
    logs = run_folder / "logs"
    assert (logs / "s3.log").is_file() and (logs / "cache.log").is_file()
    assert leftovers(run_folder.name) == []
    # Their command lines do not name the run: the ports tell that the processes are gone.
    assert all(port_free(port) for port in ports.values()), ports


def test_declared_servers_in_the_dev_loop_env_and_logs(declared: Path, runs: Path) -> None:
    up = cli("up", "--service", str(declared), "--backend", "native", "--ports", "auto",
             "--run-folder", str(runs), timeout=300)
    assert up.returncode == 0, up.stdout + up.stderr
    run_id = next(runs.iterdir()).name
    try:
        env = cli("env", "--service", str(declared))
        assert env.returncode == 0, env.stderr
        exports = dict(re.findall(r"^export (\w+)=(\S+)$", env.stdout, re.M))
        port = _ports(up.stdout)["S3 (moto)"]
        assert exports["AWS_ENDPOINT_URL"] == f"http://127.0.0.1:{port}"
        assert exports["S3_URL"] == f"http://127.0.0.1:{port}"  # `{{ s3.url }}` in the service's own env
        assert exports["MEMCACHED_ADDRESS"] == f"127.0.0.1:{_ports(up.stdout)['memcached']}"

        status = cli("status", "--service", str(declared))
        assert status.returncode == 0
        assert "✅ S3 (moto): port" in status.stdout and "✅ memcached: port" in status.stdout, status.stdout

        logs = cli("logs", "--service", str(declared), "s3")
        assert logs.returncode == 0 and "==> S3 (moto) <==" in logs.stdout
        assert "/moto-api/" in logs.stdout  # moto's request log: the readiness probe's GET
    finally:
        down = cli("down", "--service", str(declared))
    assert down.returncode == 0, down.stdout + down.stderr
    assert leftovers(run_id) == []
    assert all(port_free(p) for p in _ports(up.stdout).values())


def test_teardown_finds_declared_servers_when_the_state_files_are_gone(declared: Path, runs: Path) -> None:
    """moto's and memcached's command lines name no folder of the run: the marker in their environment
    is how teardown finds them without the state file."""
    from testbed.teardown.teardown import teardown_run_id  # noqa: PLC0415

    up = cli("up", "--service", str(declared), "--backend", "native", "--ports", "auto",
             "--run-folder", str(runs), timeout=300)
    assert up.returncode == 0, up.stdout + up.stderr
    run_id = next(runs.iterdir()).name
    ports = _ports(up.stdout)
    for copy in (runtime_root() / run_id / "state.json", runs / run_id / "state.json"):
        copy.unlink(missing_ok=True)
    assert not any(port_free(port) for port in ports.values())
    result = teardown_run_id(run_id, grace=5.0)
    assert result.left == []
    assert all(port_free(port) for port in ports.values()), ports
    assert leftovers(run_id) == []


def test_a_declared_server_that_never_answers_fails_readiness_with_its_log(tmp_path: Path, runs: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "testbed.yml").write_text(
        "name: stuck\nservers:\n  - stuck:\n      title: Stuck server\n      port: 15099\n"
        "      native: {command: [sh, -c, 'echo never listening on {{ port }}; exec sleep 600']}\n"
        "      ready: {http: /health}\ninstall: none\n"
    )
    result = cli("run", "--service", str(tmp_path), "--backend", "native", "--ports", "auto",
                 "--run-folder", str(runs), "--readiness-timeout", "2")
    assert result.returncode == ExitCode.PROVISIONING, result.stdout + result.stderr
    failed = re.search(r"^❌ Readiness: Stuck server not ready on port (\d+) after .*$", result.stdout, re.M)
    assert failed, result.stdout
    assert f"never listening on {failed[1]}" in result.stdout  # the tail of its log, with the rendered port
    run_id = run_folder_of(result.stdout).name
    assert leftovers(run_id) == [] and reaper.marked(run_id) == []  # the marker finds the `sleep 600`


# Memcached's `flush_all` on the worker's instance: the declared `reset:` command, before each test.
FLUSH = """import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as conn:
    conn.sendall(b"flush_all\\r\\n")
    sys.exit(0 if conn.recv(64) == b"OK\\r\\n" else "memcached did not flush")
"""
STARTS_CLEAN = """import os, socket

import pytest


def _ask(command):
    host, port = os.environ["MEMCACHED_ADDRESS"].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(command)
        received = b""
        while not received.endswith((b"END\\r\\n", b"STORED\\r\\n")):
            chunk = conn.recv(4096)
            assert chunk, received
            received += chunk
    return received


@pytest.mark.parametrize("n", range(6))
def test_starts_without_the_key_an_earlier_test_left(n):
    assert _ask(b"get left\\r\\n") == b"END\\r\\n", "a key from an earlier test"
    assert _ask(b"set left 0 0 1\\r\\nx\\r\\n") == b"STORED\\r\\n"
"""


@pytest.mark.parametrize(
    ("script", "isolation", "expected"),
    [
        (FLUSH, "worker", ExitCode.TESTS_FAILED),  # the command is not run: a worker's second test finds the key
        (FLUSH, "test", ExitCode.PASSED),
        ("import sys; sys.exit('cannot reach the cache')", "test", ExitCode.PROVISIONING),
    ],
    ids=["worker", "test", "failing-reset"],
)
def test_a_declared_server_s_reset_command_runs_before_each_test(
    declared: Path, runs: Path, script: str, isolation: str, expected: int
) -> None:
    (declared / "flush.py").write_text(script)
    (declared / "tests" / "test_declared.py").unlink()
    (declared / "tests" / "test_starts_clean.py").write_text(STARTS_CLEAN)
    config = declared / "testbed.yml"
    reset = f'      reset: [{sys.executable}, {declared / "flush.py"}, "{{{{ host }}}}", "{{{{ port }}}}"]\n'
    config.write_text(config.read_text().replace("      ready: {tcp: true}\n", "      ready: {tcp: true}\n" + reset))
    result = cli("run", "--service", str(declared), "--backend", "native", "--ports", "auto", "--workers", "2",
                 "--isolation", isolation, "--run-folder", str(runs), timeout=300)
    out = result.stdout + result.stderr
    assert result.returncode == expected, out
    if expected == ExitCode.PASSED:
        assert "✅ Tests: 6 passed in" in result.stdout and "on 2 workers" in result.stdout
    elif expected == ExitCode.PROVISIONING:
        failures = [line for line in result.stdout.splitlines() if line.startswith("❌")]
        assert failures == ["❌ Tests: server cache: reset command exited 1: cannot reach the cache"], out
    assert leftovers(run_folder_of(result.stdout).name) == []


S3 = "  - s3:\n      port: 15000\n      native: {command: [moto_server, -p, '{{ port }}']}\n"


@pytest.mark.parametrize(
    ("declaration", "backend", "expected"),
    [
        (S3 + "      ready: {grpc: true}\n", "native", "'servers.s3.ready' must be one of {http: /path}"),
        (S3 + "      ready: {http: moto-api}\n", "native", "'servers.s3.ready.http' must be a path"),
        ("  - s3:\n      port: 15000\n      image: x:1\n", "native", "'servers.s3.native.command' is missing"),
        (S3, "docker", "'servers.s3.image' is missing"),
        (S3 + "      image: x:1\n      command: [-p, '{{ prot }}']\n", "docker",
         "'servers.s3.command[1]': cannot render '{{ prot }}': 'prot' is undefined"),
        ("  - s3:\n      port: 15433\n      native: {command: [x]}\n", "native",
         "'servers.s3.port' 15433 is also 'settings.postgres.port'"),
        ("  - s3:\n      native: {command: [x]}\n", "native", "'servers.s3.port' is required"),
        ("  - s3:\n      port: 15000\n      native: {command: [x]}\n      volume: /x\n", "native",
         "unknown key 'servers.s3.volume'"),
        ("  - postgres:\n      port: 15000\n", "native", "'servers.postgres' is a catalogue server"),
        (S3 + "      env: {'X=1;touch /tmp/pwned;Y': x}\n", "native",
         "'servers.s3.env.X=1;touch /tmp/pwned;Y' is not a valid environment variable name"),
        ("  - nats-gw1:\n      port: 15000\n      native: {command: [x]}\n", "native",
         "'servers.nats-gw1' is reserved: it names pytest worker gw1's instance of 'nats'"),
        (S3 + "  - s3-gw1:\n      port: 15001\n      native: {command: [x]}\n", "native",
         "'servers.s3-gw1' is reserved: it names pytest worker gw1's instance of 's3'"),
        ("  - private:\n      port: 15000\n      native: {command: [x]}\n", "native",
         "'servers.private' is reserved: the run's runtime folder holds its secrets folder under that name"),
        ("  - state.json:\n      port: 15000\n      native: {command: [x]}\n", "native",
         "'servers.state.json' is reserved: the run's runtime folder holds its state file under that name"),
        ("  - My-S3:\n      port: 15000\n      native: {command: [x]}\n", "native",
         "'servers' entry 'My-S3' must be a simple name"),
    ],
)
def test_a_bad_declaration_is_exit_10_in_one_line_before_anything_starts(
    tmp_path: Path, runs: Path, declaration: str, backend: str, expected: str
) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "testbed.yml").write_text(f"name: bad\nservers:\n  - postgres\n{declaration}install: none\n")
    result = cli("run", "--service", str(tmp_path), "--backend", backend, "--run-folder", str(runs))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == ExitCode.CONFIG, result.stdout + result.stderr
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert not runs.exists() or not any(runs.iterdir())


@pytest.fixture(scope="session")
def declared_images() -> dict[str, str]:
    """Local images of moto's server and memcached (tests/images/declared.py): no registry is needed."""
    from images.build import ImageBuildError  # noqa: PLC0415
    from images.declared import ensure_declared_images  # noqa: PLC0415

    try:
        return ensure_declared_images()
    except ImageBuildError as exc:
        pytest.fail(f"cannot build the declared-server images: {exc}", pytrace=False)


@pytest.mark.docker
def test_declared_s3_and_memcached_serve_the_tests_on_docker(
    declared: Path, runs: Path, local_images: dict[str, str], declared_images: dict[str, str]
) -> None:
    images = {"postgres": local_images["postgres"], "s3": declared_images["moto"],
              "cache": declared_images["memcached"]}
    result = cli("run", "--service", str(declared), "--backend", "docker", "--ports", "auto",
                 "--run-folder", str(runs), *(a for k, v in images.items() for a in ("--image", f"{k}={v}")),
                 timeout=300)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "✅ Backend: docker" in result.stdout
    ports = _ports(result.stdout)
    assert set(ports) == {"PostgreSQL", "S3 (moto)", "memcached"}, out
    assert "✅ Tests: 3 passed" in result.stdout, out
    run_folder = run_folder_of(result.stdout)
    assert leftovers(run_folder.name) == []  # containers and the run's network included
    assert all(port_free(port) for port in ports.values()), ports


def _processes_running(argv: list[str]) -> list[int]:
    """The pids of processes whose command line is exactly argv."""
    wanted = "\0".join(argv).encode() + b"\0"
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (proc / "cmdline").read_bytes() == wanted:
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def test_what_a_ready_command_leaves_running_ends_with_it(declared: Path, runs: Path) -> None:
    """`ready: {command: …}` ran unsupervised: a child it left running (`sleep … &`) survived the run, whose
    teardown said "nothing left behind". It runs under the supervisor now, like pytest and the install."""
    seconds = str(900_000 + secrets.randbelow(99_999))  # names this test's sleeps among the machine's processes
    config = declared / "testbed.yml"
    config.write_text(config.read_text().replace(
        "      ready: {tcp: true}\n",
        f"      ready: {{command: [bash, -c, 'sleep {seconds} >/dev/null 2>&1 & exec 3<>/dev/tcp/{{{{ host }}}}/"
        "{{ port }}']}\n",
    ))
    try:
        result = cli("run", "--service", str(declared), "--backend", "native", "--ports", "auto",
                     "--run-folder", str(runs), "--", "-k", "memcached", timeout=300)
        out = result.stdout + result.stderr
        assert result.returncode == 0, out
        assert "✅ Teardown: nothing left behind" in result.stdout, out
        assert _processes_running(["sleep", seconds]) == [], "the ready command's child outlived the run"
        assert leftovers(run_folder_of(result.stdout).name) == []
    finally:
        for pid in _processes_running(["sleep", seconds]):  # this test's own, should they be there
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_a_declared_command_that_daemonizes_is_told_to_stay_in_the_foreground(declared: Path, runs: Path) -> None:
    """`memcached -d` forks into the background and exits: it passed readiness, then failed "exited before the
    tests" with no hint. Wherever it is found gone (at its start, while probed, before the tests), the line says
    the command must stay in the foreground."""
    config = declared / "testbed.yml"
    config.write_text(config.read_text().replace('-m, "16"]', '-m, "16", -d]'))
    result = cli("run", "--service", str(declared), "--backend", "native", "--ports", "auto",
                 "--run-folder", str(runs), "--", "-k", "memcached", timeout=300)
    out = result.stdout + result.stderr
    assert result.returncode == ExitCode.PROVISIONING, out
    failures = [line for line in result.stdout.splitlines() if line.startswith("❌")]
    assert len(failures) == 1, out
    assert "a declared server's command must stay in the foreground: run it in the foreground, not as a daemon" \
        in failures[0], out
    run_id = run_folder_of(result.stdout).name
    assert leftovers(run_id) == [] and reaper.marked(run_id) == []  # the daemon carried the run's marker


class _Redirecting(http.server.BaseHTTPRequestHandler):
    """/health answers 200; /to-ftp and /to-health redirect (to ftp:// and to /health)."""

    def do_GET(self) -> None:
        targets = {"/to-ftp": f"ftp://127.0.0.1:{self.server.server_port}/health", "/to-health": "/health"}
        if self.path in targets:
            self.send_response(302)
            self.send_header("Location", targets[self.path])
        else:
            self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


@pytest.mark.parametrize(("path", "ready"), [("/to-health", True), ("/to-ftp", False)])
def test_http_readiness_follows_redirects_to_http_only(path: str, ready: bool) -> None:
    """urllib follows a redirect to ftp:// as well: readiness follows only http(s)."""
    from testbed.servers.declared import Declared  # noqa: PLC0415

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Redirecting)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        settings = {"ready": {"http": path}}
        fact = {"host": "127.0.0.1", "port": server.server_port}
        if ready:
            assert Declared("web").probe(settings, fact).startswith("HTTP 200")
        else:
            with pytest.raises(OSError, match=r"redirect to ftp://127\.0\.0\.1:\d+/health refused: readiness "
                                              r"follows only http:// and https://"):
                Declared("web").probe(settings, fact)
    finally:
        server.shutdown()
        server.server_close()
