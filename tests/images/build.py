"""Build local stand-ins for the images testbed's Docker backend runs, without any registry.

The Docker backend starts ``postgres:15``, the Dragonfly image and ``nats:2.10``. No registry is
reachable in the test environments, so the tests use images built here from Debian packages
(debootstrap + ``docker import``) that honour the same contracts:

* ``postgres``: ``docker-entrypoint.sh`` with the official env contract (POSTGRES_USER,
  POSTGRES_PASSWORD, POSTGRES_DB, POSTGRES_HOST_AUTH_METHOD, POSTGRES_INITDB_ARGS, PGDATA), CMD
  ``["postgres"]`` so ``-c name=value`` args pass through, VOLUME /var/lib/postgresql/data,
  STOPSIGNAL SIGINT (fast shutdown, as upstream), EXPOSE 5432. Debian's PostgreSQL 15.
* ``dragonfly``: redis-server behind a script that accepts Dragonfly-style flags
  (``--port``, ``--maxmemory``, ``--proactor_threads``, ``--bind``, ...). EXPOSE 6379.
* ``nats``: ENTRYPOINT ``["nats-server"]``, CMD ``["--config", "/etc/nats/nats-server.conf"]``
  (4222, monitoring 8222, JetStream in /data/jetstream). Debian's nats-server 2.9. EXPOSE 4222 8222.

All three images share one debootstrapped bookworm rootfs, imported once as
``testbed-local/base:bookworm-<hash8>``; each image is derived from it with metadata-only changes
(``docker commit --change`` plus a one-line classic ``docker build`` for STOPSIGNAL; both use the
local image store only), so the rootfs layer is stored once.
Tags embed a hash of the recipe (see :func:`recipe_hash`); when ``docker image inspect`` finds
them, nothing is built. The rootfs tarball is cached in ``/var/cache/testbed-images/<hash>/``
(``$TESTBED_IMAGES_CACHE`` overrides it; non-root users default to ``~/.cache/testbed-images``
and need passwordless ``sudo`` for debootstrap/chroot), so a rebuild after ``docker rmi`` only
re-imports. A ``fcntl.flock`` on ``<cache>/.lock`` serialises concurrent builds (xdist workers,
parallel sessions).

Importing it: pytest puts the first directory above a test file that has no ``__init__.py`` on
``sys.path`` (default "prepend" import mode). ``tests/`` has no ``__init__.py`` while
``tests/images/`` has one, so from ``tests/conftest.py``, ``tests/support`` or any test module use::

    from images.build import ensure_images

(``test_images.py`` itself uses ``from .build import ensure_images``, which works whether or not
``tests/`` becomes a package; if it does, the absolute import becomes ``tests.images.build``.)

Command line: ``python tests/images/build.py`` builds (if needed) and prints the tags as JSON.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY_MIRROR = "http://deb.debian.org/debian-security"
DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
DEBOOTSTRAP = "/usr/sbin/debootstrap"
SYSTEM_CACHE_DIR = Path("/var/cache/testbed-images")

# Installed in the chroot after the minbase debootstrap, with services disabled.
PACKAGES: tuple[str, ...] = ("postgresql-15", "redis-server", "nats-server", "gosu", "tzdata")

# Bump to force a rebuild when the build procedure changes in a way the hash does not see.
RECIPE_VERSION = "1"

FILES_DIR = Path(__file__).resolve().parent / "files"
# source file in FILES_DIR -> (path in the rootfs, mode)
ROOTFS_FILES: dict[str, tuple[str, int]] = {
    "docker-entrypoint.sh": ("usr/local/bin/docker-entrypoint.sh", 0o755),
    "dragonfly-entrypoint.sh": ("usr/local/bin/dragonfly-entrypoint.sh", 0o755),
    "nats-server.conf": ("etc/nats/nats-server.conf", 0o644),
}

PG_BIN = "/usr/lib/postgresql/15/bin"
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# The debootstrapped rootfs is imported once as this repository; the images below derive from it
# with metadata-only changes (see _build_from_base).
BASE_REPO = "testbed-local/base"
BASE_TAG_PREFIX = SUITE

# image key -> (repository, tag prefix, Dockerfile-style metadata instructions)
IMAGES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "postgres": (
        "testbed-local/postgres",
        "15",
        (
            f"ENV LANG=C.UTF-8 PG_MAJOR=15 PGDATA=/var/lib/postgresql/data PATH={PG_BIN}:{BASE_PATH}",
            "VOLUME /var/lib/postgresql/data",
            'ENTRYPOINT ["docker-entrypoint.sh"]',
            "STOPSIGNAL SIGINT",
            "EXPOSE 5432",
            'CMD ["postgres"]',
        ),
    ),
    "dragonfly": (
        "testbed-local/dragonfly",
        "redis",
        (
            f"ENV LANG=C.UTF-8 PATH={BASE_PATH}",
            "WORKDIR /data",
            'ENTRYPOINT ["dragonfly-entrypoint.sh"]',
            "EXPOSE 6379",
            'CMD ["--logtostderr"]',
        ),
    ),
    "nats": (
        "testbed-local/nats",
        "2.9",
        (
            f"ENV LANG=C.UTF-8 PATH={BASE_PATH}",
            'ENTRYPOINT ["nats-server"]',
            "EXPOSE 4222 8222",
            'CMD ["--config", "/etc/nats/nats-server.conf"]',
        ),
    ),
}

# Written into the rootfs before the packages are installed.
POLICY_RC_D = "#!/bin/sh\n# testbed image build: never start services\nexit 101\n"
CREATECLUSTER_CONF = "create_main_cluster = false\n"
DPKG_EXCLUDES = "".join(
    f"path-exclude={p}\n"
    for p in (
        "/usr/share/doc/*",
        "/usr/share/man/*",
        "/usr/share/info/*",
        "/usr/share/locale/*",
        "/usr/share/lintian/*",
        "/usr/share/linda/*",
        # PostgreSQL's LLVM JIT (~150 MB): without llvmjit.so the server silently runs without JIT.
        "/usr/lib/*/libLLVM-*",
        "/usr/lib/*/libz3.so*",
        "/usr/lib/postgresql/*/lib/llvmjit*",
        "/usr/lib/postgresql/*/lib/bitcode/*",
    )
)
APT_CONF = 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\nAcquire::Languages "none";\n'
# Removed from the rootfs before it is tarred (relative to the rootfs).
STRIP_GLOBS: tuple[str, ...] = (
    "usr/share/doc/*",
    "usr/share/man/*",
    "usr/share/info/*",
    "usr/share/locale/*",
    "usr/share/i18n/*",
    "var/lib/apt/lists/*",
    "var/cache/apt/*",
    "var/cache/debconf/*-old",
    "var/log/*",
    "tmp/*",
    "var/tmp/*",
)


class ImageBuildError(RuntimeError):
    """Building the local images failed."""


def recipe_hash() -> str:
    """Hash of everything that determines the images' content and configuration."""
    digest = hashlib.sha256()
    recipe = {
        "version": RECIPE_VERSION,
        "suite": SUITE,
        "packages": PACKAGES,
        "images": IMAGES,
        "rootfs_files": ROOTFS_FILES,
        "policy_rc_d": POLICY_RC_D,
        "createcluster": CREATECLUSTER_CONF,
        "dpkg_excludes": DPKG_EXCLUDES,
        "apt_conf": APT_CONF,
        "strip": STRIP_GLOBS,
    }
    digest.update(json.dumps(recipe, sort_keys=True).encode())
    for name in sorted(ROOTFS_FILES):
        digest.update(name.encode() + b"\0")
        digest.update((FILES_DIR / name).read_bytes())
    return digest.hexdigest()


