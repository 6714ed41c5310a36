"""A cold install holds ansible-core and only the collections a run uses (`testbed collections install`), a run
says in one line what is missing before anything starts, Poetry comes on demand, and uv makes the services'
virtualenvs where it can (pip when told or when uv is absent). Speed is measured in benchmarks/cold_install.py."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from support import BIN, FIXTURES, PROJECT, clean_env, run
from testbed.ansible import collections_install
from testbed.config.catalogue import load_catalogue
from testbed.config.service import load_service_config
from testbed.core import installers
from testbed.core.errors import TestbedError
from testbed.phases import dependencies, secrets

UV = str(BIN / "uv") if (BIN / "uv").is_file() else shutil.which("uv")


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv holding testbed and its dependencies (no extras), as installing its wheel leaves it."""
    assert UV, "uv is part of testbed's dev extra: pip install -e '.[dev]'"
    venv = tmp_path_factory.mktemp("bare") / "venv"
    env = clean_env()
    for argv in (
        [UV, "venv", "--quiet", "--seed", "--python", sys.executable, str(venv)],
        [UV, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), "-e", str(PROJECT)],
    ):
        result = run(argv, env=env)
        assert result.returncode == 0, result.stderr
    return venv


def _site(venv: Path) -> Path:
    (site,) = venv.glob("lib/python3*/site-packages")
    return site


def _env(venv: Path, tmp_path: Path) -> dict[str, str]:
    # No Galaxy-installed collections from this machine's ~/.ansible: only the virtualenv's own count.
    empty = tmp_path / "no-galaxy"
    empty.mkdir(exist_ok=True)
    env = clean_env(ANSIBLE_COLLECTIONS_PATH=str(empty))
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    return env


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_ino, p.stat().st_mtime_ns) for p in root.rglob("*")}


@pytest.mark.parametrize(
    ("options", "needed", "not_needed"),
    [
        (["--backend", "docker", "--secrets", "env"], "community.docker >=4.8.0,<5.0.0", "amazon.aws"),
        (["--backend", "native", "--secrets", "ssm"], "amazon.aws >=10.1.0,<11.0.0", "community.docker"),
    ],
    ids=["docker", "ssm"],
)
def test_a_run_without_the_collections_it_needs_stops_with_one_line_naming_the_install_command(
    options: list[str], needed: str, not_needed: str, bare: Path, service: Path, tmp_path: Path
):
    shutil.rmtree(_site(bare) / "ansible_collections", ignore_errors=True)
    testbed = [str(bare / "bin" / "testbed"), "run", "--service", str(service), "--ports", "auto"]
    result = run([*testbed, *options], env=_env(bare, tmp_path))
    assert result.returncode == 10, result.stdout + result.stderr
    assert result.stdout == ""  # nothing started: no phase line
    (line,) = result.stderr.splitlines()
    assert needed in line
    assert not_needed not in line  # only what this run needs
    assert "`testbed collections install`" in line


def test_collections_install_is_idempotent_and_their_plugins_load(bare: Path, tmp_path: Path):
    env = _env(bare, tmp_path)
    collections = _site(bare) / "ansible_collections"
    shutil.rmtree(collections, ignore_errors=True)

    def documented(kind: str, name: str) -> bool:
        # ansible-doc exits 0 with a warning for a plugin it cannot find; its JSON tells.
        result = run([str(bare / "bin" / "ansible-doc"), "--json", "-t", kind, name], env=env, cwd=tmp_path)
        return result.returncode == 0 and "doc" in json.loads(result.stdout or "{}").get(name, {})

    assert not documented("module", "community.docker.docker_container")  # ansible-core alone

    first = run([str(bare / "bin" / "testbed"), "collections", "install"], env=env)
    assert first.returncode == 0, first.stderr
    assert [line.split(":")[0] for line in first.stdout.splitlines()] == [
        "community.docker 4.8.5",
        "community.library_inventory_filtering_v1 1.1.5",
        "amazon.aws 10.1.2",
    ]
    assert all(line.endswith(f"installed in {collections}") for line in first.stdout.splitlines())
    before = _tree(collections)

    second = run([str(bare / "bin" / "testbed"), "collections", "install"], env=env)
    assert second.returncode == 0, second.stderr
    assert all("already installed" in line for line in second.stdout.splitlines()), second.stdout
    assert _tree(collections) == before  # not one file rewritten

    assert documented("module", "community.docker.docker_container")
    assert documented("lookup", "amazon.aws.ssm_parameter")
    # The whole pipeline's playbook resolves every module it names (community.docker's among them).
    # testbed.pipeline itself comes from this checkout's .collections (an editable install carries no copy).
    in_checkout = env | {"ANSIBLE_COLLECTIONS_PATH": f"{env['ANSIBLE_COLLECTIONS_PATH']}:{PROJECT / '.collections'}"}
    check = run([str(bare / "bin" / "ansible-playbook"), "--syntax-check", "integration.yml"], env=in_checkout)
    assert check.returncode == 0, check.stdout + check.stderr


