"""SSH test hosts for the self-hosted runner tests, and the offline sources they install from.

* ``ensure_sshd_image()``: ``testbed-local/sshd:bookworm-<hash8>``, derived from the base rootfs that
  :mod:`build` debootstraps (its cached ``rootfs.tar``): the server packages purged (a runner host
  starts without them), ``openssh-server``, ``python3``, ``python3-venv`` and ``sudo`` installed, a
  user ``ci`` with passwordless sudo, no host keys (each container makes its own) and no
  ``policy-rc.d``. The entrypoint writes ``$SSH_AUTHORIZED_KEY`` for ``ci`` and runs ``sshd -D``.
* ``ensure_apt_repo(packages)``: a flat apt repository (``Packages`` + ``Release``) holding the
  packages and their whole dependency closure, downloaded on this machine with ``apt-get download``;
  test hosts use it as ``deb [trusted=yes] file:/srv/testbed-apt ./`` (it is bind-mounted read-only).
* ``ensure_wheelhouse(requirements)``: wheels of the requirements and their dependencies
  (``pip wheel``), and ``build_testbed_wheel()``: testbed's own wheel, built from a copy of the sources.

Everything is cached under the same folder as the images (``/var/cache/testbed-images`` for root,
``$TESTBED_IMAGES_CACHE`` overrides) in folders named by a hash of what determines their content, and
built under the same lock, so repeated sessions only look things up.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

if __package__:
    from . import build
else:  # pragma: no cover - run as a script
    import build  # type: ignore[no-redef]

SSHD_REPO = "testbed-local/sshd"
SSHD_RECIPE_VERSION = "1"
SSHD_USER = "ci"
# Installed for the server images; a fresh runner host has none of them (runner.yml installs them).
SSHD_PURGE: tuple[str, ...] = (
    "postgresql-15", "postgresql-client-15", "postgresql-common", "postgresql-client-common",
    "redis-server", "redis-tools", "nats-server", "gosu",
)  # fmt: skip
SSHD_PACKAGES: tuple[str, ...] = ("openssh-server", "python3", "python3-venv", "sudo")
SSHD_CONFIG = (
    "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin no\nUseDNS no\n"
    "AcceptEnv none\n"
)
SSHD_SUDOERS = f"{SSHD_USER} ALL=(ALL:ALL) NOPASSWD: ALL\n"
ENTRYPOINT = "sshd-entrypoint.sh"
APT_REPO_VERSION = "1"
WHEELHOUSE_VERSION = "1"
PROJECT = Path(__file__).resolve().parents[2]


def sshd_recipe_hash() -> str:
    digest = hashlib.sha256()
    recipe = {
        "base": build.recipe_hash(), "version": SSHD_RECIPE_VERSION, "purge": SSHD_PURGE,
        "packages": SSHD_PACKAGES, "user": SSHD_USER, "sshd": SSHD_CONFIG, "sudoers": SSHD_SUDOERS,
    }  # fmt: skip
    digest.update(json.dumps(recipe, sort_keys=True).encode())
    digest.update((build.FILES_DIR / ENTRYPOINT).read_bytes())
    return digest.hexdigest()


def ensure_sshd_image(*, log: bool = True) -> str:
    """The SSH host image's tag, building it (and the base rootfs) when missing."""
    build._check_docker()
    digest = sshd_recipe_hash()
    tag = f"{SSHD_REPO}:bookworm-{digest[:8]}"
    if build._image_exists(tag):
        return tag
    cache_root = build._cache_root()
    cache_root.mkdir(parents=True, exist_ok=True)
    with build.locked(cache_root / ".lock"):
        if build._image_exists(tag):
            return tag
        started = time.monotonic()
        tarball = _sshd_tarball(cache_root, digest, log=log)
        build._run([
            "docker", "import", "--message", "testbed local SSH test host",
            "--change", f"ENV LANG=C.UTF-8 PATH={build.BASE_PATH}",
            "--change", "EXPOSE 22",
            "--change", f'ENTRYPOINT ["/usr/local/bin/{ENTRYPOINT}"]',
            "--change", f"LABEL org.testbed.recipe={digest} org.testbed.image=sshd",
            str(tarball), tag,
        ])  # fmt: skip
        build._say(log, f"built {tag} in {time.monotonic() - started:.1f}s")
    return tag


