"""Self-hosted runners over SSH, against real hosts: two containers with their own filesystem, processes and
users, running sshd on an internal Docker network this module creates (no route out).

playbooks/runner.yml prepares both (packages from a local apt repository, testbed from a wheelhouse built here),
idempotently; then the pipeline runs on one of them through `testbed run --inventory … --limit …` and through
plain ansible-playbook, bringing the run folder back; nothing of a run stays on a host. Everything the module
creates (containers, network, keys) is removed at its end. A missing Docker engine is a failure, never a skip.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from support import BIN, PROJECT, clean_env, cli, run_folder_of, secret_hits

pytestmark = [pytest.mark.docker, pytest.mark.slow]

# What runner.yml installs with apt on a native host (python3-apt: the apt module's own dependency).
APT_PACKAGES = ("postgresql-15", "redis-server", "nats-server", "python3", "python3-venv", "python3-apt")
# Of testbed's dependencies, what a host needs to run the modules and an `install: none` service's tests (a real
# runner installs testbed with all of them, the default); their specifiers come from pyproject.toml.
HOST_DEPENDENCIES = (
    "psycopg", "redis", "nats-py", "pytest", "pytest-cov", "pytest-timeout", "pytest-split", "pytest-xdist",
    "junitparser",
)
# The reference service runs on the hosts too (3 shards across both): they have no package index, so its own
# dependencies come in the wheelhouse, and a copy of it installs nothing (`install: none`).
REFERENCE = PROJECT / "services" / "agent_executor"
REFERENCE_DEPENDENCIES = ("pytest-asyncio",)  # of its dev group; pytest, pytest-cov, pytest-timeout are testbed's
HOSTS = ("host1", "host2")
SERVER_NAMES = ("postgres", "redis-server", "nats-server")
VENV = "/opt/testbed/venv"
TIMINGS: dict[str, float] = {}


def _docker(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def _host_requirements() -> list[str]:
    dependencies = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]["dependencies"]
    wanted = [d for d in dependencies if re.split(r"[\[<>=!~ ]", d, maxsplit=1)[0] in HOST_DEPENDENCIES]
    assert len(wanted) == len(HOST_DEPENDENCIES), wanted
    reference = tomllib.loads((REFERENCE / "pyproject.toml").read_text())
    dev = reference["tool"]["poetry"]["group"]["dev"]["dependencies"]
    wanted += [*reference["project"]["dependencies"], *(f"{name}{dev[name]}" for name in REFERENCE_DEPENDENCIES)]
    # config.py reads YAML (ansible-core brings PyYAML on a full install); the hosts run Debian's Python 3.11.2,
    # where redis needs async-timeout (marker python_full_version < 3.11.3), which this newer Python skips.
    return [*wanted, "pyyaml", "async-timeout>=4.0.3"]


def _distribution(wheel: Path) -> str:
    return wheel.name.split("-", 1)[0].replace("_", "-").lower()


@dataclass
class Hosts:
    """The two SSH hosts and how to reach them."""

    inventory: Path
    key: Path
    known_hosts: Path
    containers: dict[str, str]
    addresses: dict[str, str]
    env: dict[str, str]
    work: Path
    extra: list[str] = field(default_factory=list)

    def exec(self, host: str, script: str, user: str = "root", check: bool = True) -> subprocess.CompletedProcess[str]:
        return _docker("exec", "-u", user, self.containers[host], "sh", "-c", script, check=check)

    def playbook(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "ansible-playbook"), "-i", str(self.inventory), *args], cwd=PROJECT,
                              env=env or self.env, capture_output=True, text=True, timeout=900, check=False)

    def leftovers(self, host: str) -> list[str]:
        """Anything a run left on the host: server processes, run dirs, workspaces. The PostgreSQL templates
        folder is a cache kept on purpose (gc expires it), not a run's."""
        script = (
            "for p in /proc/[0-9]*; do c=$(cat $p/comm 2>/dev/null) || continue; case \"$c\" in "
            + "|".join(SERVER_NAMES) + ") echo \"process $c ${p#/proc/}\";; esac; done; "
            "find /tmp /var/tmp -mindepth 1 -maxdepth 1 -name 'testbed-workspace-*' -printf 'workspace %p\\n'; "
            "find /tmp -mindepth 2 -maxdepth 2 -path '/tmp/testbed-*' ! -name templates -printf 'run dir %p\\n'"
        )
        out = self.exec(host, script).stdout
        return [line for line in out.splitlines() if line.strip()]


