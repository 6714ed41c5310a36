"""Images for the servers the declared-server tests declare (tests/e2e/test_declared_servers.py), built like
the others without any registry:

* ``testbed-local/memcached:1.6-<hash8>``: Debian's memcached, ENTRYPOINT ``memcached``, CMD
  ``-u memcache -p 11211 -U 0`` (listens on every interface). EXPOSE 11211.
* ``testbed-local/moto:5-<hash8>``: moto's server from the package index (wheels built on this machine,
  installed offline into ``/opt/moto`` with Debian's python3), ENTRYPOINT ``moto_server``, CMD
  ``-H 0.0.0.0 -p 5000``. EXPOSE 5000.

Both derive from one rootfs: :mod:`build`'s cached bookworm rootfs with memcached and python3 added in a
chroot, imported once and given each image's metadata with ``docker commit --change``. Cached and locked
like the others (same cache folder and lock); tags embed a hash of the recipe.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

if __package__:
    from . import build, sshd
else:  # pragma: no cover - run as a script
    import build  # type: ignore[no-redef]
    import sshd  # type: ignore[no-redef]

RECIPE_VERSION = "1"
PACKAGES: tuple[str, ...] = ("memcached", "python3", "python3-venv")
MOTO = "moto[server]==5.2.5"
BASE_REPO = "testbed-local/declared-base"
IMAGES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "memcached": ("testbed-local/memcached", "1.6", (
        f"ENV LANG=C.UTF-8 PATH={build.BASE_PATH}",
        'ENTRYPOINT ["memcached"]',
        'CMD ["-u", "memcache", "-p", "11211", "-U", "0"]',
        "EXPOSE 11211",
    )),
    "moto": ("testbed-local/moto", "5", (
        f"ENV LANG=C.UTF-8 PATH=/opt/moto/bin:{build.BASE_PATH}",
        'ENTRYPOINT ["moto_server"]',
        'CMD ["-H", "0.0.0.0", "-p", "5000"]',
        "EXPOSE 5000",
    )),
}  # fmt: skip


def recipe_hash() -> str:
    recipe = {"base": build.recipe_hash(), "version": RECIPE_VERSION, "packages": PACKAGES, "moto": MOTO,
              "images": IMAGES}  # fmt: skip
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


def ensure_declared_images(*, log: bool = True) -> dict[str, str]:
    """``{"memcached": tag, "moto": tag}``, building what is missing."""
    build._check_docker()
    digest = recipe_hash()
    tags = {key: f"{repo}:{prefix}-{digest[:8]}" for key, (repo, prefix, _) in IMAGES.items()}
    if all(build._image_exists(tag) for tag in tags.values()):
        return tags
    wheels = sshd.ensure_wheelhouse([MOTO], log=log)  # outside the lock: it takes the lock itself
    cache_root = build._cache_root()
    with build.locked(cache_root / ".lock"):
        started = time.monotonic()
        base = f"{BASE_REPO}:bookworm-{digest[:8]}"
        if not build._image_exists(base):
            tarball = _tarball(cache_root, digest, wheels, log=log)
            build._run(["docker", "import", "--message", "testbed declared-server images", str(tarball), base])
        for key, tag in tags.items():
            if build._image_exists(tag):
                continue
            repo, prefix, instructions = IMAGES[key]
            commit = ["docker", "commit", "--message", f"testbed local {key} image"]
            for change in (*instructions, f"LABEL org.testbed.recipe={digest} org.testbed.image={key}"):
                commit += ["--change", change]
            container = build._run(["docker", "create", base, "true"]).strip()
            try:
                build._run([*commit, container, tag])
            finally:
                build._run(["docker", "rm", "--force", "--volumes", container])
            build._run(["docker", "tag", tag, f"{repo}:{prefix}"])
            build._say(log, f"built {tag}")
        build._say(log, f"declared-server images ready in {time.monotonic() - started:.1f}s")
    return tags


def _tarball(cache_root: Path, digest: str, wheels: Path, *, log: bool) -> Path:
    final = cache_root / f"declared-{digest}" / "rootfs.tar"
    if final.is_file():
        return final
    base = build._rootfs_tarball(cache_root, build.recipe_hash(), log=log)
    work = cache_root / f"declared-{digest[:16]}.work-{os.getpid()}"
    rootfs = work / "rootfs"
    try:
        with build._unpacked_base(base, rootfs):
            build._priv(["mkdir", "-p", str(rootfs / "tmp" / "wheels")])
            build._priv(["sh", "-c", 'cp "$1"/*.whl "$2"/', "copy", str(wheels), str(rootfs / "tmp" / "wheels")])
            build._say(log, f"declared-server images: install {' '.join(PACKAGES)} and {MOTO}")
            build._chroot(rootfs, ["apt-get", "update", "-qq"])
            build._chroot(rootfs, ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES])
            build._chroot(rootfs, ["apt-get", "clean"])
            build._chroot(rootfs, ["python3", "-m", "venv", "/opt/moto"])
            build._chroot(rootfs, ["/opt/moto/bin/pip", "install", "-q", "--no-index", "--find-links", "/tmp/wheels",
                                   "--disable-pip-version-check", MOTO])  # fmt: skip
        build._pack_rootfs(rootfs, final)
    finally:
        build._remove_tree(work)
    return final


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(ensure_declared_images()))