def _sshd_tarball(cache_root: Path, digest: str, *, log: bool) -> Path:
    final = cache_root / f"sshd-{digest}" / "rootfs.tar"
    if final.is_file():
        build._say(log, f"reusing cached SSH host rootfs {final}")
        return final
    base = build._rootfs_tarball(cache_root, build.recipe_hash(), log=log)
    for stale in cache_root.glob("sshd-*.work-*"):
        build._remove_tree(stale)
    work = cache_root / f"sshd-{digest[:16]}.work-{os.getpid()}"
    rootfs = work / "rootfs"
    try:
        with build._unpacked_base(base, rootfs):
            build._say(log, f"SSH host: purge {' '.join(SSHD_PURGE)}; install {' '.join(SSHD_PACKAGES)}")
            build._chroot(rootfs, ["apt-get", "update", "-qq"])
            build._chroot(rootfs, ["apt-get", "purge", "-y", "-qq", "--autoremove", *SSHD_PURGE])
            build._chroot(rootfs, ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *SSHD_PACKAGES])
            build._chroot(rootfs, ["apt-get", "clean"])
            build._chroot(rootfs, ["sh", "-euc", (
                f"useradd --create-home --shell /bin/bash --uid 1000 {SSHD_USER}\n"
                "for u in postgres redis nats; do if id \"$u\" >/dev/null 2>&1; then userdel \"$u\"; fi; done\n"
                "rm -f /etc/ssh/ssh_host_* /usr/sbin/policy-rc.d\n"
                "rm -rf /etc/postgresql /etc/postgresql-common /var/lib/postgresql /etc/redis /var/lib/redis "
                "/var/log/postgresql /var/log/redis /etc/nats /data /docker-entrypoint-initdb.d /nats-server.conf\n"
            )])  # fmt: skip
            build._write(rootfs, f"etc/sudoers.d/{SSHD_USER}", SSHD_SUDOERS, 0o440)
            build._write(rootfs, "etc/ssh/sshd_config.d/testbed.conf", SSHD_CONFIG)
            build._write(rootfs, f"usr/local/bin/{ENTRYPOINT}", (build.FILES_DIR / ENTRYPOINT).read_text(), 0o755)
        build._pack_rootfs(rootfs, final)
    finally:
        build._remove_tree(work)
    return final


# --------------------------------------------------------------------------- local apt repository


def _run(argv: Sequence[str], cwd: Path | None = None) -> str:
    proc = subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-40:])
        raise build.ImageBuildError(f"command failed ({proc.returncode}): {' '.join(argv)}\n{tail}")
    return proc.stdout


def _closure(packages: Sequence[str]) -> list[str]:
    """Every package the given ones need (Pre-Depends and Depends, recursively), per this machine's apt."""
    out = _run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts",
                      "--no-breaks", "--no-replaces", "--no-enhances", *packages])
    return sorted({line.strip() for line in out.splitlines() if line and not line.startswith((" ", "<"))})