def _wait_for_sshd(address: str, deadline: float) -> str:
    while True:
        scan = subprocess.run(["ssh-keyscan", "-T", "2", "-t", "ed25519", address], capture_output=True,
                              text=True, check=False)
        if scan.returncode == 0 and scan.stdout.strip():
            return scan.stdout
        if time.monotonic() > deadline:
            raise AssertionError(f"sshd on {address} never answered: {scan.stderr.strip()}")
        time.sleep(0.2)


def build_assets() -> dict[str, object]:
    """The SSH host image, the local apt repository and the wheelhouse (cached across sessions); also for
    benchmarks/shards_on_hosts.py."""
    from images.sshd import build_testbed_wheel, ensure_apt_repo, ensure_sshd_image, ensure_wheelhouse  # noqa: PLC0415

    return {"image": ensure_sshd_image(), "repo": ensure_apt_repo(APT_PACKAGES),
            "wheels": ensure_wheelhouse(_host_requirements()), "testbed": build_testbed_wheel()}


@pytest.fixture(scope="module")
def assets() -> dict[str, object]:
    from images.build import ImageBuildError  # noqa: PLC0415

    version = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True,
                             text=True, timeout=60, check=False)
    if version.returncode != 0:
        pytest.fail(f"no Docker engine answers: the runner tests need one (they never skip): {version.stderr}",
                    pytrace=False)
    started = time.monotonic()
    try:
        built = build_assets()
    except ImageBuildError as exc:
        pytest.fail(f"cannot build the runner test assets: {exc}", pytrace=False)
    TIMINGS["assets"] = time.monotonic() - started
    return built


@pytest.fixture(scope="module")
def hosts(assets: dict[str, object], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosts]:
    """Two SSH hosts on a private, internal network; removed with the network at the end."""
    with ssh_hosts(assets, tmp_path_factory.mktemp("runners")) as made:
        yield made


