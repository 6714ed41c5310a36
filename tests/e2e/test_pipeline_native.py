"""The whole pipeline on the native backend, through ansible-playbook and through `testbed run`."""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

from support import PROJECT, cli, leftovers, playbook, run_folder_of, run_testbed
from testbed.backends import native
from testbed.core import paths
from testbed.phases import preflight, readiness, servers, teardown
from testbed.servers import dragonfly

pytestmark = pytest.mark.slow


def test_wrapper_runs_the_whole_pipeline_and_leaves_nothing(service: Path, runs: Path) -> None:
    result = run_testbed(service, runs)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for line in ("✅ PostgreSQL: Running on port", "✅ Dragonfly: Running on port", "✅ NATS: Running on port",
                 "✅ Migrations: Applied successfully (2 new)", "✅ Tests: 4 passed", "✅ Coverage: 100%"):
        assert line in out
    # The stand-in notice shows exactly when this machine has no dragonfly binary (native.binaries decides).
    _, notices = native.binaries({"dragonfly": {}})
    assert (dragonfly.STAND_IN in out) == (dragonfly.STAND_IN in notices), out
    folder = run_folder_of(out)
    assert folder.parent == runs
    for name in ("junit.xml", "coverage.xml", "htmlcov/index.html", "report.json", "state.json",
                 "logs/postgres.log", "diagnostics/readiness.json", "diagnostics/config.json"):
        assert (folder / name).is_file(), name
    report = json.loads((folder / "report.json").read_text())
    assert report["exit_code"] == 0 and report["tests"]["passed"] == 4
    assert [p["name"] for p in report["phases"]][:1] == ["preflight"]
    assert leftovers(folder.name) == []


def test_playbook_and_wrapper_agree(service: Path, runs: Path) -> None:
    via_playbook = playbook("integration.yml", {"testbed_service": str(service), "testbed_backend": "native",
                                                "testbed_ports": "auto", "testbed_run_root": str(runs)})
    assert via_playbook.returncode == 0, via_playbook.stdout[-3000:]
    folder_a = run_folder_of(via_playbook.stdout)
    via_wrapper = run_testbed(service, runs)
    assert via_wrapper.returncode == 0, via_wrapper.stdout
    folder_b = run_folder_of(via_wrapper.stdout)
    assert folder_a != folder_b
    for folder in (folder_a, folder_b):
        junit = (folder / "junit.xml").read_text()
        assert 'tests="4"' in junit and 'failures="0"' in junit
        assert leftovers(folder.name) == []


def test_failing_test_gives_pytest_exit_code_and_tears_down(service: Path, runs: Path) -> None:
    (service / "tests" / "test_servers.py").write_text(
        (service / "tests" / "test_servers.py").read_text() + "\n\ndef test_fails():\n    assert 1 == 2\n")
    result = run_testbed(service, runs)
    assert result.returncode == 1, result.stdout
    assert "❌ Tests: 4 passed, 1 failed" in result.stdout
    assert "✅ Teardown: nothing left behind" in result.stdout
    assert leftovers(run_folder_of(result.stdout).name) == []


def test_no_tests_collected_is_a_failure(service: Path, runs: Path) -> None:
    result = run_testbed(service, runs, "--", "-k", "no_such_test_anywhere")
    assert result.returncode == 5, result.stdout
    assert "no tests collected" in result.stdout


def test_broken_migration_names_file_and_line(service: Path, runs: Path) -> None:
    (service / "migrations" / "0003_broken.sql").write_text(
        "-- a comment\n\nALTER TABLE items\n  ADD COLUMN x SELEC;\n")
    result = run_testbed(service, runs)
    assert result.returncode == 13, result.stdout
    assert "0003_broken.sql line 4" in result.stdout
    assert leftovers(run_folder_of(result.stdout).name) == []


def test_server_that_never_becomes_ready(service: Path, runs: Path) -> None:
    # Outside pytest's 0700 temp root: the unprivileged server user must be able to run these.
    bindir = Path(tempfile.mkdtemp(prefix="testbed-fake-pg-"))
    bindir.chmod(0o755)
    request_cleanup = bindir
    (bindir / "initdb").symlink_to("/usr/lib/postgresql/15/bin/initdb")
    # A "postgres" that starts, logs, and never listens: readiness must time out, naming it.
    (bindir / "postgres").write_text("#!/bin/sh\necho 'fake postgres: starting and never listening'\n"
                                     "case \"$1\" in --single) cat >/dev/null; exit 0;; esac\nexec sleep 300\n")
    (bindir / "postgres").chmod(0o755)
    env = dict(os.environ, TESTBED_PG_BINDIR=str(bindir))
    env.pop("GITHUB_ACTIONS", None)
    result = cli("run", "--service", str(service), "--backend", "native", "--ports", "auto",
                     "--run-folder", str(runs), "--readiness-timeout", "3", env=env)
    assert result.returncode == 12, result.stdout
    assert "❌ Readiness: PostgreSQL not ready on port" in result.stdout
    assert "fake postgres: starting and never listening" in result.stdout
    assert leftovers(run_folder_of(result.stdout).name) == []
    shutil.rmtree(request_cleanup)


@pytest.mark.usefixtures("fixed_ports")
def test_fixed_port_taken_fails_in_preflight_naming_holder(service: Path, runs: Path) -> None:
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        config = service / "testbed.yml"
        config.write_text(config.read_text().replace("    user: basic", f"    port: {port}\n    user: basic"))
        result = cli("run", "--service", str(service), "--backend", "native", "--run-folder", str(runs))
    assert result.returncode == 12, result.stdout + result.stderr
    assert f"PostgreSQL port {port} is taken by python" in result.stdout
    assert "--ports auto" in result.stdout


