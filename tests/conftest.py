"""Shared fixtures: a copy of the fixture service per test, and helpers that run testbed and the playbooks
the way a user does (subprocesses), then look for anything a run left behind."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from images.build import image_args
from testbed.backends import docker_api
from testbed.core.paths import runtime_root

PROJECT = Path(__file__).resolve().parents[1]
FIXTURES = PROJECT / "tests" / "fixtures"
BIN = Path(sys.executable).parent
# Every run of the test suite hands the fixture service this secret through the environment; no file a
# run produces, and no output, may contain it.
SECRET = "tb-secret-" + secrets.token_hex(12)
RUN_FOLDER = re.compile(r"Run folder: ([^\s'\"]+)")  # yaml or json (no ansible.cfg) output

# `./bootstrap test` runs this suite on 2 pytest-xdist workers (`--dist loadgroup --no-loadscope-reorder`).
# These modules touch nothing the rest share (their servers are on auto ports or on hosts of their own; no
# gc of every run), so each goes to whichever worker is free, slowest first. Every other module uses
# what one machine has once (the CLI's fixed ports 15433/16380/14222, a gc of every run, signals sent on
# a schedule) and they all run on one worker, first, one test at a time as without workers.
ALONGSIDE = (
    "test_runners.py", "test_workers.py", "test_worker_args.py", "test_shards.py", "test_reference_service.py",
    "test_lint.py", "test_cold_install.py", "test_images.py", "test_migrations.py", "test_ports.py",
    "test_github.py", "test_workflow.py", "test_server_registry.py", "test_collection_docs.py",
)
MACHINE_WIDE = "machine-wide"


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


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def group(item: pytest.Item) -> str:
        return item.path.name if item.path.name in ALONGSIDE or item.path.parent.name == "unit" else MACHINE_WIDE

    for item in items:
        item.add_marker(pytest.mark.xdist_group(group(item)))
    # A stable sort: the machine-wide group first (the longest), then ALONGSIDE's order, then the unit tests.
    rank = {name: place for place, name in enumerate((MACHINE_WIDE, *ALONGSIDE))}
    items.sort(key=lambda item: rank.get(group(item), len(rank)))


@pytest.fixture
def service(tmp_path: Path) -> Path:
    """A private copy of the fixture service, free to be broken by the test."""
    target = tmp_path / "basic"
    shutil.copytree(FIXTURES / "services" / "basic", target)
    return target


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    return tmp_path / "runs"


@pytest.fixture(scope="session")
def local_images() -> dict[str, str]:
    """Locally built stand-ins for the official images (tests/images/build.py): no registry is needed.
    Fails, never skips, without a Docker engine."""
    from images.build import ImageBuildError, ensure_images  # noqa: PLC0415

    if docker_api.engine_answers(timeout=5) is None:
        pytest.fail("no Docker engine answers: the Docker backend tests need one (they never skip)", pytrace=False)
    try:
        return ensure_images()
    except ImageBuildError as exc:
        pytest.fail(f"cannot build the local test images: {exc}", pytrace=False)


@pytest.fixture(autouse=True)
def _secret_never_lands_in_a_file(tmp_path: Path):
    """After every test: no file under its temporary folder (run folders included) holds the secret."""
    yield
    assert secret_hits(tmp_path) == [], "the suite's secret leaked into a file"