@contextlib.contextmanager
def ssh_hosts(assets: dict[str, object], work: Path) -> Iterator[Hosts]:
    started = time.monotonic()
    tag = uuid.uuid4().hex[:8]
    label = f"testbed.test=runners-{tag}"
    network = f"testbed-runners-{tag}"
    key = work / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"testbed-{tag}", "-f", str(key)],
                   check=True, capture_output=True)
    # The wheelhouse runner.yml pushes: the cached dependencies and this checkout's testbed.
    wheelhouse = work / "wheelhouse"
    wheelhouse.mkdir()
    for wheel in [*Path(str(assets["wheels"])).glob("*.whl"), Path(str(assets["testbed"]))]:
        shutil.copy2(wheel, wheelhouse / wheel.name)
    containers: dict[str, str] = {}
    # A short control path folder: ssh's socket paths are limited to ~100 characters.
    control = Path(tempfile.mkdtemp(prefix="tb-cp-"))
    try:
        _docker("network", "create", "--internal", "--label", label, network)
        for index, host in enumerate(HOSTS, 1):
            name = f"testbed-runner-{tag}-{index}"
            _docker("run", "--detach", "--init", "--name", name, "--hostname", host, "--network", network,
                    "--label", label, "--env", f"SSH_AUTHORIZED_KEY={(key.with_suffix('.pub')).read_text().strip()}",
                    "--volume", f"{assets['repo']}:/srv/testbed-apt:ro", str(assets["image"]))
            containers[host] = name
        addresses = {}
        known = []
        deadline = time.monotonic() + 60
        for host, name in containers.items():
            addresses[host] = _docker("inspect", "--format",
                                      "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name).stdout.strip()
            # The hosts' apt mirror is the local repository: no route out, like a site's own mirror.
            # dpkg without fsync: a throw-away host's packages install in half the time.
            _docker("exec", name, "sh", "-c", "rm -f /etc/apt/sources.list.d/*; "
                    "echo 'deb [trusted=yes] file:/srv/testbed-apt ./' > /etc/apt/sources.list; "
                    "echo force-unsafe-io > /etc/dpkg/dpkg.cfg.d/testbed-unsafe-io")
            known.append(_wait_for_sshd(addresses[host], deadline))
        known_hosts = work / "known_hosts"
        known_hosts.write_text("".join(known))
        inventory = work / "runners.yml"
        inventory.write_text(yaml.safe_dump({"all": {"children": {"runners": {
            "hosts": {host: {"ansible_host": addresses[host]} for host in HOSTS},
            "vars": {
                "ansible_user": "ci",
                "ansible_ssh_private_key_file": str(key),
                "ansible_ssh_common_args": f"-o UserKnownHostsFile={known_hosts} -o IdentitiesOnly=yes",
                "ansible_python_interpreter": f"{VENV}/bin/python",
                "runner_backend": "native",
                "runner_ports": "auto",
                "runner_host_wheelhouse": str(wheelhouse),
                # Exactly the wheels pushed: testbed without Ansible and the other controller-side dependencies.
                "runner_host_pip_packages": sorted(_distribution(w) for w in wheelhouse.glob("*.whl")),
                "runner_host_pip_extra_args": "--no-deps",
            },
        }}}}))
        env = clean_env(ANSIBLE_SSH_CONTROL_PATH_DIR=str(control))
        TIMINGS["hosts"] = time.monotonic() - started
        yield Hosts(inventory, key, known_hosts, containers, addresses, env, work)
    finally:
        for name in containers.values():
            _docker("rm", "--force", "--volumes", name, check=False)
        _docker("network", "rm", network, check=False)
        shutil.rmtree(control, ignore_errors=True)
        left = _docker("ps", "--all", "--quiet", "--filter", f"label={label}").stdout.split()
        left += _docker("network", "ls", "--quiet", "--filter", f"label={label}").stdout.split()
        print(f"\nrunner test timings (s): {json.dumps({k: round(v, 1) for k, v in TIMINGS.items()})}",
              file=sys.stderr)
        assert left == [], f"left behind: {left}"


@pytest.fixture(scope="module")
def prepared(hosts: Hosts) -> Hosts:
    """Both hosts after playbooks/runner.yml: what the pipeline tests need."""
    started = time.monotonic()
    first = hosts.playbook("playbooks/runner.yml")
    TIMINGS["runner.yml"] = time.monotonic() - started
    assert first.returncode == 0, first.stdout[-6000:] + first.stderr[-3000:]
    hosts.extra.append(first.stdout)
    return hosts


def _recap(output: str) -> dict[str, dict[str, int]]:
    recap = {}
    for host, counts in re.findall(r"^(\S+)\s*:\s*(ok=.*)$", output, re.MULTILINE):
        recap[host] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", counts)}
    return recap


def test_runner_playbook_prepares_both_hosts_idempotently(prepared: Hosts) -> None:
    assert all(_recap(prepared.extra[0])[host]["changed"] > 0 for host in HOSTS)
    started = time.monotonic()
    again = prepared.playbook("playbooks/runner.yml")
    TIMINGS["runner.yml again"] = time.monotonic() - started
    assert again.returncode == 0, again.stdout[-6000:]
    recap = _recap(again.stdout)
    assert set(recap) == set(HOSTS)
    for host in HOSTS:
        assert recap[host]["changed"] == 0, f"{host} changed on the second run:\n{again.stdout[-6000:]}"
        assert recap[host]["failed"] == 0 and recap[host]["unreachable"] == 0
        checks = prepared.exec(host, (
            f"{VENV}/bin/python -c 'import testbed, psycopg, redis, nats, pytest, pytest_cov, yaml' && "
            "test -x /usr/lib/postgresql/15/bin/postgres && test -x /usr/lib/postgresql/15/bin/initdb && "
            "command -v redis-server nats-server >/dev/null && id testbed && "
            "grep -q create_main_cluster /etc/postgresql-common/createcluster.d/testbed.conf && "
            "grep -q testbed /usr/sbin/policy-rc.d && "
            "test \"$(readlink /etc/systemd/system/redis-server.service)\" = /dev/null && "
            "test -z \"$(ls -A /etc/postgresql 2>/dev/null)\" && ls /opt/testbed/wheelhouse/testbed-*.whl && "
            # The installed package alone (its collection inside it) is enough for the host-side commands.
            f"cd / && {VENV}/bin/testbed status | grep -q 'no testbed environments' && "
            f"{VENV}/bin/testbed gc | grep -q '^gc: '"
        ), check=False)
        assert checks.returncode == 0, checks.stdout + checks.stderr
        # Installed, never started: no server runs until a pipeline starts one.
        assert prepared.leftovers(host) == []


def test_runner_playbook_names_what_a_host_lacks_in_one_line(prepared: Hosts) -> None:
    pub = prepared.key.with_suffix(".pub").read_text().strip()
    prepared.exec("host2", (
        "id nosudo >/dev/null 2>&1 || useradd --create-home --shell /bin/bash nosudo; "
        f"install -d -m 0700 -o nosudo -g nosudo /home/nosudo/.ssh && echo '{pub}' > /home/nosudo/.ssh/authorized_keys"
        " && chown nosudo:nosudo /home/nosudo/.ssh/authorized_keys && chmod 0600 /home/nosudo/.ssh/authorized_keys; "
        "printf '#!/bin/sh\\necho 3.9\\n' > /usr/local/bin/python3.9 && chmod 0755 /usr/local/bin/python3.9"
    ))
    result = prepared.playbook("playbooks/runner.yml", "--limit", "host2", "-e", "ansible_user=nosudo",
                               "-e", "runner_host_python=/usr/local/bin/python3.9")
    assert result.returncode != 0
    lines = [line for line in result.stdout.splitlines() if "lacks:" in line]
    assert lines, result.stdout[-4000:]
    assert ("runner host host2 lacks: passwordless sudo for nosudo; Python 3.11+ (/usr/local/bin/python3.9 is 3.9)"
            in lines[0]), lines
    assert _recap(result.stdout)["host2"]["changed"] == 0


def test_runner_playbook_names_a_dependency_the_wheelhouse_lacks_for_the_hosts_python(hosts: Hosts) -> None:
    # A wheelhouse built with a newer Python than the host's: redis without async-timeout, which redis needs only
    # below Python 3.11.3 (the hosts run Debian's 3.11.2). A venv and wheelhouse of their own: the other tests'
    # are left alone, whichever order the tests run in.
    lacking = hosts.work / "wheelhouse-lacking"
    lacking.mkdir(exist_ok=True)
    (redis,) = (hosts.work / "wheelhouse").glob("redis-*.whl")
    shutil.copy2(redis, lacking / redis.name)
    version = hosts.exec("host2", "python3 -c 'import platform; print(platform.python_version())'").stdout.strip()
    options = json.dumps({
        "runner_host_venv": "/opt/testbed/venv-lacking", "runner_host_wheelhouse": str(lacking),
        "runner_host_wheelhouse_dest": "/opt/testbed/wheelhouse-lacking", "runner_host_pip_packages": ["redis"],
        "runner_host_pip_extra_args": "",
    })
    try:
        result = hosts.playbook("playbooks/runner.yml", "--limit", "host2", "-e", options)
        assert result.returncode != 0
        output = result.stdout + result.stderr
        assert output.count("FAILED!") == 1, output[-6000:]
        # Ansible's own one-line report of the failure (the task result below it is wrapped YAML).
        (line,) = [line for line in output.splitlines() if line.startswith("[ERROR]") and "runner host" in line]
        assert (
            f"runner host host2: the wheelhouse {lacking} lacks async-timeout>=4.0.3; python_full_version < "
            f'"3.11.3" (from redis) for the host\'s Python {version}; add it (pip download --only-binary=:all: '
            f"--no-deps --python-version {version} --dest {lacking} 'async-timeout>=4.0.3') or build the wheelhouse "
            f'for Python {version} as README\'s "Self-hosted runners" shows'
        ) in line, line
        assert "Install testbed into the virtual environment" not in result.stdout  # pip never started

        # What the line says to do is enough: the missing wheel added, the same play installs.
        (timeout,) = (hosts.work / "wheelhouse").glob("async_timeout-*.whl")
        shutil.copy2(timeout, lacking / timeout.name)
        again = hosts.playbook("playbooks/runner.yml", "--limit", "host2", "-e", options)
        assert again.returncode == 0, again.stdout[-6000:]
        hosts.exec("host2", "/opt/testbed/venv-lacking/bin/python -c 'import redis, async_timeout'")  # or raises
    finally:
        hosts.exec("host2", "rm -rf /opt/testbed/venv-lacking /opt/testbed/wheelhouse-lacking "
                   "/opt/testbed/wheelhouse-lacking.tar", check=False)


def _remote_run(hosts: Hosts, service: Path, runs: Path, host: str, *extra: str) -> subprocess.CompletedProcess[str]:
    started = time.monotonic()
    result = cli("run", "--inventory", str(hosts.inventory), "--limit", host, "--service", str(service),
                 "--run-folder", str(runs), *extra, env=hosts.env)
    TIMINGS[f"testbed run on {host}"] = time.monotonic() - started
    return result


def test_remote_run_passes_and_brings_the_run_folder_back(prepared: Hosts, service: Path, runs: Path) -> None:
    result = _remote_run(prepared, service, runs, "host1")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    for line in ("✅ Backend: native (asked for)", "✅ PostgreSQL: Running on port", "✅ NATS: Running on port",
                 "✅ Migrations: Applied successfully (2 new)", "✅ Tests: 4 passed", "✅ Coverage: 100%",
                 "✅ Teardown: nothing left behind"):
        assert line in out, out
    assert "BASIC_TOKEN not set" not in out  # the secret reached the host (the test checks its length there)
    folder = run_folder_of(out)
    assert folder.parent == runs
    for name in ("junit.xml", "coverage.xml", "htmlcov/index.html", "report.json", "state.json", "pytest.log",
                 "logs/postgres.log", "logs/nats.log", "diagnostics/readiness.json"):
        assert (folder / name).is_file(), name
    junit = (folder / "junit.xml").read_text()
    assert 'tests="4"' in junit and 'failures="0"' in junit
    state = json.loads((folder / "state.json").read_text())
    assert state["host"] == "host1" and state.get("torn_down")
    assert json.loads((folder / "report.json").read_text())["exit_code"] == 0
    assert secret_hits(folder, out, result.stderr) == []
    assert prepared.leftovers("host1") == []


def test_remote_run_with_a_failing_test_exits_1(prepared: Hosts, service: Path, runs: Path) -> None:
    tests = service / "tests" / "test_servers.py"
    tests.write_text(tests.read_text() + "\n\ndef test_fails_on_the_runner():\n    assert 1 == 2\n")
    result = _remote_run(prepared, service, runs, "host2")
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "❌ Tests: 4 passed, 1 failed" in out, out
    assert "✅ Teardown: nothing left behind" in out
    folder = run_folder_of(out)
    assert 'failures="1"' in (folder / "junit.xml").read_text()
    assert (folder / "coverage.xml").is_file()
    assert prepared.leftovers("host2") == []


def test_plain_ansible_playbook_runs_on_a_remote_host(prepared: Hosts, service: Path, runs: Path) -> None:
    started = time.monotonic()
    result = prepared.playbook("integration.yml", "-e", json.dumps({
        "testbed_hosts": "host2", "testbed_service": str(service), "testbed_run_root": str(runs)}))
    TIMINGS["ansible-playbook integration.yml"] = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-6000:]
    folder = run_folder_of(result.stdout)
    assert folder.parent == runs and folder.name.startswith("remote-")
    assert 'tests="4"' in (folder / "junit.xml").read_text()
    assert (folder / "coverage.xml").is_file()
    assert prepared.leftovers("host2") == []


