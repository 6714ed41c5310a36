"""Files testbed writes into a run's folders: never through a symbolic link, whole or not at all, and a full
filesystem named in one line.

A test runs as the user running testbed, so it can replace the run folder, or anything in it, with a link
(to /etc/apt, say) between two of testbed's writes. Every folder from the given root down (the run folder,
the run's runtime folder) is opened with O_NOFOLLOW, each relative to the descriptor of the one above it,
and files are created with O_NOFOLLOW inside them: a link is refused, never followed, even one that appears
between two calls. A rewritten file is written beside its old self and renamed over it, so a write that
fails (the disk filled up) leaves the old file as it was, never half a file.

ENOSPC (or EDQUOT) from any such write is `DiskFull`: one line naming the filesystem, its size and the path
being written, exit 12 (the host cannot provide what the run needs, as with any provisioning failure)."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from testbed.core.errors import ExitCode, TestbedError
from testbed.core.paths import runtime_root

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FULL = (errno.ENOSPC, errno.EDQUOT)
NEARLY_FULL = 64 * 1024  # fewer bytes free than this: too little for testbed's own files (state, reports)


class LinkRefused(TestbedError):
    """A folder or file testbed was about to write through is a symbolic link."""

    def __init__(self, path: Path) -> None:
        try:
            target = f" (to {path.readlink()})"
        except OSError:
            target = ""
        super().__init__(
            f"{path} is a symbolic link{target}: testbed follows no link in a run's folders, so nothing was "
            "written or scrubbed through it; remove the link",
            ExitCode.CONFIG,
        )
        self.details["kind"] = "link"


class DiskFull(TestbedError):
    """A write testbed made failed with ENOSPC or EDQUOT."""

    def __init__(
        self, path: Path, error: int = errno.ENOSPC, message: str | None = None, doing: str = "writing"
    ) -> None:
        self.summary = f"{os.strerror(error).lower()}: {describe_filesystem(path)} is full"  # what a log says
        super().__init__(
            message
            or f"{self.summary} ({doing} {path}); free space there, or point testbed at a larger filesystem "
            "(--run-folder, TESTBED_RUNTIME_DIR)",
            ExitCode.PROVISIONING,
        )
        self.path = path
        self.details["kind"] = "disk_full"


def failure(exc: OSError, path: Path) -> Exception:
    """DiskFull for a full disk or quota, otherwise the error itself."""
    return DiskFull(path, exc.errno or errno.ENOSPC) if exc.errno in _FULL else exc


def disk_full_of(exc: OSError) -> DiskFull | None:
    """A DiskFull for an ENOSPC/EDQUOT that did not come through this module (the path it names, else the
    runtime folder, where most of testbed's own files go); None for any other error."""
    if exc.errno not in _FULL:
        return None
    if exc.filename:
        return DiskFull(Path(exc.filename), exc.errno or errno.ENOSPC)

    return DiskFull(runtime_root(), exc.errno or errno.ENOSPC, doing="writing under")


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, DiskFull) or (isinstance(exc, OSError) and exc.errno in _FULL)


def _existing(path: Path) -> Path:
    return next((p for p in (path, *path.parents) if os.path.lexists(p)), Path("/"))


def _mount_of(path: Path) -> tuple[str, str]:
    """The mount point holding `path` and its filesystem type, from /proc/self/mountinfo."""
    existing = str(_existing(path.absolute()))
    try:
        device = Path(existing).stat().st_dev
        lines = Path("/proc/self/mountinfo").read_text(encoding="utf-8").splitlines()
    except OSError:
        return existing, "?"
    wanted = f"{os.major(device)}:{os.minor(device)}"
    best: tuple[str, str] | None = None
    for line in lines:
        fields = line.split()
        if len(fields) < 10 or fields[2] != wanted or "-" not in fields:
            continue
        mount = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), fields[4])  # mountinfo writes a space as \040
        inside = existing == mount or existing.startswith(mount.rstrip("/") + "/")
        if inside and (best is None or len(mount) >= len(best[0])):
            best = (mount, fields[fields.index("-") + 1])
    return best or (existing, "?")


