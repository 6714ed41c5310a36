"""The Ansible collections a run needs, without the 40,000-file `ansible` bundle: just those collections are
taken out of that bundle's wheel (the package index answers where Galaxy may not) into site-packages'
ansible_collections/, where ansible-core finds them with no configuration."""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from testbed.core import installers
from testbed.core.errors import ExitCode, TestbedError

# The release the collections are taken from; requirements.yml names the same ranges for Galaxy users.
ANSIBLE_RELEASE = "12.3.0"
# PyPI's sha256 of that release's wheel (https://pypi.org/simple/ansible/): the cached or downloaded file is
# checked against it before anything in it is read. Change both together.
ANSIBLE_WHEEL_SHA256 = "cd156f82fa87f7a899212b0efa9f7ca3a24d609212de9f78428a572eb01e5414"
INSTALL_COMMAND = "testbed collections install"
_MARKER = ".testbed-installed"  # in a collection's folder: testbed put it there, and may replace it


@dataclass(frozen=True)
class Collection:
    name: str
    minimum: tuple[int, ...]
    below: tuple[int, ...]

    @property
    def folder(self) -> str:
        return self.name.replace(".", "/")

    @property
    def requirement(self) -> str:
        return f">={'.'.join(map(str, self.minimum))},<{'.'.join(map(str, self.below))}"

    def accepts(self, version: str) -> bool:
        return self.minimum <= _parse(version) < self.below


NEEDED = (
    Collection("community.docker", (4, 8, 0), (5, 0, 0)),  # the Docker backend's modules
    Collection("community.library_inventory_filtering_v1", (1, 0, 0), (2, 0, 0)),  # community.docker needs it
    Collection("amazon.aws", (10, 1, 0), (11, 0, 0)),  # the ssm_parameter lookup (--secrets ssm)
)
DOCKER = ("community.docker", "community.library_inventory_filtering_v1")  # what the Docker backend needs
SSM = ("amazon.aws",)  # what --secrets ssm needs


def _parse(version: str) -> tuple[int, ...]:
    parts = []
    for part in version.split("."):
        digits = "".join(c for c in part if c.isdigit()) if part[:1].isdigit() else ""
        parts.append(int(digits or 0))
    return tuple(parts)


def default_root() -> Path:
    """This Python's site-packages/ansible_collections, on ansible-core's collection path by default."""
    return Path(sysconfig.get_paths()["purelib"]) / "ansible_collections"


def installed_version(root: Path, collection: Collection) -> str | None:
    return _manifest_version(root / collection.folder)


