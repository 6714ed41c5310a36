"""The locally built stand-in images honour the contracts of postgres:15, Dragonfly and nats.

Each test starts a container with an ephemeral loopback port, talks the real protocol to it from
the host, checks that `docker stop` is prompt (signals reach the server) and removes the container
with its anonymous volumes (the postgres image declares a VOLUME): no test, and no build, leaves a
volume behind. A missing Docker engine is a failure, never a skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import TypeVar

import nats
import psycopg
import pytest
import redis

from . import build
from .events import EngineEvents, dangling, existing_volumes

pytestmark = pytest.mark.docker

T = TypeVar("T")

NAME_PREFIX = "testbed-imgtest-"
READY_TIMEOUT = 60.0
STOP_BUDGET = 10.0


def docker(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


@pytest.fixture(scope="session")
def images(local_images: dict[str, str]) -> dict[str, str]:
    """conftest's local_images: built once per session, failing (never skipping) without an engine."""
    return local_images


@pytest.fixture(scope="module", autouse=True)
def _no_leftover_containers_or_volumes() -> Iterator[None]:
    """Nothing of this module stays: no container, and no volume created while it ran (builds included)
    that no container uses."""
    with EngineEvents() as events:
        yield
    leftovers = docker("ps", "-a", "-q", "--filter", f"name={NAME_PREFIX}").stdout.split()
    if leftovers:
        docker("rm", "-f", "-v", *leftovers, check=False)
    assert not leftovers, f"containers left behind: {leftovers}"
    volumes = dangling(existing_volumes(events.volumes_created()))
    if volumes:
        docker("volume", "rm", *volumes, check=False)
    assert not volumes, f"volumes left behind: {volumes}"


@contextlib.contextmanager
def container(
    image: str, *args: str, ports: tuple[int, ...] = (), options: tuple[str, ...] = ()
) -> Iterator[str]:
    """`docker run -d --rm` with loopback ephemeral ports; always `docker rm -f -v` afterwards, and
    the container's anonymous volumes must be gone with it."""
    name = f"{NAME_PREFIX}{uuid.uuid4().hex[:12]}"
    argv = ["run", "-d", "--rm", "--name", name]
    for port in ports:
        argv += ["-p", f"127.0.0.1::{port}"]
    volumes: set[str] = set()
    try:
        docker(*argv, *options, image, *args)
        volumes = volumes_of(name)  # created with the container, before it can exit and go
        yield name
    finally:
        remove(name, volumes)


def volumes_of(name: str) -> set[str]:
    """The named (anonymous included) volumes a container mounts; empty when it is already gone."""
    proc = docker("inspect", "--format", "{{json .Mounts}}", name, check=False)
    if proc.returncode != 0:
        return set()
    return {m["Name"] for m in json.loads(proc.stdout) or [] if m.get("Type") == "volume"}


def remove(name: str, volumes: set[str] | None = None) -> None:
    """`docker rm -f -v` and wait until the container is really gone (an `--rm` removal may be
    running); then none of its volumes may remain."""
    docker("rm", "-f", "-v", name, check=False)
    deadline = time.monotonic() + 15
    while docker("inspect", name, check=False).returncode == 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"container {name} still exists after docker rm -f -v")
        time.sleep(0.2)
        docker("rm", "-f", "-v", name, check=False)
    left = existing_volumes(volumes or set())
    if left:
        docker("volume", "rm", *left, check=False)
    assert not left, f"volumes of {name} left behind: {left}"


def host_port(name: str, port: int) -> int:
    out = docker("port", name, f"{port}/tcp").stdout
    for line in out.splitlines():
        host, _, mapped = line.strip().rpartition(":")
        if host == "127.0.0.1":
            return int(mapped)
    raise AssertionError(f"no 127.0.0.1 mapping for {port}/tcp of {name}: {out!r}")


def logs(name: str) -> str:
    proc = docker("logs", name, check=False)
    return proc.stdout + proc.stderr


