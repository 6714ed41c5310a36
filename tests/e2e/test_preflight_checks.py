"""Issue 13, item 11: what can be known before any server starts is refused then (exit 10, one line), and
a run's servers are not shared or pulled away: a run id in use, `testbed down` during `testbed test`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import PROJECT, clean_env, cli, waiting_test
from testbed.config.catalogue import load_catalogue
from testbed.config.service import load_service_config
from testbed.core.errors import ExitCode, TestbedError
from testbed.core.processes import ProcessIdentity
from testbed.phases import preflight
from testbed.run import guard
from testbed.run.store import RunState, all_runs


@pytest.fixture(autouse=True)
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private runtime root: these tests see only the runs they make, not other suites' runs."""
    root = tmp_path / "runtime"
    root.mkdir(mode=0o700)
    monkeypatch.setenv("TESTBED_RUNTIME_DIR", str(root))
    return root


def _runs_now() -> set[str]:
    return {state.runtime_dir.name for state in all_runs()}


def _refused(service: Path, tmp_path: Path, *extra: str) -> str:
    """`testbed run` is refused with exit 10 and one line, before any run exists."""
    before = _runs_now()
    env = clean_env(TESTBED_RUNTIME_DIR=os.environ["TESTBED_RUNTIME_DIR"])
    argv = ["--run-folder", str(tmp_path / "runs"), "--backend", "native", "--ports", "auto", *extra]
    result = cli("run", "--service", str(service), *argv, env=env)
    assert result.returncode == ExitCode.CONFIG, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("testbed: error: ")
    assert result.stdout == ""
    assert _runs_now() == before
    assert not (tmp_path / "runs").exists()
    return lines[0]


def _preflight(service: Path, tmp_path: Path) -> TestbedError:
    """The playbooks' preflight (ansible-playbook integration.yml without the wrapper) refuses the same."""
    before = _runs_now()
    with pytest.raises(TestbedError) as info:
        preflight.open_run(
            {
                "service_dir": str(service),
                "catalogue": load_catalogue(),
                "run_root": str(tmp_path / "runs"),
                "backend": "native",
                "ports": "auto",
            }
        )
    assert info.value.exit_code == ExitCode.CONFIG
    assert _runs_now() == before
    return info.value


# ------------------------------------------------------------------------------------------ test paths


def test_missing_tests_paths_are_named_before_anything_starts(service: Path, tmp_path: Path) -> None:
    config = service / "testbed.yml"
    config.write_text(
        config.read_text().replace("  paths: [tests]", "  paths: [tests, tests/test_servers.py::x, it, e2e/x.py]")
    )

    line = _refused(service, tmp_path)

    assert f"'tests.paths' 'it', 'e2e/x.py' not found in {service}" in line
    assert "test_servers.py" not in line  # a node id of a file that exists is fine
    assert "'tests.paths' 'it'" in str(_preflight(service, tmp_path))


# ---------------------------------------------------------------------------------------- exec limits


def test_an_env_value_over_the_per_string_limit_is_named(service: Path, tmp_path: Path) -> None:
    big = "x" * (128 * 1024)
    with (service / "testbed.yml").open("a") as config:
        config.write(f"env:\n  SMALL: '{{{{ postgres.url }}}}'\n  HUGE: '{{{{ postgres.url }}}}{big}'\n")

    line = _refused(service, tmp_path)

    assert "env.HUGE is " in line
    assert "over the kernel's 131072-byte limit for one exec string (MAX_ARG_STRLEN)" in line
    assert "SMALL" not in line
    assert "env.HUGE" in str(_preflight(service, tmp_path))


def test_an_environment_over_arg_max_is_refused(service: Path, tmp_path: Path) -> None:
    # Values each under the per-string limit that together exceed ARG_MAX (2 MiB with an 8 MiB stack).
    count = os.sysconf("SC_ARG_MAX") // (100 * 1024) + 2
    value = "y" * (100 * 1024)
    with (service / "testbed.yml").open("a") as config:
        config.write("env:\n" + "".join(f"  V{i}: '{value}'\n" for i in range(count)))

    line = _refused(service, tmp_path)

    assert f"over the exec limit of {os.sysconf('SC_ARG_MAX')} (getconf ARG_MAX; the largest is env.V" in line
    assert "MAX_ARG_STRLEN" not in line


# ---------------------------------------------------------------------------------------- migrations


def test_every_bad_migration_file_is_named_before_anything_starts(service: Path, tmp_path: Path) -> None:
    folder = service / "migrations"
    (folder / "0002_again.sql").write_text("SELECT 2;\n")
    (folder / "seed.sql").write_text("SELECT 1;\n")
    (folder / "0009_latin1.sql").write_bytes("SELECT 'caf\xe9';\n".encode("latin-1"))

    line = _refused(service, tmp_path)

    assert "migrations: " in line
    assert "duplicate migration version 2: 0002_again.sql and 0002_items_index.sql" in line
    assert "seed.sql: migration file names must start with a numeric version" in line
    assert "0009_latin1.sql: not valid UTF-8 (byte 11)" in line
    assert "0002_again.sql" in str(_preflight(service, tmp_path))


# ---------------------------------------------------------------------------------------- templating


