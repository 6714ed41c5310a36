"""The installers testbed uses for itself and for services' virtualenvs: uv when it can be had (several times
faster), pip otherwise; and Poetry, installed on demand into testbed's cache the first time a service needs it."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from testbed.core.errors import ExitCode, TestbedError

POETRY_REQUIREMENT = "poetry>=2.1,<3"
# TESTBED_INSTALLER=pip forces pip (the benchmark's "before", or a uv that misbehaves); auto prefers uv.
INSTALLER_VARIABLE = "TESTBED_INSTALLER"


def cache_home() -> Path:
    """testbed's own cache: service virtualenvs, the on-demand Poetry, the wheel the collections come from."""
    explicit = os.environ.get("TESTBED_CACHE_DIR")
    return Path(explicit) if explicit else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "testbed"


def uv() -> str | None:
    """The uv binary: beside this Python (`pip install uv`), on PATH, or the one ./bootstrap keeps in the cache."""
    choice = os.environ.get(INSTALLER_VARIABLE, "auto")
    if choice not in ("auto", "uv", "pip"):
        raise TestbedError(f"{INSTALLER_VARIABLE}={choice!r}: expected auto, uv or pip", ExitCode.CONFIG)
    if choice == "pip":
        return None
    for candidate in (Path(sys.executable).parent / "uv", cache_home() / "tools" / "uv" / "bin" / "uv"):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("uv")
    if found is None and choice == "uv":
        raise TestbedError(f"{INSTALLER_VARIABLE}=uv but no uv is installed; pip install uv", ExitCode.CONFIG)
    return found


def venv_argv(venv: Path) -> list[str]:
    # uv's venv takes milliseconds where `python -m venv` spends seconds in ensurepip; --seed keeps pip in it
    # for install commands and tests that call pip themselves.
    found = uv()
    if found:
        return [found, "venv", "--quiet", "--seed", "--python", sys.executable, str(venv)]
    return [sys.executable, "-m", "venv", str(venv)]


def pip_install_argv(python: Path, *arguments: str) -> list[str]:
    found = uv()
    if found:
        return [found, "pip", "install", "--quiet", "--python", str(python), *arguments]
    return [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *arguments]


def _check(argv: list[str], what: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        lines = (result.stderr.strip() or result.stdout.strip()).splitlines() or ["no output"]
        raise TestbedError(f"{what} failed (exit {result.returncode}): {lines[-1]}", ExitCode.CONFIG)


def poetry() -> str:
    """Poetry for a service that uses it: the user's own (beside this Python or on PATH), else testbed's copy,
    installed once into the cache (locked: concurrent runs wait for one install) and reused."""
    beside = Path(sys.executable).parent / "poetry"
    found = str(beside) if beside.is_file() else shutil.which("poetry")
    if found:
        return found
    key = hashlib.sha256(f"{POETRY_REQUIREMENT}\0{sys.version}".encode()).hexdigest()[:12]
    home = cache_home() / "tools" / f"poetry-{key}"
    home.parent.mkdir(parents=True, exist_ok=True)
    executable = home / "bin" / "poetry"
    with (home.parent / f"{home.name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (home / ".testbed-ready").is_file():
            return str(executable)
        shutil.rmtree(home, ignore_errors=True)
        try:
            _check(venv_argv(home), "dependencies: creating Poetry's virtualenv")
            _check(
                pip_install_argv(home / "bin" / "python", POETRY_REQUIREMENT),
                f"dependencies: installing Poetry ({POETRY_REQUIREMENT}; or pip install poetry beside testbed)",
            )
        except BaseException:
            shutil.rmtree(home, ignore_errors=True)
            raise
        (home / ".testbed-ready").touch()
    return str(executable)