def _size(count: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"  # pragma: no cover - the loop returns


def describe_filesystem(path: Path) -> str:
    """`the filesystem at /x (tmpfs, 2.0 MiB)`: where `path` lives."""
    mount, kind = _mount_of(path)
    try:
        info = os.statvfs(mount)
        size = f", {_size(info.f_blocks * info.f_frsize)}"
    except OSError:
        size = ""
    return f"the filesystem at {mount} ({kind}{size})"


def free_bytes(path: Path) -> int | None:
    """What this process may still write on `path`'s filesystem (root may use the reserved blocks too)."""
    try:
        info = os.statvfs(_existing(path.absolute()))
    except OSError:
        return None
    return (info.f_bfree if os.geteuid() == 0 else info.f_bavail) * info.f_frsize


def full_filesystem(path: Path) -> DiskFull | None:
    """A DiskFull naming `path` when its filesystem has (nearly) no space left, else None."""
    free = free_bytes(path)
    return DiskFull(path, doing="holding") if free is not None and free < NEARLY_FULL else None


def _is_link(name: str, dir_fd: int | None) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _open_dir(name: str, dir_fd: int | None, shown: Path, create: bool) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        if not create:
            raise
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and _is_link(name, dir_fd):
            raise LinkRefused(shown) from None
        raise
    try:
        os.mkdir(name, 0o755, dir_fd=dir_fd)
    except FileExistsError:
        pass
    except OSError as exc:
        raise failure(exc, shown) from exc
    return _open_dir(name, dir_fd, shown, create=False)


def open_folder(path: Path, root: Path | None = None, *, create: bool = False) -> int:
    """A descriptor of folder `path`, following no symbolic link from `root` (default: `path` itself) down;
    `create` makes the folders missing below `root`. The caller closes it."""
    root = path if root is None else root
    parts = path.relative_to(root).parts
    fd = _open_dir(str(root), None, root, create=False)
    shown = root
    try:
        for part in parts:
            shown = shown / part
            inner = _open_dir(part, fd, shown, create)
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def folder(path: Path, root: Path | None = None, *, create: bool = False) -> Iterator[int]:
    fd = open_folder(path, root, create=create)
    try:
        yield fd
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write(path: Path, data: bytes | str, root: Path | None = None, mode: int = 0o644) -> None:
    """Write a whole file atomically (a temporary file renamed over it), following no link from `root`
    (default: the file's folder) down. A link at `path` itself is replaced, never followed."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with folder(path.parent, root if root is not None else path.parent, create=True) as dir_fd:
        replace_in(dir_fd, path.name, payload, mode, shown=path)


def replace_in(dir_fd: int, name: str, data: bytes, mode: int, shown: Path) -> None:
    """`name` in the folder `dir_fd` becomes `data`, whole: written beside it, then renamed over it."""
    tmp = f".{name}.{os.getpid()}.{threading.get_ident()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp, dir_fd=dir_fd)  # a killed writer's leftover
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)
        try:
            write_all(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise failure(exc, shown) from exc


def open_log_fd(path: Path, root: Path | None = None, *, append: bool = True) -> int:
    """A log file's descriptor, opened for writing (appended to, or emptied; readable, for what a capped log
    keeps of an earlier one), following no link from `root` (default: its folder) down, the file itself
    included."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_APPEND if append else os.O_TRUNC)
    with folder(path.parent, root if root is not None else path.parent, create=True) as dir_fd:
        try:
            return os.open(path.name, flags, 0o644, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise LinkRefused(path) from None
            raise failure(exc, path) from exc


def open_log(path: Path, root: Path | None = None, *, append: bool = True) -> BinaryIO:
    """open_log_fd, as a file object."""
    return os.fdopen(open_log_fd(path, root, append=append), "ab" if append else "wb")