def test_interrupted_remote_run_tears_down_on_the_host(prepared: Hosts, service: Path, runs: Path) -> None:
    """A cancelled job: the playbook's `always` never runs, so the wrapper runs playbooks/down.yml there."""
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "testbed", "run", "--inventory", str(prepared.inventory), "--limit", "host1",
         "--service", str(service), "--run-folder", str(runs)],
        cwd=PROJECT, env=prepared.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        if "✅ PostgreSQL: Running" in line:
            assert len(prepared.leftovers("host1")) >= 3  # the servers run there, and its workspace exists
            process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=300)
    TIMINGS["interrupted run"] = time.monotonic() - started
    out = "".join(lines)
    assert code == 143, out
    assert "❌ Interrupted by SIGTERM: tearing down" in out and "✅ Teardown: nothing left behind" in out, out
    assert (run_folder_of(out) / "state.json").is_file()
    assert prepared.leftovers("host1") == []


def test_up_and_down_on_a_remote_host(prepared: Hosts, service: Path, runs: Path) -> None:
    started = time.monotonic()
    up = cli("up", "--inventory", str(prepared.inventory), "--limit", "host2", "--service", str(service),
             "--run-folder", str(runs), env=prepared.env)
    assert up.returncode == 0, up.stdout + up.stderr
    assert "✅ Migrations: Applied successfully (2 new)" in up.stdout
    run_id = re.findall(r"--run-id (\S+)` tears it down", up.stdout)[0]
    left_up = prepared.leftovers("host2")
    assert sum(line.startswith("process") for line in left_up) >= 3, left_up
    assert any(f"testbed-workspace-{run_id}" in line for line in left_up), left_up
    down = cli("down", "--inventory", str(prepared.inventory), "--limit", "host2", "--service", str(service),
               "--run-id", run_id, env=prepared.env)
    TIMINGS["up and down"] = time.monotonic() - started
    try:
        assert down.returncode == 0, down.stdout + down.stderr
        assert "✅ Teardown: nothing left behind" in down.stdout
        assert (service / "runs" / run_id / "state.json").is_file()  # down has no --run-folder: beside the service
        assert prepared.leftovers("host2") == []
    finally:
        shutil.rmtree(service / "runs" / run_id, ignore_errors=True)