def _cached_folder(name: str, marker: str, fill: Callable[[Path], str], *, log: bool) -> Path:
    """A folder under the cache root, filled once: under the cache lock, in a work folder moved into place
    when ``fill`` (which returns what to log) succeeds."""
    cache_root = build._cache_root()
    target = cache_root / name
    if (target / marker).is_file():
        return target
    cache_root.mkdir(parents=True, exist_ok=True)
    with build.locked(cache_root / ".lock"):
        if (target / marker).is_file():
            return target
        started = time.monotonic()
        work = cache_root / f"{name}.work-{os.getpid()}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        try:
            what = fill(work)
            shutil.rmtree(target, ignore_errors=True)
            work.replace(target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        build._say(log, f"{what} {target} in {time.monotonic() - started:.1f}s")
    return target


def ensure_apt_repo(packages: Sequence[str], *, log: bool = True) -> Path:
    """A flat, trusted-by-configuration apt repository with ``packages`` and their dependency closure."""
    key = hashlib.sha256(json.dumps([APT_REPO_VERSION, build.SUITE, sorted(packages)]).encode()).hexdigest()[:16]

    def fill(work: Path) -> str:
        try:
            names = _closure(packages)
            _run(["apt-get", "download", "-q", *names], cwd=work)
        except build.ImageBuildError:  # stale lists on this machine: the mirror moved on
            build._priv(["apt-get", "update", "-qq"])
            names = _closure(packages)
            _run(["apt-get", "download", "-q", *names], cwd=work)
        index = _run(["dpkg-scanpackages", "--multiversion", ".", "/dev/null"], cwd=work)
        (work / "Packages").write_text(index)
        data = (work / "Packages").read_bytes()
        (work / "Release").write_text(
            "Origin: testbed\nLabel: testbed local\nSuite: testbed\nCodename: testbed\n"
            f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S UTC', time.gmtime())}\n"
            "Architectures: amd64 all\nSHA256:\n"
            f" {hashlib.sha256(data).hexdigest()} {len(data)} Packages\n")
        for path in work.iterdir():
            path.chmod(0o644)
        work.chmod(0o755)
        return f"apt repository ({len(names)} packages)"

    return _cached_folder(f"apt-{key}", "Release", fill, log=log)


# --------------------------------------------------------------------------- wheels


def ensure_wheelhouse(requirements: Sequence[str], *, log: bool = True) -> Path:
    """Wheels of ``requirements`` with all their dependencies, for this machine's Python and platform."""
    tag = f"{sys.implementation.cache_tag}-{sys.platform}-{os.uname().machine}"
    key = hashlib.sha256(json.dumps([WHEELHOUSE_VERSION, tag, sorted(requirements)]).encode()).hexdigest()[:16]

    def fill(work: Path) -> str:
        build._run([sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check",
                    "--wheel-dir", str(work), *requirements])
        (work / ".complete").touch()
        return "wheelhouse"

    return _cached_folder(f"wheels-{key}", ".complete", fill, log=log)


# What the wheel is built from: the package, and the collection it carries (pyproject.toml's wheel target).
WHEEL_SOURCES = ("pyproject.toml", "hatch_build.py", "README.md", "src/testbed", "galaxy.yml", "meta", "playbooks",
                 "roles", "plugins", "inventory", "ansible.cfg", "requirements.yml")


def _wheel_source_files() -> list[Path]:
    files = []
    for name in WHEEL_SOURCES:
        path = PROJECT / name
        found = [path] if path.is_file() else path.rglob("*")
        files += sorted(p for p in found if p.is_file() and "__pycache__" not in p.parts)
    return files


def _source_hash() -> str:
    digest = hashlib.sha256()
    for path in _wheel_source_files():
        digest.update(str(path.relative_to(PROJECT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def build_testbed_wheel(*, log: bool = True) -> Path:
    """testbed's own wheel (the collection inside it), built from a copy of the current sources."""
    cache_root = build._cache_root()
    out = cache_root / f"testbed-wheel-{_source_hash()}"
    found = sorted(out.glob("testbed-*.whl"))
    if found:
        return found[0]
    cache_root.mkdir(parents=True, exist_ok=True)
    work = cache_root / f"testbed-wheel.work-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    try:
        source = work / "source"
        for path in _wheel_source_files():
            target = source / path.relative_to(PROJECT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        build._run([sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--no-deps",
                    "--wheel-dir", str(work / "dist"), str(source)])
        shutil.rmtree(out, ignore_errors=True)
        (work / "dist").replace(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    build._say(log, f"built {out}")
    return sorted(out.glob("testbed-*.whl"))[0]


if __name__ == "__main__":
    print(ensure_sshd_image())