def test_down_playbook_cleans_up_after_a_killed_playbook(service: Path, runs: Path) -> None:
    up = playbook("playbooks/up.yml", {"testbed_service": str(service), "testbed_backend": "native",
                                       "testbed_ports": "auto", "testbed_run_root": str(runs),
                                       "testbed_run_id": "killed-run-check"})
    assert up.returncode == 0, up.stdout[-3000:]
    assert any("postgres" in line for line in leftovers("killed-run-check"))
    down = playbook("playbooks/down.yml", {"testbed_run_id": "killed-run-check"})
    assert down.returncode == 0, down.stdout[-3000:]
    assert leftovers("killed-run-check") == []


def test_project_ansible_cfg_is_used_by_the_wrapper() -> None:
    # The wrapper must point ansible-runner at the collection's ansible.cfg (it ignores it otherwise), whose
    # collections_path resolves testbed.pipeline in a checkout (a symlink kept in git).
    from testbed.ansible.settings import runner_envvars  # noqa: PLC0415
    from testbed.config.catalogue import project_root  # noqa: PLC0415

    assert runner_envvars(project_root())["ANSIBLE_CONFIG"] == str(PROJECT / "ansible.cfg")
    assert "collections_path = .collections:" in (PROJECT / "ansible.cfg").read_text()
    assert (PROJECT / ".collections" / "ansible_collections" / "testbed" / "pipeline").resolve() == PROJECT


@pytest.mark.parametrize("name", ["dburl", "argaddr"])
def test_other_services_adopt_testbed_with_only_their_config(name: str, runs: Path) -> None:
    service = PROJECT / "tests" / "fixtures" / "services" / name
    result = cli("run", "--service", str(service), "--backend", "native", "--ports", "auto",
                 "--run-folder", str(runs))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "✅ Tests: 2 passed" in result.stdout
    assert leftovers(run_folder_of(result.stdout).name) == []


def _native_up(service: Path, runs: Path) -> tuple[str, int]:
    """Bring only the servers up (the pipeline's own functions, in this process): the run and its
    PostgreSQL's system identifier, which initdb makes unique and a copy keeps."""
    import psycopg  # noqa: PLC0415

    from testbed.config.catalogue import load_catalogue  # noqa: PLC0415

    run = preflight.open_run({"service_dir": str(service), "catalogue": load_catalogue(PROJECT), "backend": "native",
                              "ports": "auto", "run_id": "", "run_root": str(runs), "owner_pid": os.getpid(),
                              "lease_seconds": 0, "images": {}, "pull": False})
    try:
        servers.start_native(run["run_id"])
        readiness.ready(run["run_id"], 60)  # as the configured user, password and database
        fact = json.loads((Path(run["runtime_dir"]) / "state.json").read_text())["facts"]["postgres"]
        with psycopg.connect(fact["url"]) as conn:
            row = conn.execute("SELECT system_identifier FROM pg_control_system()").fetchone()
    except BaseException:
        teardown.teardown_phase(run["run_id"])
        raise
    return run["run_id"], int(row[0])  # type: ignore[index]


@pytest.mark.usefixtures("machine_wide")  # counts the machine's PostgreSQL templates
def test_postgres_cluster_is_initialised_once_per_credentials_and_copied_after(service: Path, runs: Path) -> None:

    config = service / "testbed.yml"
    # A password of this test's own: its template cannot exist yet.
    config.write_text(config.read_text().replace("basic-pw", f"pw-{os.getpid()}-{id(service)}"))
    before = set(paths.template_root().glob("postgres-*")) if paths.template_root().is_dir() else set()

    first, first_id = _native_up(service, runs)
    teardown.teardown_phase(first)
    made = set(paths.template_root().glob("postgres-*")) - before
    assert len(made) == 1, "the first run keeps its freshly initialised cluster"
    template = made.pop()
    assert (template.stat().st_mode & 0o777) == 0o700

    second, second_id = _native_up(service, runs)
    teardown.teardown_phase(second)
    assert second_id == first_id, "the second run copies the template instead of running initdb"

    # Another password is another cluster: a template is never used for credentials it was not made with.
    config.write_text(config.read_text().replace("pw-", "other-pw-"))
    third, third_id = _native_up(service, runs)
    teardown.teardown_phase(third)
    assert third_id != first_id
    assert len(set(paths.template_root().glob("postgres-*")) - before) == 2
    for run_id in (first, second, third):
        assert not leftovers(run_id)
    for path in set(paths.template_root().glob("postgres-*")) - before:
        shutil.rmtree(path)


@pytest.mark.usefixtures("machine_wide")  # a gc of every run and of the machine's templates
def test_gc_expires_unused_postgres_templates_and_keeps_recent_ones() -> None:

    root = paths.template_root()
    root.mkdir(parents=True, exist_ok=True)
    old, recent, partial = root / "postgres-gc-test-old", root / "postgres-gc-test-recent", root / ".postgres-gc-x.1"
    for path in (old, recent, partial):
        path.mkdir()
    week = paths.TEMPLATE_TTL + 60
    os.utime(old, (old.stat().st_atime - week, old.stat().st_mtime - week))
    os.utime(partial, (partial.stat().st_atime - 3600, partial.stat().st_mtime - 3600))
    try:
        assert cli("gc").returncode == 0
        assert not old.exists() and not partial.exists()
        assert recent.exists()
        assert root.exists(), "gc's sweep of stale run folders leaves the templates' folder alone"
    finally:
        for path in (old, recent, partial):
            shutil.rmtree(path, ignore_errors=True)