def image_tags(digest: str | None = None) -> dict[str, str]:
    """The tags :func:`ensure_images` produces, e.g. ``testbed-local/postgres:15-1a2b3c4d``."""
    short = (digest or recipe_hash())[:8]
    return {key: f"{repo}:{prefix}-{short}" for key, (repo, prefix, _) in IMAGES.items()}


def image_args(images: dict[str, str]) -> list[str]:
    """`--image SERVER=TAG` for each of `images` (what `ensure_images` returns, or part of it): testbed runs
    them instead of pulling the official images, since no registry is reachable."""
    return [arg for server, tag in images.items() for arg in ("--image", f"{server}={tag}")]


def ensure_images(*, log: bool = True) -> dict[str, str]:
    """Return ``{"postgres": tag, "dragonfly": tag, "nats": tag}``, building what is missing."""
    _check_docker()
    digest = recipe_hash()
    tags = image_tags(digest)
    if all(_image_exists(tag) for tag in tags.values()):
        return tags
    cache_root = _cache_root()
    cache_root.mkdir(parents=True, exist_ok=True)
    with locked(cache_root / ".lock"):
        missing = {key: tag for key, tag in tags.items() if not _image_exists(tag)}
        if not missing:  # another process built them while we waited
            return tags
        started = time.monotonic()
        base = f"{BASE_REPO}:{BASE_TAG_PREFIX}-{digest[:8]}"
        if not _image_exists(base):
            tarball = _rootfs_tarball(cache_root, digest, log=log)
            _run(["docker", "import", "--message", "testbed local base rootfs", str(tarball), base])
            _say(log, f"imported {base}")
        for key, tag in missing.items():
            _build_from_base(base, key, tag, digest)
            _say(log, f"built {tag}")
        _say(log, f"images ready in {time.monotonic() - started:.1f}s")
    return tags


