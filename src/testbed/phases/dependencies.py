"""The dependencies phase: the service's own dependencies installed into an isolated virtualenv (uv, pip
or Poetry), reused while its inputs are unchanged and locked against two concurrent installs."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from testbed.config.service import ServiceConfig
from testbed.core import installers, supervisor
from testbed.core.errors import ExitCode, TestbedError
from testbed.core.venv_cache import READY_MARK, cache_root, locked
from testbed.run.outcome import DependenciesReady
from testbed.run.store import RunState

# What a testbed run needs inside the service's environment, whatever the service pins.
RUNNER_PACKAGES = (
    "pytest>=8,<9",
    "pytest-cov>=5,<8",
    "pytest-timeout>=2.3,<3",
    "pytest-split>=0.10,<1",
    "pytest-xdist>=3.5,<4",
)


_INPUTS = ("pyproject.toml", "poetry.lock", "requirements.txt", "requirements-dev.txt", "setup.py", "setup.cfg")


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


def _run(
    argv: list[str], cwd: Path, env: dict[str, str], what: str, state: RunState | None, *, check: bool = True
) -> None:
    if state is None:
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=False)
        rc, out, err = done.returncode, done.stdout, done.stderr
    else:  # a run's install: supervised, recorded, marked, so an interrupt leaves no pip (and no cache lock)
        rc, out, err = supervisor.run(
            argv,
            state=state,
            run_id=state.runtime_dir.name,
            what=f"dependencies: {what}",
            deadline=0,
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    if rc != 0 and check:
        text = err.decode(errors="replace").strip() or out.decode(errors="replace").strip()
        lines = text.splitlines() or ["no output"]
        raise TestbedError(f"dependencies: {what} failed (exit {rc}): {lines[-1]}", ExitCode.CONFIG)


def ensure(config: ServiceConfig, state: RunState | None = None) -> tuple[Path, bool]:
    """The Python to run the service's tests with, and whether it was reused from the cache."""
    mode = install_mode(config)
    if mode == "none":
        return Path(sys.executable), True
    venv = cache_root() / f"{config.name}-{fingerprint(config, mode)}"
    venv.parent.mkdir(parents=True, exist_ok=True)
    python = venv / "bin" / "python"
    with locked(venv, wait=True):
        if (venv / READY_MARK).is_file():
            os.utime(venv / READY_MARK)  # in use: gc keeps virtualenvs used within VENV_TTL
            return python, True
        shutil.rmtree(venv, ignore_errors=True)
        try:
            _run(installers.venv_argv(venv), config.directory, dict(os.environ), "venv", state)
            env = {k: v for k, v in os.environ.items() if not k.startswith(("POETRY_", "PIP_REQUIRE"))}
            env |= {
                "VIRTUAL_ENV": str(venv),
                "PATH": f"{venv}/bin:{env.get('PATH', '')}",
                "POETRY_VIRTUALENVS_CREATE": "false",
                "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            }
            if mode == "poetry":
                poetry = [installers.poetry(), "install", "--no-interaction", "--no-ansi"]
                _run(poetry, config.directory, env, "poetry install", state)
            elif mode == "pip":
                requirements: list[str] = []
                if (config.directory / "requirements.txt").is_file():
                    requirements += ["-r", "requirements.txt"]
                if (config.directory / "pyproject.toml").is_file() or (config.directory / "setup.py").is_file():
                    requirements += ["-e", "."]
                _run(installers.pip_install_argv(python, *requirements), config.directory, env, "pip install", state)
            else:
                _run(["/bin/sh", "-c", mode], config.directory, env, f"install command {mode!r}", state)
            _run(
                installers.pip_install_argv(python, *RUNNER_PACKAGES),
                config.directory,
                env,
                "pip install of pytest, pytest-cov, pytest-timeout, pytest-split, pytest-xdist",
                state,
            )
            # Bytecode once, here: uv and Poetry install none, and the tests run with PYTHONDONTWRITEBYTECODE
            # (no __pycache__ in the service's folder), so every test process (each pytest-xdist worker, each
            # process a test starts) would compile every library it imports from source. Best effort: a file
            # that does not compile (test data in some packages) only stays uncompiled.
            compileall = [str(python), "-m", "compileall", "-q", "-j", "0", str(venv / "lib")]
            _run(compileall, config.directory, env, "compileall", state, check=False)
        except BaseException:
            shutil.rmtree(venv, ignore_errors=True)
            raise
        (venv / READY_MARK).touch()
    return python, False


def install_dependencies(run_id: str) -> DependenciesReady:
    """Install the service's dependencies (cached) and record the interpreter to test with."""
    state = RunState.find(run_id)
    config = state.load().service_config()

    python, cached = ensure(config, state)
    with state.update() as current:
        current["python"] = str(python)
    return DependenciesReady(str(python), cached)
