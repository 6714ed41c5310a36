"""testbed as a user installs it: the wheel (with the collection testbed.pipeline inside) in a fresh virtualenv
outside the checkout, a service folder of its own run from that folder; and the collection built and installed
with ansible-galaxy."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml

from support import BIN, FIXTURES, PROJECT, clean_env, cli, leftovers, run, run_folder_of

COLLECTION = "ansible_collections/testbed/pipeline"


def _user_env(bin_dir: Path, **extra: str) -> dict[str, str]:
    """A user's shell with only the given virtualenv on PATH: nothing of this checkout or its virtualenv."""
    env = clean_env(**extra)
    env["PATH"] = os.pathsep.join([str(bin_dir), *(p for p in env["PATH"].split(os.pathsep) if p != str(BIN))])
    env.pop("VIRTUAL_ENV", None)
    env.pop("ANSIBLE_CONFIG", None)
    return env


def _foreign_service(tmp_path: Path) -> Path:
    """The fixture service as another repository holds it: its code and testbed.yml, nothing of testbed."""
    service = tmp_path / "elsewhere" / "my-service"
    shutil.copytree(FIXTURES / "services" / "basic", service)
    return service


@pytest.fixture(scope="session")
def wheel() -> Path:
    from images.sshd import build_testbed_wheel  # noqa: PLC0415

    return build_testbed_wheel(log=False)


@pytest.fixture(scope="session")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin/ of a fresh virtualenv outside the checkout holding testbed's wheel and its dependencies (from
    a wheelhouse cached across sessions: no index is needed)."""
    from images.sshd import ensure_wheelhouse  # noqa: PLC0415

    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read(next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    requirements = [line.split(":", 1)[1].strip() for line in metadata.splitlines()
                    if line.startswith("Requires-Dist:") and "extra ==" not in line]
    wheelhouse = ensure_wheelhouse(requirements, log=False)
    venv = tmp_path_factory.mktemp("user") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-index",
                    "--find-links", str(wheelhouse), str(wheel)], check=True, env=_user_env(venv / "bin"))
    return venv / "bin"


def test_galaxy_version_follows_pyproject() -> None:
    galaxy = yaml.safe_load((PROJECT / "galaxy.yml").read_text())
    project = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]
    assert (galaxy["namespace"], galaxy["name"]) == ("testbed", "pipeline")
    assert galaxy["version"] == project["version"]


def test_no_service_here_or_above_is_one_line_exit_10(tmp_path: Path) -> None:
    result = cli("run", "--backend", "native", cwd=tmp_path)
    assert result.returncode == 10, result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == [
        f"testbed: error: no testbed.yml in {tmp_path} or any folder above it: run testbed in a service's "
        "folder or pass --service with the service's folder"
    ]
    assert not (tmp_path / "runs").exists()


def test_the_service_is_the_nearest_testbed_yml_above(service: Path) -> None:
    # From a subfolder of the service: testbed finds it (and says nothing is up for it, by name).
    result = cli("env", cwd=service / "tests")
    assert result.returncode == 12, result.stdout + result.stderr
    assert "no environment is up for basic" in result.stderr


@pytest.mark.slow
def test_wheel_carries_the_collection(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    for path in ("galaxy.yml", "meta/runtime.yml", "ansible.cfg", "inventory/hosts.yml", "playbooks/integration.yml",
                 "playbooks/up.yml", "playbooks/vars/testbed.yml", "roles/servers/defaults/main.yml",
                 "plugins/modules/testbed_preflight.py", "plugins/action/testbed_preflight.py"):
        assert f"{COLLECTION}/{path}" in names, path
    assert "testbed/cli/main.py" in names and "testbed/parallel/plugin/testbed_workers.py" in names
    strays = [n for n in names if "__pycache__" in n or n.startswith((f"{COLLECTION}/tests/", f"{COLLECTION}/."))]
    assert strays == []


@pytest.mark.slow
def test_installed_wheel_runs_a_foreign_service_from_its_own_folder(installed: Path, tmp_path: Path) -> None:
    service = _foreign_service(tmp_path)
    env = _user_env(installed)
    where = run([str(installed / "python"), "-c",
                 "from testbed.config.catalogue import project_root; print(project_root())"],
                cwd=service, env=env, timeout=900)
    assert where.stdout.strip().endswith(f"site-packages/{COLLECTION}"), where.stdout + where.stderr

    result = run([str(installed / "testbed"), "run", "--backend", "native", "--ports", "auto"],
                 cwd=service, env=env, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "✅ Tests: 4 passed" in result.stdout
    folder = run_folder_of(result.stdout)
    assert folder.parent == service / "runs"
    assert (folder / "report.json").is_file() and (folder / "junit.xml").is_file()
    assert str(PROJECT) not in result.stdout + result.stderr
    assert leftovers(folder.name) == []


@pytest.mark.slow
def test_installed_collection_playbook_runs_by_name(installed: Path, tmp_path: Path) -> None:
    service = _foreign_service(tmp_path)
    result = run([str(installed / "ansible-playbook"), "testbed.pipeline.integration", "-e",
                  f"testbed_service={service}", "-e", "testbed_backend=native", "-e", "testbed_ports=auto"],
                 cwd=service, env=_user_env(installed), timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    folder = run_folder_of(result.stdout)
    assert folder.parent == service / "runs"
    assert (folder / "junit.xml").is_file()
    assert leftovers(folder.name) == []


@pytest.mark.slow
def test_galaxy_built_collection_installs_and_runs(tmp_path: Path) -> None:
    env = clean_env()
    built = run([str(BIN / "ansible-galaxy"), "collection", "build", str(PROJECT), "--output-path",
                 str(tmp_path / "dist")], cwd=tmp_path, env=env, timeout=900)
    assert built.returncode == 0, built.stdout + built.stderr
    (tarball,) = (tmp_path / "dist").glob("testbed-pipeline-*.tar.gz")
    collections = tmp_path / "collections"
    # --no-deps: community.docker and amazon.aws come with ansible here; Galaxy is not reachable.
    installed = run([str(BIN / "ansible-galaxy"), "collection", "install", "--no-deps", "-p", str(collections),
                     str(tarball)], cwd=tmp_path, env=env, timeout=900)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    root = collections / COLLECTION
    assert (root / "playbooks" / "integration.yml").is_file()
    assert [name for name in (".collections", "tests", "services", "src") if (root / name).exists()] == []

    service = _foreign_service(tmp_path)
    env = clean_env(ANSIBLE_COLLECTIONS_PATH=str(collections))
    found = run([str(BIN / "ansible-galaxy"), "collection", "list", "testbed.pipeline"],
                cwd=service, env=env, timeout=900)
    assert str(collections) in found.stdout and str(PROJECT) not in found.stdout, found.stdout
    result = run([str(BIN / "ansible-playbook"), "testbed.pipeline.integration", "-e", f"testbed_service={service}",
                  "-e", "testbed_backend=native", "-e", "testbed_ports=auto"], cwd=service, env=env, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    folder = run_folder_of(result.stdout)
    assert folder.parent == service / "runs"
    assert re.search(r"ok=\d+\s+changed=\d+\s+unreachable=0\s+failed=0", result.stdout)
    assert leftovers(folder.name) == []