def test_host_key_checking_is_on(prepared: Hosts, service: Path, runs: Path) -> None:
    """ansible-runner turns host key checking off by default; the wrapper turns it back on."""
    inventory = prepared.work / "unknown-keys.yml"
    data = yaml.safe_load(prepared.inventory.read_text())
    empty = prepared.work / "empty_known_hosts"
    empty.write_text("")
    runners = data["all"]["children"]["runners"]["vars"]
    runners["ansible_ssh_common_args"] = f"-o UserKnownHostsFile={empty} -o IdentitiesOnly=yes"
    inventory.write_text(yaml.safe_dump(data))
    # A fresh control path: an open master connection from the tests above would skip the check.
    control = Path(tempfile.mkdtemp(prefix="tb-cp-"))
    try:
        result = cli("run", "--inventory", str(inventory), "--limit", "host1", "--service", str(service),
                     "--run-folder", str(runs), timeout=120,
                     env={**prepared.env, "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control)})
    finally:
        shutil.rmtree(control, ignore_errors=True)
    assert result.returncode == 12, result.stdout + result.stderr
    assert "unreachable" in result.stdout and "Host key verification failed" in result.stdout, result.stdout


def _shards(hosts: Hosts, suite: Path, runs: Path, *extra: str, inventory: Path | None = None,
            limit: str = "runners") -> subprocess.CompletedProcess[str]:
    return cli("run", "--inventory", str(inventory or hosts.inventory), "--limit", limit, "--shards", "auto",
               "--service", str(suite), "--run-folder", str(runs), *extra, env=hosts.env)


def _merged(out: str) -> dict[str, object]:
    return json.loads((Path(re.findall(r"Merged folder: (\S+)", out)[-1]) / "report.json").read_text())


def _shard_hosts(report: dict[str, object]) -> list[str]:
    return [json.loads((Path(s["run_folder"]) / "state.json").read_text())["host"] for s in report["shards"]]


def test_shards_run_on_both_hosts_at_once_in_one_play_and_merge(prepared: Hosts, runs: Path, tmp_path: Path) -> None:
    suite = tmp_path / "shards"
    shutil.copytree(PROJECT / "tests" / "fixtures" / "services" / "shards", suite)
    started = time.monotonic()
    one = _remote_run(prepared, suite, runs / "one", "host1")
    TIMINGS["shards suite, 1 run on host1"] = time.monotonic() - started
    assert one.returncode == 0, one.stdout + one.stderr
    started = time.monotonic()
    result = _shards(prepared, suite, runs / "shards")
    TIMINGS["shards suite, 2 shards on host1 + host2"] = time.monotonic() - started
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "ℹ️  Shards: 2 running at once on host1, host2, in one play" in out
    # One ansible-playbook for both hosts; each host's lines carry its name.
    assert len(re.findall(r"^\[host1\] +✅ Tests: \d+ passed", out, re.MULTILINE)) == 1, out
    assert len(re.findall(r"^\[host2\] +✅ Tests: \d+ passed", out, re.MULTILINE)) == 1, out
    assert len(re.findall(r"^\[host\d\] +✅ Teardown: nothing left behind", out, re.MULTILINE)) == 2, out
    report = _merged(out)
    assert report["tests"]["passed"] == 10 and len(report["shards"]) == 2
    assert [s["shard"] for s in report["shards"]] == ["shard 1/2", "shard 2/2"]
    assert sorted(_shard_hosts(report)) == sorted(HOSTS)
    run_ids = [s["run_id"] for s in report["shards"]]
    assert run_ids[0][:-2] == run_ids[1][:-2] and [r[-2:] for r in run_ids] == ["-1", "-2"], run_ids
    assert report["coverage"] == json.loads((run_folder_of(one.stdout) / "report.json").read_text())["coverage"]
    assert all(prepared.leftovers(host) == [] for host in HOSTS)

    # The merged durations, a file outside the service, travel to each host's workspace: the 2 s test is
    # alone in its group the second time.
    durations = Path(report["run_folder"]) / "durations.json"
    again = _shards(prepared, suite, runs / "again", "--durations", str(durations))
    assert again.returncode == 0, again.stdout + again.stderr
    groups = sorted(sorted(_junit_cases(Path(s["run_folder"]) / "junit.xml")) for s in _merged(again.stdout)["shards"])
    assert [("tests.test_slow", "test_slow")] in groups, groups
    assert all(prepared.leftovers(host) == [] for host in HOSTS)


def test_one_failing_shard_hides_nothing_of_the_others(prepared: Hosts, runs: Path, tmp_path: Path) -> None:
    suite = tmp_path / "shards"
    shutil.copytree(PROJECT / "tests" / "fixtures" / "services" / "shards", suite)
    (suite / "tests" / "test_fails.py").write_text("def test_fails_on_one_host():\n    assert 1 == 2\n")
    result = _shards(prepared, suite, runs)
    out = result.stdout
    assert result.returncode == 1, out + result.stderr  # the merge's: the worst shard's
    assert len(re.findall(r"^\[host\d\] +❌ Tests: \d+ passed, 1 failed", out, re.MULTILINE)) == 1, out
    assert len(re.findall(r"^\[host\d\] +✅ Tests: \d+ passed in", out, re.MULTILINE)) == 1, out
    assert len(re.findall(r"^\[host\d\] +✅ Teardown: nothing left behind", out, re.MULTILINE)) == 2, out
    report = _merged(out)
    assert report["tests"]["passed"] == 10 and report["tests"]["failed"] == 1
    assert sorted(s["exit_code"] for s in report["shards"]) == [0, 1]
    assert all(prepared.leftovers(host) == [] for host in HOSTS)


def test_more_shards_than_hosts_is_a_one_line_error(prepared: Hosts, runs: Path, tmp_path: Path) -> None:
    result = cli("run", "--inventory", str(prepared.inventory), "--limit", "runners", "--shards", "3",
                 "--service", str(PROJECT / "tests" / "fixtures" / "services" / "shards"), "--run-folder", str(runs),
                 env=prepared.env)
    assert result.returncode == 10, result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == [
        "testbed: error: --shards 3: the group has 2 host(s) (host1, host2) and its play runs one shard per host; "
        "use --shards 2 or auto, or list a machine twice in the inventory under two names with the same ansible_host"
    ]
    assert not runs.exists() or list(runs.iterdir()) == []


def test_plain_ansible_playbook_runs_the_shards_in_one_play(prepared: Hosts, runs: Path, tmp_path: Path) -> None:
    suite = tmp_path / "shards"
    shutil.copytree(PROJECT / "tests" / "fixtures" / "services" / "shards", suite)
    result = prepared.playbook("integration.yml", "--limit", "runners", "-e", json.dumps({
        "testbed_hosts": "runners", "testbed_shards": "auto", "testbed_run_id": "plain-shards",
        "testbed_service": str(suite), "testbed_run_root": str(runs)}))
    assert result.returncode == 0, result.stdout[-6000:]
    assert sorted(p.name for p in runs.iterdir()) == ["plain-shards-1", "plain-shards-2"]
    merged = cli("merge", str(runs / "plain-shards-1"), str(runs / "plain-shards-2"), "--out", str(tmp_path / "m"),
                 "--service", str(suite))
    assert merged.returncode == 0, merged.stdout + merged.stderr
    report = json.loads((tmp_path / "m" / "report.json").read_text())
    assert report["tests"]["passed"] == 10 and sorted(_shard_hosts(report)) == sorted(HOSTS)
    assert all(prepared.leftovers(host) == [] for host in HOSTS)


def test_fewer_shards_than_hosts_run_on_the_first_hosts(prepared: Hosts, runs: Path, tmp_path: Path) -> None:
    suite = tmp_path / "shards"
    shutil.copytree(PROJECT / "tests" / "fixtures" / "services" / "shards", suite)
    result = prepared.playbook("integration.yml", "--limit", "runners", "-e", json.dumps({
        "testbed_hosts": "runners", "testbed_shards": "1", "testbed_run_id": "plain-one",
        "testbed_service": str(suite), "testbed_run_root": str(runs)}))
    assert result.returncode == 0, result.stdout[-6000:]
    assert [p.name for p in runs.iterdir()] == ["plain-one-1"]  # host2, past the last shard, sat the play out
    state = json.loads((runs / "plain-one-1" / "state.json").read_text())
    assert state["host"] == "host1" and state["shard"]["count"] == 1
    assert 'tests="10"' in (runs / "plain-one-1" / "junit.xml").read_text()
    recap = _recap(result.stdout)
    assert recap["host2"]["changed"] == 0 and recap["host2"]["failed"] == 0
    assert all(prepared.leftovers(host) == [] for host in HOSTS)


def test_interrupted_shards_tear_down_on_every_host(prepared: Hosts, runs: Path, tmp_path: Path) -> None:
    suite = tmp_path / "shards"
    shutil.copytree(PROJECT / "tests" / "fixtures" / "services" / "shards", suite)
    process = subprocess.Popen(
        [sys.executable, "-m", "testbed", "run", "--inventory", str(prepared.inventory), "--limit", "runners",
         "--shards", "auto", "--service", str(suite), "--run-folder", str(runs)],
        cwd=PROJECT, env=prepared.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    running: set[str] = set()
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        if "✅ Dragonfly: Running" in line:
            running.add(line.split("]")[0].strip("["))
            if running == set(HOSTS):
                assert all(prepared.leftovers(host) for host in HOSTS)  # servers and workspaces on both
                process.send_signal(signal.SIGINT)
    code = process.wait(timeout=300)
    out = "".join(lines)
    assert code == 130, out
    assert "❌ Interrupted by SIGINT: tearing down" in out and "✅ Teardown: nothing left behind" in out, out
    report = _merged(out)  # both run folders came back, through playbooks/down.yml on each host
    assert report["exit_code"] == 130 and sorted(_shard_hosts(report)) == sorted(HOSTS)
    assert all(prepared.leftovers(host) == [] for host in HOSTS)


def test_the_reference_service_in_three_shards_across_both_hosts_equals_one_run(
    prepared: Hosts, runs: Path, tmp_path: Path
) -> None:
    """3 shards on 2 machines in one play: the inventory names host1 twice (host1 and host1-b, one ansible_host),
    so the play has 3 hosts and each runs one shard at once."""
    reference = reference_copy(tmp_path / "agent_executor")
    inventory = inventory_naming_host1_twice(prepared)
    started = time.monotonic()
    one = _remote_run(prepared, reference, runs / "one", "host1")
    TIMINGS["agent_executor, 1 run on host1"] = time.monotonic() - started
    assert one.returncode == 0, one.stdout + one.stderr
    one_run = json.loads((run_folder_of(one.stdout) / "report.json").read_text())
    started = time.monotonic()
    result = _shards(prepared, reference, runs / "shards", inventory=inventory)
    TIMINGS["agent_executor, 3 shards on host1 (x2) + host2"] = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ℹ️  Shards: 3 running at once on host1, host1-b, host2, in one play" in result.stdout
    report = _merged(result.stdout)
    cases = [c for s in report["shards"] for c in _junit_cases(Path(s["run_folder"]) / "junit.xml")]
    assert len(cases) == len(set(cases)) == one_run["tests"]["passed"]
    assert report["tests"]["passed"] == one_run["tests"]["passed"] > 0
    assert abs(report["coverage"] - one_run["coverage"]) <= 0.5, (report["coverage"], one_run["coverage"])
    assert sorted(_shard_hosts(report)) == ["host1", "host1", "host2"]
    for shard in report["shards"]:
        TIMINGS[f"agent_executor, {shard['shard']} tests"] = shard["tests"]["duration"]
    TIMINGS["agent_executor, 1 run tests"] = one_run["tests"]["duration"]
    assert all(prepared.leftovers(host) == [] for host in HOSTS)


def reference_copy(target: Path) -> Path:
    """agent_executor as the hosts can run it: the same code, tests and config, its dependencies already in the
    hosts' virtualenv (from the wheelhouse), so it installs nothing (`install: none`)."""
    shutil.copytree(REFERENCE, target, ignore=shutil.ignore_patterns(".venv", "runs", "__pycache__", ".*cache"))
    config = yaml.safe_load((target / "testbed.yml").read_text())
    (target / "testbed.yml").write_text(yaml.safe_dump({**config, "install": "none"}))
    return target


def inventory_naming_host1_twice(hosts: Hosts) -> Path:
    """The runners group with a third name, host1-b, for host1's address: a play of 3 hosts on 2 machines."""
    inventory = hosts.work / "three.yml"
    data = yaml.safe_load(hosts.inventory.read_text())
    data["all"]["children"]["runners"]["hosts"]["host1-b"] = {"ansible_host": hosts.addresses["host1"]}
    inventory.write_text(yaml.safe_dump(data))
    return inventory


def _junit_cases(path: Path) -> list[str]:
    text = path.read_text()
    return re.findall(r'<testcase classname="([^"]*)" name="([^"]*)"', text)


def test_nothing_is_left_on_any_host(prepared: Hosts) -> None:
    for host in HOSTS:
        assert prepared.leftovers(host) == []
        # Ansible's own temporary files went with their tasks.
        assert prepared.exec(host, "ls -A /home/ci/.ansible/tmp 2>/dev/null || true").stdout.strip() == ""
