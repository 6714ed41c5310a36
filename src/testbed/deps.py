"""The service's own dependencies, installed into an isolated virtualenv that is reused while its inputs
are unchanged and locked against two concurrent installs."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from testbed.config import ServiceConfig
from testbed.errors import ExitCode, TestbedError

# What a testbed run needs inside the service's environment, whatever the service pins.
RUNNER_PACKAGES = ("pytest>=8,<9", "pytest-cov>=5,<8", "pytest-timeout>=2.3,<3", "pytest-split>=0.10,<1")
_INPUTS = ("pyproject.toml", "poetry.lock", "requirements.txt", "requirements-dev.txt", "setup.py", "setup.cfg")


def cache_root() -> Path:
    explicit = os.environ.get("TESTBED_CACHE_DIR")
    base = Path(explicit) if explicit else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "testbed"
    return base / "venvs"


def install_mode(config: ServiceConfig) -> str:
    if config.install != "auto":
        return config.install
    pyproject = config.directory / "pyproject.toml"
    if (config.directory / "poetry.lock").is_file() or (
        pyproject.is_file() and "[tool.poetry" in pyproject.read_text(encoding="utf-8")
    ):
        return "poetry"
    if pyproject.is_file() or (config.directory / "requirements.txt").is_file():
        return "pip"
    return "none"


def fingerprint(config: ServiceConfig, mode: str) -> str:
    # The folder is part of it: Poetry installs the service itself in editable mode, pointing there.
    digest = hashlib.sha256(f"{mode}\0{sys.version}\0{RUNNER_PACKAGES}\0{config.directory}".encode())
    for name in _INPUTS:
        path = config.directory / name
        if path.is_file():
            digest.update(name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _run(argv: list[str], cwd: Path, env: dict[str, str], what: str) -> None:
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        lines = (result.stderr.strip() or result.stdout.strip()).splitlines() or ["no output"]
        raise TestbedError(f"dependencies: {what} failed (exit {result.returncode}): {lines[-1]}", ExitCode.CONFIG)


def _poetry() -> str:
    beside = Path(sys.executable).parent / "poetry"
    found = str(beside) if beside.is_file() else shutil.which("poetry")
    if not found:
        raise TestbedError(
            "dependencies: the service uses Poetry but no poetry is installed; "
            "pip install poetry, or set install: pip in testbed.yml",
            ExitCode.CONFIG,
        )
    return found


def ensure(config: ServiceConfig) -> tuple[Path, bool]:
    """The Python to run the service's tests with, and whether it was reused from the cache."""
    mode = install_mode(config)
    if mode == "none":
        return Path(sys.executable), True
    venv = cache_root() / f"{config.name}-{fingerprint(config, mode)}"
    venv.parent.mkdir(parents=True, exist_ok=True)
    python = venv / "bin" / "python"
    with (venv.parent / f"{venv.name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (venv / ".testbed-ready").is_file():
            return python, True
        shutil.rmtree(venv, ignore_errors=True)
        try:
            _run([sys.executable, "-m", "venv", str(venv)], config.directory, dict(os.environ), "venv")
            env = {k: v for k, v in os.environ.items() if not k.startswith(("POETRY_", "PIP_REQUIRE"))}
            env |= {
                "VIRTUAL_ENV": str(venv),
                "PATH": f"{venv}/bin:{env.get('PATH', '')}",
                "POETRY_VIRTUALENVS_CREATE": "false",
                "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            }
            if mode == "poetry":
                _run([_poetry(), "install", "--no-interaction", "--no-ansi"], config.directory, env, "poetry install")
            elif mode == "pip":
                argv = [str(python), "-m", "pip", "install", "-q"]
                if (config.directory / "requirements.txt").is_file():
                    argv += ["-r", "requirements.txt"]
                if (config.directory / "pyproject.toml").is_file() or (config.directory / "setup.py").is_file():
                    argv += ["-e", "."]
                _run(argv, config.directory, env, "pip install")
            else:
                _run(["/bin/sh", "-c", mode], config.directory, env, f"install command {mode!r}")
            _run(
                [str(python), "-m", "pip", "install", "-q", *RUNNER_PACKAGES],
                config.directory,
                env,
                "pip install of pytest, pytest-cov, pytest-timeout, pytest-split",
            )
        except BaseException:
            shutil.rmtree(venv, ignore_errors=True)
            raise
        (venv / ".testbed-ready").touch()
    return python, False
