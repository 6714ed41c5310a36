"""What the tests share: the environment of a user's shell, testbed and the playbooks run the way a user runs
them (subprocesses), and the checks for anything a run left behind or leaked. Tests import it as
`from support import ...` (pyproject's pytest `pythonpath` puts tests/ on sys.path)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

from images.build import image_args
from testbed.backends import docker_api
from testbed.core.paths import runtime_root
from testbed.parallel import workers

__all__ = [
    "BIN",
    "FIXTURES",
    "PROJECT",
    "RUN_FOLDER",
    "SECRET",
    "alive",
    "clean_env",
    "cli",
    "execed",
    "image_args",
    "leave_time_wait",
    "leftovers",
    "only_run_in",
    "playbook",
    "python_on_small_tmpfs",
    "refusing_port",
    "run",
    "run_folder_of",
    "run_id_of",
    "run_testbed",
    "run_testbed_argv",
    "run_workers_plugin",
    "secret_hits",
    "unique_run_id",
    "without_masks",
    "write_lines",
]

PROJECT = Path(__file__).resolve().parents[2]
FIXTURES = PROJECT / "tests" / "fixtures"
BIN = Path(sys.executable).parent
# Every run of the test suite hands the fixture service this secret through the environment; no file a
# run produces, and no output, may contain it.
SECRET = "tb-secret-" + secrets.token_hex(12)
RUN_FOLDER = re.compile(r"Run folder: ([^\s'\"]+)")  # yaml or json (no ansible.cfg) output


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell: no GitHub, no AWS unless a test adds it."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GITHUB_", "AWS_", "TESTBED_", "PYTEST_", "COV_")) and k != "CI"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["BASIC_TOKEN"] = SECRET
    env["BASIC_TOKEN_LENGTH"] = str(len(SECRET))
    env.update(extra)
    return env


def run(argv: list[str], *, cwd: Path = PROJECT, env: dict[str, str] | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """A command to its end, output captured; the test reads the return code."""
    return subprocess.run(argv, cwd=cwd, env=env or clean_env(), capture_output=True, text=True, timeout=timeout,
                          check=False)


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 600,
        cwd: Path = PROJECT) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "testbed", *args], cwd=cwd, env=env, timeout=timeout)


def run_testbed_argv(service: Path, runs: Path, *extra: str, backend: str = "native", ports: str = "auto",
                     run_id: str | None = None, images: dict[str, str] | None = None) -> list[str]:
    """`testbed run` of a service into a runs folder, as a user types it (auto ports unless a test says)."""
    return [sys.executable, "-m", "testbed", "run", "--service", str(service), "--backend", backend,
            "--ports", ports, "--run-folder", str(runs), *(["--run-id", run_id] if run_id else []),
            *image_args(images or {}), *extra]


def run_testbed(service: Path, runs: Path, *extra: str, backend: str = "native", ports: str = "auto",
                run_id: str | None = None, images: dict[str, str] | None = None, env: dict[str, str] | None = None,
                timeout: float = 600) -> subprocess.CompletedProcess[str]:
    argv = run_testbed_argv(service, runs, *extra, backend=backend, ports=ports, run_id=run_id, images=images)
    return run(argv, env=env, timeout=timeout)


def playbook(name: str, extravars: dict[str, object], env: dict[str, str] | None = None,
             timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "ansible-playbook"), name, "-e", json.dumps(extravars)], cwd=PROJECT,
                          env=env or clean_env(), capture_output=True, text=True, timeout=timeout, check=False)


def run_folder_of(output: str) -> Path:
    found = RUN_FOLDER.findall(output)
    assert found, f"no run folder in output:\n{output}"
    return Path(found[-1])


def run_id_of(output: str) -> str:
    """The id of the run whose output this is (its run folder's name)."""
    return run_folder_of(output).name


def only_run_in(runs: Path) -> str:
    """The id of the one run a runs folder holds (a test that started exactly one)."""
    folders = list(runs.iterdir())
    assert len(folders) == 1, folders
    return folders[0].name


def unique_run_id(prefix: str) -> str:
    """A run id of the test's own, told apart from every other test's and run's by a random tail."""
    return f"{prefix}-{secrets.token_hex(3)}"


def without_masks(stdout: str) -> str:
    """Output without GitHub's `::add-mask::` lines (they name the values to mask, by design)."""
    return "\n".join(line for line in stdout.splitlines() if not line.startswith("::add-mask::"))


@contextlib.contextmanager
def refusing_port() -> Iterator[int]:
    """A loopback port that refuses connections while the block runs: bound, so no one else takes it, but never
    listening (a port merely found free may be taken by then)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def leave_time_wait(port: int) -> None:
    """Leave a TIME_WAIT connection on the port's own side (the side that closes first keeps it): a plain bind
    of the port fails after this, as it did for testbed's old port check."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen()
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = listener.accept()
        accepted.close()
        client.recv(1)  # the FIN arrived
        client.close()
    with socket.socket() as plain:
        try:
            plain.bind(("127.0.0.1", port))
        except OSError:
            return
    raise AssertionError(f"port {port} holds no TIME_WAIT connection: a plain bind succeeded")


def execed(pid: int, program: str, timeout: float = 30) -> None:
    """Wait until the process runs `program`: Popen returns once the child's exec has closed its descriptors, a
    moment before the kernel gives it the new name and command line (seen under load: a test read the old ones)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
            argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            name, argv0 = "", b""
        if name == program[:15] and argv0.endswith(program.encode()):
            return
        assert time.monotonic() < deadline, f"pid {pid} is not running {program} after {timeout:g} s"
        time.sleep(0.005)


def alive(pid: int) -> bool:
    """Whether the process still runs (a zombie has ended: only its parent has not reaped it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def leftovers(run_id: str) -> list[str]:
    """Anything of the run still on this host: processes, runtime folders, containers, networks."""
    left = []
    marker = f"/{run_id}/"
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if marker in cmdline and "pytest" not in cmdline:
                left.append(f"process {proc.name}: {cmdline[:120]}")
    for path in (runtime_root() / run_id, runtime_root() / f"runner-{run_id}"):
        if path.exists():
            left.append(f"folder {path}")
    if docker_api.engine_answers(timeout=2):
        left += [f"container {c['Names']}" for c in docker_api.containers_of(run_id)]
        left += [f"network {n['Name']}" for n in docker_api.networks_of(run_id)]
        status, body = docker_api.request("GET", "/volumes")
        if status == 200:
            left += [f"volume {v['Name']}" for v in json.loads(body).get("Volumes") or []
                     if run_id in json.dumps(v.get("Labels") or {})]
    return left


def secret_hits(*places: Path | str) -> list[str]:
    """Where the suite's secret shows up: files under the given folders, or the given output texts."""
    hits = []
    for place in places:
        if isinstance(place, Path):
            files = [place] if place.is_file() else [p for p in place.rglob("*") if p.is_file()]
            hits += [str(f) for f in files if SECRET.encode() in f.read_bytes()]
        elif SECRET in place:
            hits.append("output")
    return hits


def write_lines(folder: Path, name: str, *lines: str) -> Path:
    """A text file of these lines (each ended by a newline) in the folder: a migration, a test, a config."""
    path = folder / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def waiting_test(service: Path) -> tuple[Path, Path]:
    """A test `test_waits_for_the_outer_test` in the service's tests that writes `started` into the first FIFO,
    then waits until the outer test writes `go` into the second: a `testbed test` held at a known point."""
    started, release = service / "started.fifo", service / "release.fifo"
    os.mkfifo(started)
    os.mkfifo(release)
    (service / "tests" / "test_waits.py").write_text(
        "def test_waits_for_the_outer_test():\n"
        f"    with open({str(started)!r}, 'w') as fifo:\n"  # blocks until the outer test reads
        "        fifo.write('started')\n"
        f"    with open({str(release)!r}) as fifo:\n"  # blocks until the outer test writes
        "        assert fifo.read() == 'go'\n"
    )
    return started, release


def python_on_small_tmpfs(tmp_path: Path, code: str) -> subprocess.CompletedProcess[str]:
    """Python `code` with a 64 KiB tmpfs on tmp_path/disk (FOLDER in the code), in a mount namespace of its own:
    a full disk, for this process only."""
    disk = tmp_path / "disk"
    disk.mkdir()
    script = f"FOLDER = {str(disk)!r}\n" + textwrap.dedent(code)
    mount = 'mount -t tmpfs -o size=64k tmpfs "$1" && shift && exec "$@"'
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", mount, "sh", str(disk), sys.executable, "-c",
         script],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


def run_workers_plugin(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Import testbed's pytest-xdist plugin in a process of its own with this environment; it prints what a
    worker's POSTGRES_DB and the reset gate's variable are after it ran."""
    code = "import os, testbed_workers; print(os.environ.get('POSTGRES_DB'), os.environ.get('TESTBED_RESET_GATE'))"
    return subprocess.run(
        [sys.executable, "-c", code],
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(workers.PLUGIN_DIR), **env},
        capture_output=True, text=True, check=False, timeout=30,
    )