def test_ssm_secrets_without_boto3_stop_with_one_line_naming_the_extra(bare: Path, service: Path, tmp_path: Path):
    env = _env(bare, tmp_path)
    assert run([str(bare / "bin" / "testbed"), "collections", "install"], env=env).returncode == 0
    assert run([str(bare / "bin" / "python"), "-c", "import boto3"], env=env).returncode != 0  # no [aws] extra
    testbed = [str(bare / "bin" / "testbed"), "run", "--service", str(service), "--ports", "auto"]
    result = run([*testbed, "--backend", "native", "--secrets", "ssm"], env=env)
    assert result.returncode == 10, result.stdout + result.stderr
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert "pip install boto3, testbed's aws extra" in line


def test_the_playbooks_name_the_aws_extra_when_the_ssm_lookup_lacks_boto3():
    # What amazon.aws's lookup raises without boto3 (ansible-core's missing_required_lib), as
    # `ansible-playbook integration.yml` users see it, without the wrapper's check before the run.
    message = (
        "An unhandled exception occurred while running the lookup plugin 'amazon.aws.ssm_parameter'. Error was a "
        "<class 'ansible_collections.amazon.aws.plugins.module_utils.botocore.AnsibleBotocoreError'>, original "
        "message: Failed to import the required Python library (botocore and boto3) on host's Python /venv/bin/python."
    )
    assert secrets._classify_ssm_error(message) == (
        "boto3 is not installed (pip install boto3, testbed's aws extra; or use --secrets env)"
    )


def test_requirements_yml_asks_galaxy_for_what_collections_install_takes_from_the_ansible_wheel():
    wanted = yaml.safe_load((PROJECT / "requirements.yml").read_text(encoding="utf-8"))["collections"]
    declared = {c["name"]: c["version"] for c in wanted}
    needed = {c.name: c.requirement for c in collections_install.NEEDED}
    # community.library_inventory_filtering_v1 comes with community.docker from Galaxy (its dependency).
    needed.pop("community.library_inventory_filtering_v1")
    assert declared == needed


def _service(tmp_path: Path, install: str, files: dict[str, str]) -> Path:
    folder = tmp_path / "svc"
    shutil.copytree(FIXTURES / "services" / "basic", folder)
    config = yaml.safe_load((folder / "testbed.yml").read_text(encoding="utf-8"))
    config["install"] = install
    (folder / "testbed.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def _without_poetry(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not (BIN / "poetry").exists(), "this test needs testbed's virtualenv without the [poetry] extra"
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and not (Path(p) / "poetry").exists()]
    monkeypatch.setenv("PATH", os.pathsep.join(path))