# --------------------------------------------------------------------------- docker


def _check_docker() -> None:
    try:
        proc = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ImageBuildError(f"no Docker engine answers `docker version`: {exc}") from exc
    if proc.returncode != 0:
        raise ImageBuildError(f"no Docker engine answers `docker version`: {proc.stderr.strip()}")


def _image_exists(tag: str) -> bool:
    proc = subprocess.run(["docker", "image", "inspect", tag], capture_output=True, check=False)
    return proc.returncode == 0


def _build_from_base(base: str, key: str, tag: str, digest: str) -> None:
    """Derive ``tag`` from the local ``base`` image with metadata-only changes (never pulls).

    ``docker commit --change`` of a created (never started) container applies everything it can
    in one step; Docker 20.10 rejects STOPSIGNAL there (and in ``docker import``), so that one
    goes through a one-instruction classic ``docker build`` FROM the committed image.
    """
    repo, prefix, instructions = IMAGES[key]
    changes = [*instructions, f"LABEL org.testbed.recipe={digest} org.testbed.image={key}"]
    build_only = [c for c in changes if c.split(maxsplit=1)[0] == "STOPSIGNAL"]
    commit = ["docker", "commit", "--message", f"testbed local {key} image"]
    for change in changes:
        if change not in build_only:
            commit += ["--change", change]
    # `docker create` of an image with a VOLUME creates an anonymous volume: remove it with the
    # container (--volumes), or every build leaves one behind.
    container = _run(["docker", "create", base, "true"]).strip()
    try:
        _run([*commit, container, tag])
    finally:
        _run(["docker", "rm", "--force", "--volumes", container])
    if build_only:
        # The classic builder resolves FROM in the local image store only; BuildKit with a
        # docker-container builder would go to the registry. It removes its intermediate containers
        # with their volumes; --force-rm does so after a failed step too.
        env = {**os.environ, "DOCKER_BUILDKIT": "0"}
        dockerfile = "\n".join((f"FROM {tag}", *build_only)) + "\n"
        _run(["docker", "build", "--quiet", "--force-rm", "--tag", tag, "-"], env=env, stdin=dockerfile)
    # Convenience alias without the hash for humans (`docker run testbed-local/postgres:15`).
    _run(["docker", "tag", tag, f"{repo}:{prefix}"])


# --------------------------------------------------------------------------- rootfs


def _rootfs_tarball(cache_root: Path, digest: str, *, log: bool) -> Path:
    """Return the cached rootfs tarball for ``digest``, debootstrapping it when missing."""
    final = cache_root / digest / "rootfs.tar"
    if final.is_file():
        _say(log, f"reusing cached rootfs {final}")
        return final
    # We hold the lock, so any other build directory was left behind by a killed build.
    for stale in cache_root.glob("*.build-*"):
        _remove_tree(stale)
    work = cache_root / f"{digest}.build-{os.getpid()}"
    work.mkdir(parents=True)
    rootfs = work / "rootfs"
    try:
        started = time.monotonic()
        _build_rootfs(rootfs, log=log)
        _say(log, f"rootfs built in {time.monotonic() - started:.1f}s")
        _pack_rootfs(rootfs, final)
    finally:
        _remove_tree(work)
    return final


