"""The cache of services' virtualenvs (testbed's cache folder): each ready once its install finished, used
under a lock, and pruned when unused for a week."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from testbed.core import installers

VENV_TTL = 7 * 24 * 3600  # gc removes a service virtualenv unused this long


_HALF_BUILT_TTL = 600  # a virtualenv without its ready mark (a killed install's), untouched this long


READY_MARK = ".testbed-ready"  # written when the install finished; its time is the venv's last use


def cache_root() -> Path:
    return installers.cache_home() / "venvs"


@contextlib.contextmanager
def locked(venv: Path, *, wait: bool) -> Iterator[bool]:
    """The virtualenv's install lock (yields False when `wait` is off and someone holds it). gc removes a lock
    file with its virtualenv while holding it, so a lock taken on a file no longer at that path is retried."""
    path = venv.parent / f"{venv.name}.lock"
    while True:
        with path.open("a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                current = path.stat().st_ino
            except FileNotFoundError:
                current = None
            if current == os.fstat(lock.fileno()).st_ino:
                yield True
                return


def prune(in_use: Iterable[Path], now: float | None = None) -> list[Path]:
    """Remove the cached virtualenvs unused for VENV_TTL (their ready mark's time, refreshed at each reuse),
    and half-built ones a killed install left; never one a run that is up tests with (`in_use`), nor one
    being installed (its lock is held). Returns the removed folders."""
    now = time.time() if now is None else now
    keep = {Path(path).resolve() for path in in_use}
    root = cache_root()
    removed = []
    for venv in sorted(root.iterdir()) if root.is_dir() else ():
        if not venv.is_dir() or venv.is_symlink() or venv.resolve() in keep or not _unused(venv, now):
            continue
        with locked(venv, wait=False) as ours:
            if not ours or not _unused(venv, now):  # being installed, or reused since the first look
                continue
            shutil.rmtree(venv, ignore_errors=True)
            (venv.parent / f"{venv.name}.lock").unlink(missing_ok=True)  # still held: see locked
        removed.append(venv)
    return removed


def _unused(venv: Path, now: float) -> bool:
    mark = venv / READY_MARK
    try:
        return now - mark.stat().st_mtime > VENV_TTL
    except FileNotFoundError:
        try:
            return now - venv.stat().st_mtime > _HALF_BUILT_TTL
        except FileNotFoundError:
            return False