def _manifest_version(folder: Path) -> str | None:
    try:
        manifest = json.loads((folder / "MANIFEST.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    version = manifest.get("collection_info", {}).get("version")
    return str(version) if version else None


def search_roots() -> list[Path]:
    """Where ansible-playbook will look: ANSIBLE_COLLECTIONS_PATH (Galaxy installs there), then site-packages."""
    configured = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.environ.get("ANSIBLE_COLLECTIONS_PATHS")
    paths = configured.split(os.pathsep) if configured else ["~/.ansible/collections", "/usr/share/ansible/collections"]
    return [Path(p).expanduser() / "ansible_collections" for p in paths if p] + [default_root()]


def missing(collections: tuple[Collection, ...] = NEEDED, roots: list[Path] | None = None) -> list[str]:
    out = []
    for collection in collections:
        versions = [v for root in roots or search_roots() if (v := installed_version(root, collection))]
        if not any(collection.accepts(v) for v in versions):
            found = f" (found {', '.join(versions)})" if versions else ""
            out.append(f"{collection.name} {collection.requirement}{found}")
    return out


def require(docker: bool, ssm: bool) -> None:
    """Before a run starts: one line naming what this run needs and lacks, and the command that installs it.
    (A native run with environment secrets needs none of them.)"""
    wanted = tuple(c for c in NEEDED if (docker and c.name in DOCKER) or (ssm and c.name in SSM))
    absent = missing(wanted)
    if absent:
        raise TestbedError(
            f"Ansible collections missing: {', '.join(absent)}; install them with `{INSTALL_COMMAND}` "
            f"(or pip install ansible=={ANSIBLE_RELEASE} for the whole bundle)",
            ExitCode.CONFIG,
        )
    # amazon.aws's lookup imports boto3 only when it runs: without this, SSM would fail mid-run.
    if ssm and not all(importlib.util.find_spec(name) for name in ("boto3", "botocore")):
        raise TestbedError(
            "--secrets ssm needs boto3, which is not installed; pip install boto3, testbed's aws extra "
            "(or use --secrets env)",
            ExitCode.CONFIG,
        )


def install(root: Path | None = None) -> list[str]:
    """Install what is missing; a second call changes nothing. Returns one line per collection."""
    root = root or default_root()
    lines: list[str] = []
    installers.cache_home().mkdir(parents=True, exist_ok=True)
    with (installers.cache_home() / "collections.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        todo = []
        for collection in NEEDED:
            version = installed_version(root, collection)
            if version is not None and collection.accepts(version):
                lines.append(f"{collection.name} {version}: already installed in {root}")
                continue
            if version is not None and not (root / collection.folder / _MARKER).is_file():
                raise TestbedError(
                    f"{collection.name} {version} in {root} was not installed by testbed and testbed needs "
                    f"{collection.requirement}; upgrade the package that brought it (pip install "
                    f"'ansible=={ANSIBLE_RELEASE}') or remove it",
                    ExitCode.CONFIG,
                )
            todo.append(collection)
        if todo:
            wheel_file = _wheel()
            _check_sha256(wheel_file, cached=True)
            with zipfile.ZipFile(wheel_file) as wheel:
                # Every entry of every collection is checked before the first file is written.
                members = {collection.name: _members(wheel, collection) for collection in todo}
                for collection in todo:
                    version = _extract(wheel, collection, members[collection.name], root)
                    lines.append(f"{collection.name} {version}: installed in {root}")
    return lines


def wheel_path() -> Path:
    """Where the `ansible` release's wheel is kept in testbed's cache (the workflow caches this file)."""
    return installers.cache_home() / "wheels" / f"ansible-{ANSIBLE_RELEASE}-py3-none-any.whl"


def _wheel() -> Path:
    """The `ansible` release's wheel, downloaded once into testbed's cache."""
    wheel = wheel_path()
    cache = wheel.parent
    if wheel.is_file():
        return wheel
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as scratch:
        spec = f"ansible=={ANSIBLE_RELEASE}"
        options = ["download", "--quiet", "--no-deps", "--only-binary", ":all:", "--dest", scratch, spec]
        if importlib.util.find_spec("pip") is not None:
            argv = [sys.executable, "-m", "pip", "--disable-pip-version-check", *options]
        elif found := installers.uv():
            argv = [found, "tool", "run", "--from", "pip", "pip", *options]  # uv itself cannot download
        else:
            raise TestbedError(f"collections: neither pip nor uv is installed to download {spec}; pip install uv")
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        downloaded = Path(scratch) / wheel.name
        if result.returncode != 0 or not downloaded.is_file():
            lines = (result.stderr.strip() or result.stdout.strip()).splitlines() or ["no wheel was downloaded"]
            raise TestbedError(f"collections: downloading {spec} failed: {lines[-1]}", ExitCode.CONFIG)
        _check_sha256(downloaded, cached=False)
        downloaded.replace(wheel)
    return wheel


def _check_sha256(wheel: Path, *, cached: bool) -> None:
    """The wheel is the one PyPI publishes for the pinned release, or one line saying what to do."""
    digest = hashlib.sha256()
    with wheel.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() == ANSIBLE_WHEEL_SHA256:
        return
    found = f"has sha256 {digest.hexdigest()}, not {ANSIBLE_WHEEL_SHA256} (PyPI's ansible {ANSIBLE_RELEASE} wheel)"
    if cached:
        what = (
            f"delete it and run `{INSTALL_COMMAND}` again to download it, or put the wheel PyPI publishes for "
            f"ansible {ANSIBLE_RELEASE} there"
        )
        raise TestbedError(f"collections: {wheel} {found}; nothing was installed: {what}", ExitCode.CONFIG)
    raise TestbedError(
        f"collections: the ansible {ANSIBLE_RELEASE} wheel pip downloaded {found}; nothing was installed: check "
        f"the package index pip uses (PIP_INDEX_URL), or put the wheel from PyPI at {wheel_path()}",
        ExitCode.CONFIG,
    )


def _unsafe(member: zipfile.ZipInfo, rest: str) -> str | None:
    """Why a wheel entry may not be unpacked (its name, after the collection's prefix, is `rest`), or None."""
    kind = stat.S_IFMT(member.external_attr >> 16)  # the Unix file type, when the archive records one
    if PurePosixPath(rest).is_absolute():
        return "an absolute path"
    if ".." in PurePosixPath(rest).parts:
        return "a '..' component"
    if stat.S_ISLNK(kind):
        return "a symbolic link"
    if kind and not (stat.S_ISREG(kind) or (stat.S_ISDIR(kind) and member.is_dir())):
        return "a device or other special file"
    return None


def _members(wheel: zipfile.ZipFile, collection: Collection) -> list[tuple[zipfile.ZipInfo, str]]:
    """The collection's files in the wheel with their paths inside its folder; an entry that could land
    anywhere else (or be anything but a file) is refused, naming it, before anything is unpacked."""
    prefix = f"ansible_collections/{collection.folder}/"
    members = []
    for member in wheel.infolist():
        if not member.filename.startswith(prefix):
            continue
        rest = member.filename.removeprefix(prefix)
        why = _unsafe(member, rest)
        if why is not None:
            raise TestbedError(
                f"collections: {wheel.filename} holds {member.filename!r}, {why} (testbed unpacks only files "
                f"inside {collection.name}'s folder), so nothing was installed; delete {wheel.filename} and run "
                f"`{INSTALL_COMMAND}` again to download ansible {ANSIBLE_RELEASE} from the package index",
                ExitCode.CONFIG,
            )
        if not member.is_dir():
            members.append((member, rest))
    return members


def _inside(staging: Path, member: zipfile.ZipInfo, rest: str) -> Path:
    """Where an entry is written: its name was checked, and this holds whatever else a name might do."""
    path = staging / rest
    if not path.resolve().is_relative_to(staging.resolve()):
        raise TestbedError(f"collections: {member.filename!r} would be unpacked outside {staging}")
    return path


def _extract(
    wheel: zipfile.ZipFile, collection: Collection, members: list[tuple[zipfile.ZipInfo, str]], root: Path
) -> str:
    """Unpack one collection beside its final place, then swap it in: a reader never sees half a collection."""
    try:
        manifest = json.loads(wheel.read(f"ansible_collections/{collection.folder}/MANIFEST.json"))
        version = str(manifest["collection_info"]["version"])
    except (KeyError, TypeError, ValueError):
        version = "none"
    if not collection.accepts(version):
        raise TestbedError(
            f"collections: ansible {ANSIBLE_RELEASE} bundles {collection.name} {version}, "
            f"testbed needs {collection.requirement}",
            ExitCode.CONFIG,
        )
    target = root / collection.folder
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        for member, rest in members:
            path = _inside(staging, member, rest)
            path.parent.mkdir(parents=True, exist_ok=True)
            with wheel.open(member) as source, path.open("wb") as sink:
                shutil.copyfileobj(source, sink)
        (staging / _MARKER).write_text(f"ansible {ANSIBLE_RELEASE}\n", encoding="utf-8")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    except OSError as exc:  # a full disk, or entries that collide (a file where a folder must go)
        shutil.rmtree(staging, ignore_errors=True)
        raise TestbedError(f"collections: unpacking {collection.name} into {target.parent} failed: {exc}") from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return version