def _pack_rootfs(rootfs: Path, final: Path) -> None:
    """Strip what an image does not need (STRIP_GLOBS, the build host's resolv.conf) from ``rootfs``, tar it
    beside it and move the tarball to ``final``; every image's rootfs ends here."""
    # Unquoted $g: the shell expands each glob inside the rootfs.
    strip = 'cd "$1" && shift && for g; do rm -rf -- $g; done'
    _priv(["sh", "-c", strip, "strip", str(rootfs), *STRIP_GLOBS])
    _priv(["sh", "-c", ': > "$1"', "truncate", str(rootfs / "etc/resolv.conf")])
    tar_tmp = rootfs.parent / "rootfs.tar"
    _priv(
        [
            "tar",
            "--numeric-owner",
            "--exclude=./dev/*",
            "--exclude=./proc/*",
            "--exclude=./sys/*",
            "-C",
            str(rootfs),
            "-cf",
            str(tar_tmp),
            ".",
        ]
    )
    final.parent.mkdir(parents=True, exist_ok=True)
    _priv(["chmod", "0644", str(tar_tmp)])
    tar_tmp.replace(final)


@contextlib.contextmanager
def _unpacked_base(base_tarball: Path, rootfs: Path) -> Iterator[None]:
    """``rootfs`` made from the base image's tarball, ready for apt in a chroot: this host's resolv.conf, and
    the host's /dev and /proc lent for the block (the tarball has neither)."""
    _priv(["mkdir", "-p", str(rootfs)])
    _priv(["tar", "--numeric-owner", "-xpf", str(base_tarball), "-C", str(rootfs)])
    _write(rootfs, "etc/resolv.conf", Path("/etc/resolv.conf").read_text())
    _priv(["mount", "--bind", "/dev", str(rootfs / "dev")])
    _priv(["mount", "-t", "proc", "proc", str(rootfs / "proc")])
    try:
        yield
    finally:
        _priv(["umount", str(rootfs / "proc")])
        _priv(["umount", str(rootfs / "dev")])


def _remove_tree(path: Path) -> None:
    """``rm -rf`` a build directory, first unmounting anything a killed debootstrap left in it."""
    prefix = str(path.resolve()) + "/"
    with Path("/proc/self/mounts").open() as mounts:
        targets = [line.split()[1] for line in mounts if line.split()[1].startswith(prefix)]
    for target in sorted(targets, key=len, reverse=True):
        _priv(["umount", "--lazy", target])
    _priv(["rm", "-rf", "--one-file-system", str(path)])


def _build_rootfs(rootfs: Path, *, log: bool) -> None:
    mirror, security = _debian_mirrors()
    if not Path(DEBOOTSTRAP).exists():
        raise ImageBuildError(f"{DEBOOTSTRAP} is missing: apt-get install debootstrap")
    argv = [DEBOOTSTRAP, "--variant=minbase", "--components=main"]
    if DEBIAN_KEYRING.exists():
        argv.append(f"--keyring={DEBIAN_KEYRING}")
    _say(log, f"debootstrap {SUITE} from {mirror}")
    _priv([*argv, SUITE, str(rootfs), mirror])

    sources = [f"deb {mirror} {SUITE} main", f"deb {mirror} {SUITE}-updates main"]
    if security:
        sources.append(f"deb {security} {SUITE}-security main")
    _write(rootfs, "etc/apt/sources.list", "\n".join(sources) + "\n")
    _write(rootfs, "usr/sbin/policy-rc.d", POLICY_RC_D, 0o755)
    _write(rootfs, "etc/postgresql-common/createcluster.conf", CREATECLUSTER_CONF)
    _write(rootfs, "etc/dpkg/dpkg.cfg.d/testbed-excludes", DPKG_EXCLUDES)
    _write(rootfs, "etc/apt/apt.conf.d/90testbed", APT_CONF)

    _say(log, f"apt-get install {' '.join(PACKAGES)}")
    _chroot(rootfs, ["apt-get", "update", "-qq"])
    _chroot(rootfs, ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES])
    _chroot(rootfs, ["apt-get", "clean"])

    for name, (dest, mode) in ROOTFS_FILES.items():
        _write(rootfs, dest, (FILES_DIR / name).read_text(), mode)
    _priv(["ln", "-sfn", "etc/nats/nats-server.conf", str(rootfs / "nats-server.conf")])
    _chroot(
        rootfs,
        [
            "sh",
            "-euc",
            "install -d -m 0755 /data /data/jetstream /docker-entrypoint-initdb.d\n"
            "install -d -o postgres -g postgres -m 3777 /var/run/postgresql\n"
            "install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data\n",
        ],
    )