def test_every_templating_problem_is_named_in_one_line(service: Path, tmp_path: Path) -> None:
    config = service / "testbed.yml"
    config.write_text(
        config.read_text().replace("  paths: [tests]", "  paths: [tests]\n  pytest_args: ['-k', '{{ postgres.port']")
        + "env:\n"
        "  FINE: '{{ postgres.url }}'\n"
        "  TWO: '{{ nope }}/{{ postgres.schema }}'\n"
        "  THREE: '{{ redis.url }}'\n"
    )

    line = _refused(service, tmp_path)

    assert "'env.TWO': cannot render '{{ nope }}/{{ postgres.schema }}': 'nope' is undefined, " in line
    assert "has no attribute 'schema'" in line
    assert "'env.THREE': cannot render '{{ redis.url }}': 'redis' is undefined" in line
    assert "'tests.pytest_args[1]': cannot render '{{ postgres.port': unexpected end of template" in line
    assert "FINE" not in line
    assert "(facts: dragonfly, nats, postgres)" in line


# ------------------------------------------------------------------------------------ runs in use


def _state(tmp_path: Path, run_id: str, service: Path, *, owner: int | None, lease: float | None) -> RunState:
    identity = ProcessIdentity.of(owner) if owner else None
    state = RunState.create(
        run_id,
        tmp_path / "runs-before" / run_id,
        identity,
        {"service": "basic", "config": load_service_config(service, load_catalogue()).as_dict(), "backend": "native"},
    )
    with state.update() as data:
        data["lease_until"] = time.time() + lease if lease else None
    return state


@pytest.mark.parametrize(
    ("owner", "lease", "expected"),
    [
        (True, None, "is in use by a running run of basic (pid "),
        (False, 3600.0, "is in use by the environment `testbed up` left for basic (lease until "),
    ],
    ids=["live-run", "up-environment"],
)
def test_a_run_id_in_use_is_refused(
    service: Path, tmp_path: Path, runtime: Path, owner: bool, lease: float | None, expected: str
) -> None:
    _state(tmp_path, "busy-run", service, owner=os.getpid() if owner else None, lease=lease)

    line = _refused(service, tmp_path, "--run-id", "busy-run")

    assert f"run id 'busy-run' {expected}" in line
    assert "leave --run-id out for a fresh one, or `testbed down --run-id busy-run` first" in line
    assert (runtime / "busy-run" / "state.json").is_file()


def test_down_refuses_while_testbed_test_runs_then_tears_down(service: Path, tmp_path: Path, runtime: Path) -> None:
    state = _state(tmp_path, "env-under-test", service, owner=None, lease=3600.0)
    env = clean_env(TESTBED_RUNTIME_DIR=str(runtime))

    with guard.testing(state):  # what `testbed test` holds while its tests run
        refused = cli("down", "--run-id", "env-under-test", env=env)
    down = cli("down", "--run-id", "env-under-test", env=env)

    assert refused.returncode == ExitCode.CONFIG, refused.stdout + refused.stderr
    assert refused.stderr.strip() == (
        "testbed: error: refusing to tear down env-under-test: `testbed test` (pid "
        f"{os.getpid()}) is running against it, and removing its servers now would break those tests halfway; "
        "let it finish (or stop it with Ctrl-C), then run `testbed down` again"
    )
    assert down.returncode == 0, down.stdout + down.stderr
    assert not (runtime / "env-under-test").exists()


def test_down_during_a_real_testbed_test_is_refused_and_the_tests_pass(service: Path, runs: Path) -> None:
    """End to end: `testbed up`, a `testbed test` whose test waits on a FIFO, `testbed down` meanwhile."""
    started, release = waiting_test(service)
    env = clean_env()  # the real runtime root: the server user cannot reach a private one under tmp_path
    up = cli("up", "--service", str(service), "--backend", "native", "--ports", "auto", "--run-folder", str(runs),
             env=env)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        tests = subprocess.Popen(
            [sys.executable, "-m", "testbed", "test", "--service", str(service)],
            cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        with started.open() as fifo:
            assert fifo.read() == "started"
        refused = cli("down", "--service", str(service), env=env)
        with release.open("w") as fifo:
            fifo.write("go")
        output, _ = tests.communicate(timeout=300)
    finally:
        down = cli("down", "--service", str(service), env=env)

    assert refused.returncode == ExitCode.CONFIG, refused.stdout + refused.stderr
    assert f"`testbed test` (pid {tests.pid}) is running against it" in refused.stderr
    assert tests.returncode == 0, output
    assert "✅ Tests: 5 passed" in output
    assert down.returncode == 0, down.stdout + down.stderr


def test_testbed_test_refuses_an_environment_being_torn_down(service: Path, tmp_path: Path, runtime: Path) -> None:
    state = _state(tmp_path, "env-going", service, owner=None, lease=3600.0)

    with guard.tearing_down(state):  # what `testbed down` holds while it tears down
        result = cli("test", "--service", str(service), env=clean_env(TESTBED_RUNTIME_DIR=str(runtime)))

    assert result.returncode == ExitCode.PROVISIONING, result.stdout + result.stderr
    assert result.stderr.strip() == (
        "testbed: error: environment env-going is being torn down by `testbed down`; "
        "start a new one with `testbed up`"
    )