def wait_until(name: str, probe: Callable[[], T], what: str) -> T:
    """Call ``probe`` until it stops raising; fail with the container's logs on timeout or exit."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        try:
            return probe()
        except Exception as exc:
            running = docker("inspect", "-f", "{{.State.Running}}", name, check=False).stdout.strip()
            if running != "true":
                pytest.fail(f"{name} exited before {what} was ready:\n{logs(name)}")
            if time.monotonic() > deadline:
                pytest.fail(f"{what} not ready after {READY_TIMEOUT}s ({exc!r}):\n{logs(name)}")
            time.sleep(0.3)


def stop_promptly(name: str) -> float:
    started = time.monotonic()
    docker("stop", "--time", "30", name)
    elapsed = time.monotonic() - started
    assert elapsed < STOP_BUDGET, f"docker stop took {elapsed:.1f}s: the server did not get the signal"
    return elapsed


def pid1_status(name: str) -> dict[str, str]:
    out = docker("exec", name, "cat", "/proc/1/status").stdout
    return {key: value.strip() for key, _, value in (line.partition(":") for line in out.splitlines())}


# --------------------------------------------------------------------------- postgres


def test_postgres_contract(images: dict[str, str]) -> None:
    env = {"POSTGRES_USER": "tb_user", "POSTGRES_PASSWORD": "s3cret pw", "POSTGRES_DB": "tb_db"}
    options = tuple(arg for key, value in env.items() for arg in ("-e", f"{key}={value}"))
    options += ("--tmpfs", "/var/lib/postgresql/data")
    with container(
        images["postgres"],
        "postgres",
        "-c",
        "max_connections=37",
        "-c",
        "fsync=off",
        ports=(5432,),
        options=options,
    ) as name:
        port = host_port(name, 5432)
        dsn = f"host=127.0.0.1 port={port} user=tb_user dbname=tb_db connect_timeout=3"

        def connect() -> psycopg.Connection[tuple[object, ...]]:
            return psycopg.connect(dsn, password="s3cret pw", autocommit=True)

        conn = wait_until(name, connect, "postgres")
        try:
            row = conn.execute("SHOW max_connections").fetchone()
            assert row == ("37",)
            assert conn.execute("SHOW fsync").fetchone() == ("off",)
            assert conn.execute("SELECT current_user, current_database()").fetchone() == ("tb_user", "tb_db")
            assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = 'tb_user'").fetchone() == (
                True,
            )
            version = conn.execute("SHOW server_version_num").fetchone()
            assert version is not None
            assert str(version[0]).startswith("15")
            hba = conn.execute(
                "SELECT auth_method FROM pg_hba_file_rules"
                " WHERE type = 'host' AND database = '{all}' AND user_name = '{all}' AND address = 'all'"
            ).fetchall()
            assert hba == [("scram-sha-256",)]

            with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
                psycopg.connect(dsn, password="wrong")

            # PID 1 is the server itself, running as postgres (not root).
            status = pid1_status(name)
            assert status["Name"] == "postgres"
            uid = docker("exec", name, "id", "-u", "postgres").stdout.strip()
            assert status["Uid"].split()[0] == uid != "0"
            mode = docker("exec", name, "stat", "-c", "%U %a", "/var/lib/postgresql/data").stdout.split()
            assert mode == ["postgres", "700"]

            # Fast shutdown (STOPSIGNAL SIGINT) even with a client still connected.
            stop_promptly(name)
        finally:
            conn.close()


def test_postgres_requires_password(images: dict[str, str]) -> None:
    name = f"{NAME_PREFIX}{uuid.uuid4().hex[:12]}"
    volumes: set[str] = set()
    try:
        proc = docker("run", "--name", name, images["postgres"], check=False, timeout=60)
        volumes = volumes_of(name)
        assert volumes, "the image's VOLUME gives the container an anonymous volume"
        assert proc.returncode == 1
        assert "Database is uninitialized and superuser password is not specified." in proc.stderr
        assert "POSTGRES_HOST_AUTH_METHOD=trust" in proc.stderr
    finally:
        remove(name, volumes)


def test_postgres_trust_and_defaults(images: dict[str, str]) -> None:
    """No password with POSTGRES_HOST_AUTH_METHOD=trust; user and database default to postgres."""
    with container(
        images["postgres"], ports=(5432,), options=("-e", "POSTGRES_HOST_AUTH_METHOD=trust")
    ) as name:
        port = host_port(name, 5432)
        dsn = f"host=127.0.0.1 port={port} user=postgres dbname=postgres connect_timeout=3"
        with wait_until(name, lambda: psycopg.connect(dsn, autocommit=True), "postgres") as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
            # The image's VOLUME /var/lib/postgresql/data is where the cluster lives.
            assert conn.execute("SHOW data_directory").fetchone() == ("/var/lib/postgresql/data",)
        stop_promptly(name)


# --------------------------------------------------------------------------- dragonfly slot


def test_dragonfly_slot_speaks_redis(images: dict[str, str]) -> None:
    with container(
        images["dragonfly"],
        "--proactor_threads=1",
        "--maxmemory=256mb",
        "--logtostderr",
        "--cache_mode=true",
        ports=(6379,),
    ) as name:
        port = host_port(name, 6379)
        client = redis.Redis(
            host="127.0.0.1", port=port, socket_timeout=3, socket_connect_timeout=3, decode_responses=True
        )
        try:
            assert wait_until(name, client.ping, "redis") is True
            assert client.config_get("maxmemory") == {"maxmemory": str(256 * 1024**2)}
            assert client.config_get("save") == {"save": ""}
            client.set("testbed", "ok")
            assert client.get("testbed") == "ok"
            assert pid1_status(name)["Name"] == "redis-server"
            output = logs(name)
            assert "testbed: redis-server stands in for Dragonfly" in output
            assert "ignoring Dragonfly flag --cache_mode=true" in output
            stop_promptly(name)
        finally:
            client.close()


def test_dragonfly_slot_port_flag(images: dict[str, str]) -> None:
    with container(images["dragonfly"], "--port", "6380", "--maxmemory=1GiB", ports=(6380,)) as name:
        client = redis.Redis(
            host="127.0.0.1", port=host_port(name, 6380), socket_timeout=3, decode_responses=True
        )
        try:
            assert wait_until(name, client.ping, "redis") is True
            assert client.config_get("maxmemory") == {"maxmemory": str(1024**3)}
            stop_promptly(name)
        finally:
            client.close()


# --------------------------------------------------------------------------- nats


async def _jetstream_roundtrip(port: int) -> int:
    nc = await nats.connect(f"nats://127.0.0.1:{port}", connect_timeout=3, allow_reconnect=False)
    try:
        js = nc.jetstream()
        info = await js.account_info()
        await js.add_stream(name="TESTBED", subjects=["testbed.>"])
        ack = await js.publish("testbed.hello", b"hi")
        assert ack.stream == "TESTBED"
        return info.streams
    finally:
        await nc.close()


@pytest.mark.parametrize(
    "args",
    [
        pytest.param((), id="default-config"),
        pytest.param(("-js", "-m", "8222", "-p", "4222", "-sd", "/data/jetstream"), id="backend-args"),
    ],
)
def test_nats_jetstream(images: dict[str, str], args: tuple[str, ...]) -> None:
    with container(images["nats"], *args, ports=(4222, 8222)) as name:
        port = host_port(name, 4222)
        streams = wait_until(name, lambda: asyncio.run(_jetstream_roundtrip(port)), "nats")
        assert streams == 0
        url = f"http://127.0.0.1:{host_port(name, 8222)}/jsz"
        with urllib.request.urlopen(url, timeout=5) as response:
            jsz = json.load(response)
        assert jsz["config"]["store_dir"].startswith("/data/jetstream")
        assert jsz["streams"] == 1
        assert pid1_status(name)["Name"] == "nats-server"
        stop_promptly(name)


# --------------------------------------------------------------------------- the build itself


def test_deriving_from_an_image_with_a_volume_leaves_no_volume(
    images: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The build's `docker create`/`commit` (and the classic builder's step) from an image that declares
    a VOLUME each create an anonymous volume; none may remain."""
    repo = "testbed-local/volume-check"
    prefix = uuid.uuid4().hex[:8]
    tag = f"{repo}:{prefix}-x"
    # Its own repository: deriving must not move the aliases other tests run (testbed-local/postgres:15).
    monkeypatch.setitem(build.IMAGES, "volume-check", (repo, prefix, build.IMAGES["postgres"][2]))
    try:
        with EngineEvents() as events:
            build._build_from_base(images["postgres"], "volume-check", tag, build.recipe_hash())
        created = events.volumes_created()
        assert created, "the source image declares a VOLUME: creating a container from it makes one"
        # (dangling: a volume another session's container uses meanwhile is not ours)
        assert dangling(existing_volumes(created)) == []
        inspect = json.loads(docker("image", "inspect", tag).stdout)[0]["Config"]
        assert inspect["StopSignal"] == "SIGINT" and "/var/lib/postgresql/data" in inspect["Volumes"]
    finally:
        docker("rmi", tag, f"{repo}:{prefix}", check=False)