def _debian_mirrors() -> tuple[str, str | None]:
    """The Debian mirror (and security mirror) apt uses on this host, with defaults elsewhere."""
    env_mirror = os.environ.get("TESTBED_DEBIAN_MIRROR")
    if env_mirror:
        return env_mirror, os.environ.get("TESTBED_DEBIAN_SECURITY_MIRROR") or None
    main: str | None = None
    security: str | None = None
    for uri, suites in _apt_sources():
        if "debian" not in uri:
            continue
        if main is None and SUITE in suites:
            main = uri
        if security is None and f"{SUITE}-security" in suites:
            security = uri
    if main is None:  # not a Debian host (e.g. an Ubuntu CI runner)
        return DEFAULT_MIRROR, DEFAULT_SECURITY_MIRROR
    return main, security


def _apt_sources() -> Iterator[tuple[str, set[str]]]:
    """Yield ``(uri, suites)`` for each deb source in /etc/apt (one-line and deb822 formats)."""
    apt = Path("/etc/apt")
    files = [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*"))]
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields: dict[str, str] = {}
                for line in stanza.splitlines():
                    if line.startswith("#") or ":" not in line:
                        continue
                    key, _, value = line.partition(":")
                    fields[key.strip().lower()] = value.strip()
                if "deb" not in fields.get("types", "").split():
                    continue
                if fields.get("enabled", "yes").lower() == "no":
                    continue
                suites = set(fields.get("suites", "").split())
                for uri in fields.get("uris", "").split():
                    yield uri.rstrip("/"), suites
        elif path.suffix == ".list":
            for raw in text.splitlines():
                line = re.sub(r"\[[^]]*\]", "", raw.split("#", 1)[0]).split()
                if len(line) >= 3 and line[0] == "deb":
                    yield line[1].rstrip("/"), {line[2]}


# --------------------------------------------------------------------------- helpers


def _say(enabled: bool, message: str) -> None:
    if enabled:
        print(f"testbed-images: {message}", file=sys.stderr, flush=True)


def _run(argv: Sequence[str], *, env: dict[str, str] | None = None, stdin: str | None = None) -> str:
    proc = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr).strip()
        tail = "\n".join(output.splitlines()[-40:])
        raise ImageBuildError(f"command failed ({proc.returncode}): {' '.join(argv)}\n{tail}")
    return proc.stdout


def _priv(argv: Sequence[str], *, env: dict[str, str] | None = None) -> None:
    """Run ``argv`` as root (through ``sudo -n`` when we are not root)."""
    if os.geteuid() == 0:
        _run(argv, env=env)
        return
    prefix = ["sudo", "-n"]
    if env:
        prefix += ["env", *(f"{k}={v}" for k, v in env.items())]
    _run([*prefix, *argv])


def _chroot(rootfs: Path, argv: Sequence[str]) -> None:
    env = {
        "PATH": BASE_PATH,
        "LANG": "C.UTF-8",
        "HOME": "/root",
        "DEBIAN_FRONTEND": "noninteractive",
        "DEBCONF_NONINTERACTIVE_SEEN": "true",
    }
    _priv(["chroot", str(rootfs), *argv], env=env)


def _write(rootfs: Path, relpath: str, content: str, mode: int = 0o644) -> None:
    """Write a root-owned file into the (root-owned) rootfs."""
    dest = rootfs / relpath
    script = 'mkdir -p "$(dirname "$1")" && cat > "$1" && chmod "$2" "$1"'
    argv = ["sh", "-c", script, "write", str(dest), f"{mode:o}"]
    if os.geteuid() != 0:
        argv = ["sudo", "-n", *argv]
    proc = subprocess.run(argv, input=content, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ImageBuildError(f"writing {dest} failed: {proc.stderr.strip()}")


def _cache_root() -> Path:
    override = os.environ.get("TESTBED_IMAGES_CACHE")
    if override:
        return Path(override)
    if os.geteuid() == 0:
        return SYSTEM_CACHE_DIR
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "testbed-images"


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def main() -> int:
    started = time.monotonic()
    try:
        tags = ensure_images()
    except ImageBuildError as exc:
        print(f"testbed-images: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(tags, indent=2))
    print(f"testbed-images: done in {time.monotonic() - started:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