def test_poetry_is_installed_on_demand_once_into_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    _without_poetry(monkeypatch)
    monkeypatch.setenv("TESTBED_CACHE_DIR", str(tmp_path / "cache"))
    pyproject = '[tool.poetry]\npackage-mode = false\n\n[tool.poetry.dependencies]\npython = ">=3.11"\n'
    config = load_service_config(_service(tmp_path, "auto", {"pyproject.toml": pyproject}), load_catalogue(PROJECT))
    assert dependencies.install_mode(config) == "poetry"

    python, reused = dependencies.ensure(config)
    assert not reused
    (ready,) = (tmp_path / "cache" / "tools").glob("poetry-*/.testbed-ready")
    assert (ready.parent / "bin" / "poetry").is_file()
    assert subprocess.run([str(python), "-c", "import pytest_timeout"], check=False).returncode == 0
    stamp = ready.stat().st_mtime_ns

    # Another service (or the same one changed) reuses that Poetry: no second install.
    (config.directory / "requirements-dev.txt").write_text("# changed\n", encoding="utf-8")
    _, reused = dependencies.ensure(config)
    assert not reused
    assert installers.poetry() == str(ready.parent / "bin" / "poetry")
    assert ready.stat().st_mtime_ns == stamp


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_a_pip_style_service_gets_its_virtualenv_from_uv_or_from_pip_when_told(
    installer: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("TESTBED_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv(installers.INSTALLER_VARIABLE, installer)
    config = load_service_config(
        _service(tmp_path, "auto", {"requirements.txt": "iniconfig\n"}), load_catalogue(PROJECT)
    )
    assert dependencies.install_mode(config) == "pip"
    python, reused = dependencies.ensure(config)
    assert not reused
    made_by_uv = "uv =" in (python.parent.parent / "pyvenv.cfg").read_text(encoding="utf-8")
    assert made_by_uv == (installer == "uv")
    probe = "import iniconfig, pytest_cov, pytest_timeout"
    assert subprocess.run([str(python), "-c", probe], check=False).returncode == 0


def _hostile_wheel(cache: Path, entries: dict[str, tuple[bytes, int]]) -> Path:
    """An `ansible` wheel in testbed's cache holding the three collections testbed takes from it (a MANIFEST and
    a module each), plus `entries`: name -> (content, Unix mode)."""
    wheel = cache / "wheels" / f"ansible-{collections_install.ANSIBLE_RELEASE}-py3-none-any.whl"
    wheel.parent.mkdir(parents=True)
    versions = {"community.docker": "4.8.5", "community.library_inventory_filtering_v1": "1.1.5",
                "amazon.aws": "10.1.2"}
    with zipfile.ZipFile(wheel, "w") as archive:
        for collection in collections_install.NEEDED:
            prefix = f"ansible_collections/{collection.folder}/"
            manifest = {"collection_info": {"version": versions[collection.name]}}
            archive.writestr(prefix + "MANIFEST.json", json.dumps(manifest))
            archive.writestr(prefix + "plugins/modules/thing.py", "# a module\n")
        for name, (content, mode) in entries.items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3  # Unix: the mode below is read
            info.external_attr = mode << 16
            archive.writestr(info, content)
    return wheel


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize(
    ("entry", "content", "mode", "why"),
    [
        ("ansible_collections/community/docker/{outside}/ESCAPED", b"x", stat.S_IFREG | 0o644, "an absolute path"),
        ("ansible_collections/community/docker/../../../../ESCAPED", b"x", stat.S_IFREG | 0o644, "a '..' component"),
        ("ansible_collections/community/docker/plugins/link", b"/etc/passwd", stat.S_IFLNK | 0o777,
         "a symbolic link"),
        ("ansible_collections/community/docker/plugins/tty", b"", stat.S_IFCHR | 0o600,
         "a device or other special file"),
    ],
    ids=["absolute", "dotdot", "symlink", "device"],
)
def test_collections_install_unpacks_nothing_from_a_wheel_with_an_entry_that_leaves_its_folder(
    entry: str, content: bytes, mode: int, why: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    outside = tmp_path / "outside"
    outside.mkdir()
    entry = entry.replace("{outside}", str(outside))  # the name's remainder is absolute: `docker//tmp/...`
    cache = tmp_path / "cache"
    wheel = _hostile_wheel(cache, {entry: (content, mode)})
    monkeypatch.setenv("TESTBED_CACHE_DIR", str(cache))
    # As if the pinned release itself were hostile: its hash is the one recorded, and still nothing escapes.
    monkeypatch.setattr(collections_install, "ANSIBLE_WHEEL_SHA256", hashlib.sha256(wheel.read_bytes()).hexdigest())
    root = tmp_path / "site" / "ansible_collections"

    with pytest.raises(TestbedError) as refused:
        collections_install.install(root)

    message = str(refused.value)
    assert f"holds {entry!r}, {why}" in message
    assert f"delete {wheel} and run `testbed collections install` again" in message
    assert refused.value.exit_code == 10
    assert _files(outside) == [] and not (tmp_path / "ESCAPED").exists()
    assert _files(tmp_path / "site") == []  # not one collection, not a half-unpacked folder


def test_collections_install_refuses_a_cached_wheel_that_is_not_pypis_and_unpacks_nothing(tmp_path: Path):
    cache = tmp_path / "cache"
    wheel = _hostile_wheel(cache, {})  # well-formed, the right collection versions, but not PyPI's file
    root = tmp_path / "site"
    result = run([sys.executable, "-m", "testbed", "collections", "install", "--path", str(root)],
                 env=clean_env(TESTBED_CACHE_DIR=str(cache)))
    assert result.returncode == 10, result.stdout + result.stderr
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    actual = hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert line == (
        f"testbed: error: collections: {wheel} has sha256 {actual}, not {collections_install.ANSIBLE_WHEEL_SHA256} "
        f"(PyPI's ansible {collections_install.ANSIBLE_RELEASE} wheel); nothing was installed: delete it and run "
        f"`testbed collections install` again to download it, or put the wheel PyPI publishes for ansible "
        f"{collections_install.ANSIBLE_RELEASE} there"
    )
    assert not root.exists()
    assert wheel.is_file()  # the user's file: testbed says what to do, and leaves it


def test_collections_install_refuses_a_downloaded_wheel_that_is_not_pypis_and_keeps_none(tmp_path: Path):
    # A package index (here a local folder pip is pointed at) that serves another file under the release's name.
    index = tmp_path / "index"
    info = f"ansible-{collections_install.ANSIBLE_RELEASE}.dist-info"
    served = _hostile_wheel(index, {
        f"{info}/METADATA": (f"Metadata-Version: 2.1\nName: ansible\nVersion: {collections_install.ANSIBLE_RELEASE}\n"
                             .encode(), stat.S_IFREG | 0o644),
        f"{info}/WHEEL": (b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n", stat.S_IFREG | 0o644),
    })
    cache = tmp_path / "cache"
    env = clean_env(TESTBED_CACHE_DIR=str(cache), PIP_NO_INDEX="1", PIP_FIND_LINKS=str(served.parent))
    result = run([sys.executable, "-m", "testbed", "collections", "install", "--path", str(tmp_path / "site")],
                 env=env)
    assert result.returncode == 10, result.stdout + result.stderr
    (line,) = result.stderr.splitlines()
    assert f"the ansible {collections_install.ANSIBLE_RELEASE} wheel pip downloaded has sha256 " in line, line
    assert "check the package index pip uses (PIP_INDEX_URL)" in line
    assert not (cache / "wheels" / served.name).exists()  # not cached: the next attempt downloads again
    assert not (tmp_path / "site").exists()
