"""Figures for issue #16's per-worker isolation: what a database, a Redis and a NATS of its own cost each
pytest-xdist worker, and what a reset between dev-loop runs costs. Medians of several repetitions, side
by side in one run, on the native servers with the catalogue's settings. Not part of the tests (timing
belongs here, never in assertions).

    .venv/bin/python benchmarks/isolation.py [--repeat 7] [--only clone,instance,account,reset,docker]
                                             [--rows 10000,100000]

clone     PostgreSQL: CREATE DATABASE ... TEMPLATE ... STRATEGY WAL_LOG vs FILE_COPY from a psycopg
          connection to `postgres`, on the reference service's migrated database and on bigger templates
          (--rows rows in its table); DROP DATABASE ... WITH (FORCE), with and without a session on it
instance  a redis-server and a `nats-server -js` of one's own: spawn until the real protocol answers (PING;
          JetStream account info), RSS once ready, stop; and two workers' instances started at once
account   the alternative for NATS: one more account (JetStream enabled) written into a running server's
          config file, `nats-server --signal reload`, until that account's JetStream answers
reset     FLUSHALL of 1000 keys; deleting 5 JetStream streams with nats-py; PostgreSQL drop + clone;
          `import nats` (and redis, psycopg) in a fresh interpreter
docker    (when an engine answers) `docker run` of the local test images (tests/images/build.py) until ready

PostgreSQL, and the Redis and NATS that `reset` empties, come from `testbed up --backend native --ports
auto` on a private copy of services/agent_executor (its migrations applied), with a private runtime folder;
the instances of `instance` and `account` are started here with the argv testbed's own server kinds build,
as the account testbed runs servers as, and polled every 2 ms with testbed's own readiness probes once their
port accepts a connection (see until_ready: why not before).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
import redis

from testbed.config.catalogue import load_catalogue
from testbed.core.host import Account, server_account, which
from testbed.core.ports import free_port
from testbed.servers import kind_of
from testbed.servers.base import Binary, ServerKind

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
BIN = Path(sys.executable).parent
SERVICE = PROJECT / "services" / "agent_executor"
SECTIONS = ("clone", "instance", "account", "reset", "docker")
STRATEGIES = ("WAL_LOG", "FILE_COPY")
POLL = 0.002  # between readiness attempts: fine enough to see a 10 ms start (testbed's own loop waits 50 ms)
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
KEYS = 1000
STREAMS = 5
DIRTY_ROWS = 10_000  # what a test run might have written into each worker's database
CLONE = "bench_clone"
LABEL = "testbed.bench=isolation"


@dataclass
class Row:
    section: str
    label: str
    samples: list[float]  # seconds
    note: str = ""


@dataclass
class Table:
    rows: list[Row] = field(default_factory=list)

    def add(self, section: str, label: str, samples: list[float], note: str = "") -> list[float]:
        self.rows.append(Row(section, label, samples, note))
        return samples

    def note(self, section: str, label: str, note: str) -> None:
        self.rows.append(Row(section, label, [], note))

    def print(self) -> None:
        width = max(len(row.label) for row in self.rows) + 1
        print(f"{'':9}{'measurement':{width}}{'median':>9}{'min':>9}{'max':>9}  note")
        for row in self.rows:
            if row.samples:
                values = "".join(f"{ms(v):>9}" for v in (median(row.samples), min(row.samples), max(row.samples)))
            else:
                values = f"{'':27}"
            print(f"{row.section:9}{row.label:{width}}{values}  {row.note}".rstrip())


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}ms" if seconds < 10 else f"{seconds:.2f}s"


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def sh(*argv: str, env: Mapping[str, str] | None = None) -> str:
    result = subprocess.run(argv, cwd=PROJECT, capture_output=True, text=True, check=False, env=env)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result.stdout


def load() -> str:
    """The 1-minute load average and the share of time some task waited for a CPU (the machine is shared)."""
    pressure = Path("/proc/pressure/cpu")
    waiting = pressure.read_text(encoding="utf-8").split()[1].split("=")[1] if pressure.exists() else "?"
    return f"{os.getloadavg()[0]:.2f} (CPU pressure {waiting}%)"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# ---------------------------------------------------------------------------------------------------- the place


class Workspace:
    """A private folder (reachable by the servers' account), the processes and containers started here, and
    their removal whatever happens."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="bench-isolation-"))
        self.base.chmod(0o755)  # the servers' account walks through it to its data folders
        self.env = dict(os.environ, TESTBED_RUNTIME_DIR=str(self.base / "runtime"))
        self.account = server_account()
        self.processes: list[subprocess.Popen[bytes]] = []
        self.containers = False
        self._count = 0

    def folder(self, name: str) -> Path:
        """A fresh folder owned by the servers' account."""
        self._count += 1
        path = self.base / "instances" / f"{name}-{self._count}"
        path.mkdir(parents=True)
        os.chown(path, self.account.uid, self.account.gid)
        return path

    def spawn(self, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            process = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **as_account(self.account)
            )
        self.processes.append(process)
        return process

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self.containers:
            listed = subprocess.run(
                ["docker", "ps", "-aq", "--filter", f"label={LABEL}"], capture_output=True, text=True, check=False
            ).stdout.split()
            if listed:
                subprocess.run(["docker", "rm", "-f", *listed], capture_output=True, check=False)
        shutil.rmtree(self.base, ignore_errors=True)


def as_account(account: Account) -> dict[str, Any]:
    return {} if account.is_self else {"user": account.uid, "group": account.gid, "extra_groups": []}


@contextlib.contextmanager
def reference_stack(place: Workspace) -> Iterator[dict[str, str]]:
    """`testbed up` of a private copy of the reference service; yields what `testbed env` exports."""
    service = place.base / "agent_executor"
    shutil.copytree(SERVICE, service, ignore=shutil.ignore_patterns("runs", ".venv", "__pycache__"))
    testbed = str(BIN / "testbed")
    sh(
        testbed,
        "up",
        "--service",
        str(service),
        "--backend",
        "native",
        "--ports",
        "auto",
        "--run-folder",
        str(place.base / "runs"),
        env=place.env,
    )
    try:
        exported = sh(testbed, "env", "--service", str(service), env=place.env)
        facts = {}
        for line in exported.splitlines():
            if line.startswith("export ") and "=" in line:
                key, _, value = line.removeprefix("export ").partition("=")
                facts[key] = value.strip("'\"")
        yield facts
    finally:
        sh(testbed, "down", "--service", str(service), env=place.env)


def admin(facts: Mapping[str, str], database: str = "postgres") -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=facts["POSTGRES_HOST"],
        port=int(facts["POSTGRES_PORT"]),
        user=facts["POSTGRES_USER"],
        password=facts["POSTGRES_PASSWORD"],
        dbname=database,
        autocommit=True,
    )


# ------------------------------------------------------------------------------------------------ 1. clones


def fill_template(conn: psycopg.Connection[Any], facts: Mapping[str, str], rows: int) -> str:
    """A template holding the migrated schema and `rows` executions (about 0.5 KiB each), vacuumed."""
    name = f"bench_tpl_{rows}"
    conn.execute(f"DROP DATABASE IF EXISTS {name}")
    conn.execute(f"CREATE DATABASE {name} TEMPLATE {facts['POSTGRES_DB']}")
    write_rows(facts, name, rows)
    with admin(facts, name) as filled:
        filled.execute("VACUUM ANALYZE executions")
    conn.execute("CHECKPOINT")
    return name


def write_rows(facts: Mapping[str, str], database: str, rows: int) -> None:
    with admin(facts, database) as conn:
        conn.execute(
            "INSERT INTO executions (event_id, event_source, event_type, model, input, output) "
            "SELECT 'event-' || g, 'bench', 'execute', 'gpt-4o-mini', "
            "jsonb_build_object('prompt', repeat('p', 200), 'n', g), repeat('o', 200) "
            "FROM generate_series(1, %s) AS g",
            (rows,),
        )


def paired(samples: Mapping[str, list[float]]) -> str:
    """WAL_LOG's time over FILE_COPY's, repetition by repetition (each pair ran back to back, so a busy
    moment of the shared machine slows both), and the median of those ratios."""
    ratios = [wal / copy for wal, copy in zip(samples["WAL_LOG"], samples["FILE_COPY"], strict=True)]
    return f"WAL_LOG/FILE_COPY {median(ratios):.2f}x (median of paired ratios)"


def alternate(i: int) -> tuple[str, ...]:
    """The strategies, in turns: neither always runs first, after the other's drop."""
    return STRATEGIES if i % 2 == 0 else STRATEGIES[::-1]


def size_mib(conn: psycopg.Connection[Any], database: str) -> float:
    row = conn.execute("SELECT pg_database_size(%s)", (database,)).fetchone()
    assert row is not None
    return int(row[0]) / 2**20


def clones(table: Table, facts: Mapping[str, str], repeat: int, row_counts: list[int]) -> None:
    with admin(facts) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {CLONE} WITH (FORCE)")
        templates = [(facts["POSTGRES_DB"], "migrated")]
        templates += [(fill_template(conn, facts, rows), f"+{rows} rows") for rows in row_counts]
        try:
            for template, what in templates:
                samples: dict[str, list[float]] = {strategy: [] for strategy in STRATEGIES}
                drops: list[float] = []
                for i in range(repeat):
                    for strategy in alternate(i):
                        create = f"CREATE DATABASE {CLONE} TEMPLATE {template} STRATEGY {strategy}"
                        samples[strategy].append(timed(partial(conn.execute, create)))
                        drops.append(timed(lambda: conn.execute(f"DROP DATABASE {CLONE} WITH (FORCE)")))
                size = f"{what} template, {size_mib(conn, template):.1f} MiB"
                table.add("clone", f"CREATE DATABASE, {size}, WAL_LOG", samples["WAL_LOG"])
                table.add("clone", f"CREATE DATABASE, {size}, FILE_COPY", samples["FILE_COPY"], paired(samples))
                table.add("clone", "DROP DATABASE WITH (FORCE) of that clone, no session", drops)
            table.add(
                "clone",
                "DROP DATABASE WITH (FORCE), one idle session on it",
                drop_with_session(conn, facts, repeat),
                "the session is terminated first",
            )
        finally:
            for template, _ in templates[1:]:
                conn.execute(f"DROP DATABASE IF EXISTS {template} WITH (FORCE)")


def drop_with_session(conn: psycopg.Connection[Any], facts: Mapping[str, str], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        conn.execute(f"CREATE DATABASE {CLONE} TEMPLATE {facts['POSTGRES_DB']}")
        session = admin(facts, CLONE)
        session.execute("SELECT 1")
        samples.append(timed(lambda: conn.execute(f"DROP DATABASE {CLONE} WITH (FORCE)")))
        with contextlib.suppress(psycopg.Error):
            session.close()
    return samples


# --------------------------------------------------------------------------------------- 2. instance per worker


@dataclass
class Instance:
    kind: ServerKind
    settings: dict[str, Any]
    fact: dict[str, Any]
    process: subprocess.Popen[bytes] | None  # None for a container: its deadline alone ends the wait
    log: Path | None = None

    def exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    @property
    def spawned(self) -> subprocess.Popen[bytes]:
        assert self.process is not None, "a container has no process here"
        return self.process


def located(kind: ServerKind, settings: Mapping[str, Any]) -> str:
    found = kind.locate(settings)
    if not isinstance(found, Binary):
        raise SystemExit(f"{kind.name}: {found}")
    return found.path


def start_instance(place: Workspace, name: str) -> Instance:
    """Spawn one server as testbed would (its kind's argv, the catalogue's settings, auto ports)."""
    settings = dict(load_catalogue()[name])
    kind = kind_of(name, settings)
    for key in kind.ports(settings):
        settings[key] = free_port()
    run_dir = place.folder(name)
    launch = kind.launch(settings, located(kind, settings), run_dir, place.account)
    launch.data_dir.mkdir()
    os.chown(launch.data_dir, place.account.uid, place.account.gid)
    log = run_dir / "server.log"
    return Instance(kind, settings, kind.facts(settings, "127.0.0.1"), place.spawn(launch.argv, log), log)


def until_ready(instance: Instance, *, tcp_first: bool = True) -> float | None:
    """Poll the kind's own readiness probe until it answers; with `tcp_first`, only once its port accepts a
    connection. testbed's NATS probe sent to a port nobody listens on yet does not fail: nats-py waits its
    reconnect_time_wait (2 s) and tries again (max_reconnect_attempts=0 bounds nothing in its first
    connect), which would hide the server's own start time behind nats-py's back-off. Returns when the port
    first accepted (perf_counter) with `tcp_first`, else None."""
    deadline = time.monotonic() + READY_TIMEOUT
    accepted = None
    while True:
        try:
            if tcp_first and accepted is None:
                socket.create_connection((instance.fact["host"], instance.fact["port"]), timeout=1).close()
                accepted = time.perf_counter()
            instance.kind.probe(instance.settings, instance.fact)
        except Exception as exc:
            if instance.exited() or time.monotonic() > deadline:
                tail = instance.log.read_text(errors="replace")[-2000:] if instance.log else ""
                raise SystemExit(f"{instance.kind.name} never answered: {exc}\n{tail}") from exc
            time.sleep(POLL)
        else:
            return accepted


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(STOP_TIMEOUT)


def start_to_ready(place: Workspace, name: str, repeat: int, *, tcp_first: bool) -> tuple[list[float], ...]:
    """Spawn until its port accepts, spawn until ready, RSS then (MiB), SIGTERM until exited: `repeat` times."""
    listening, starts, rss, stops = [], [], [], []
    for _ in range(repeat):
        began = time.perf_counter()
        instance = start_instance(place, name)
        accepted = until_ready(instance, tcp_first=tcp_first)
        starts.append(time.perf_counter() - began)
        listening.append((accepted or began) - began)
        rss.append(rss_mib(instance.spawned.pid))
        stops.append(timed(partial(stop, instance.spawned)))
    return listening, starts, rss, stops


def instances(table: Table, place: Workspace, repeat: int) -> None:
    import nats  # noqa: F401, PLC0415 - imported before the clock starts: `reset` measures the import itself

    for name, what in (("dragonfly", "redis-server"), ("nats", "nats-server -js")):
        warm = start_instance(place, name)  # the binary's pages in the cache, as for every worker after the first
        until_ready(warm)
        probes = [timed(partial(warm.kind.probe, warm.settings, warm.fact)) for _ in range(repeat)]
        stop(warm.spawned)
        listening, starts, rss, stops = start_to_ready(place, name, repeat, tcp_first=True)
        table.add("instance", f"{what}: spawn until its port accepts", listening)
        table.add(
            "instance",
            f"{what}: spawn until TCP, then its probe, answer",
            starts,
            f"RSS once ready {median(rss):.1f} MiB (median)",
        )
        table.add("instance", f"{what}: testbed's probe alone, server running", probes)
        table.add("instance", f"{what}: SIGTERM until exited", stops)
    as_is = start_to_ready(place, "nats", repeat, tcp_first=False)[1]
    table.add(
        "instance",
        "nats-server -js: spawn until testbed's probe as is answers",
        as_is,
        "nats-py's 2 s reconnect back-off",
    )
    table.add(
        "instance",
        "2 workers at once: 2 redis-server + 2 nats-server, all ready",
        two_workers(place, repeat),
        "4 spawns, polled in parallel",
    )


def two_workers(place: Workspace, repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        started = [start_instance(place, name) for name in ("dragonfly", "nats", "dragonfly", "nats")]
        threads = [threading.Thread(target=until_ready, args=(instance,)) for instance in started]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        samples.append(time.perf_counter() - began)
        for instance in started:
            instance.spawned.terminate()
        for instance in started:
            instance.spawned.wait(STOP_TIMEOUT)
    return samples


# ------------------------------------------------------------------------------------ 3. a NATS account instead


def nats_config(port: int, store: Path, accounts: int) -> str:
    entries = "\n".join(
        f"  w{i}: {{ jetstream: enabled, users: [{{ user: w{i}, password: w{i}-secretless }}] }}"
        for i in range(accounts)
    )
    return f'listen: "127.0.0.1:{port}"\njetstream {{ store_dir: "{store}" }}\naccounts {{\n{entries}\n}}\n'


async def account_answers(port: int, account: int) -> None:
    import nats  # noqa: PLC0415

    async def quiet(_: Exception) -> None:
        return None

    nc = await nats.connect(
        f"nats://w{account}:w{account}-secretless@127.0.0.1:{port}",
        connect_timeout=2,
        allow_reconnect=False,
        max_reconnect_attempts=0,
        error_cb=quiet,
    )
    try:
        await nc.jetstream().account_info()
    finally:
        await nc.close()


def answers(port: int, account: int) -> bool:
    try:
        asyncio.run(asyncio.wait_for(account_answers(port, account), timeout=5))
    except Exception:
        return False
    return True


def accounts(table: Table, place: Workspace, repeat: int) -> None:
    """One server, one account more at each repetition: rewrite its config, reload, poll the new account."""
    binary = which("nats-server")
    if binary is None:
        raise SystemExit("nats-server is not installed")
    folder = place.folder("nats-accounts")
    store, config, log = folder / "jetstream", folder / "nats.conf", folder / "server.log"
    store.mkdir()
    os.chown(store, place.account.uid, place.account.gid)
    port = free_port()
    config.write_text(nats_config(port, store, 1), encoding="utf-8")
    process = place.spawn([binary, "-c", str(config)], log)
    deadline = time.monotonic() + READY_TIMEOUT
    while not answers(port, 0):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"nats-server with accounts never answered:\n{log.read_text(errors='replace')}")
        time.sleep(POLL)
    rss_before = rss_mib(process.pid)
    samples = []
    for new in range(1, repeat + 1):
        if answers(port, new):  # else the loop below would time nothing
            raise SystemExit(f"account w{new} answers before it was added")
        began = time.perf_counter()
        config.write_text(nats_config(port, store, new + 1), encoding="utf-8")
        sh(binary, "--signal", f"reload={process.pid}")
        while not answers(port, new):
            if process.poll() is not None or time.perf_counter() - began > READY_TIMEOUT:
                raise SystemExit(f"account w{new} never answered after the reload:\n{log.read_text(errors='replace')}")
            time.sleep(POLL)
        samples.append(time.perf_counter() - began)
    table.add(
        "account",
        "NATS: config + 1 account, --signal reload, until it answers",
        samples,
        f"nats-server {version(binary)}; RSS {rss_before:.1f} MiB with 1 account, "
        f"{rss_mib(process.pid):.1f} with {repeat + 1}",
    )
    stop(process)


def version(binary: str) -> str:
    return sh(binary, "--version").strip().rsplit(" ", 1)[-1]


# --------------------------------------------------------------------------------------------------- 4. resets


def redis_client(facts: Mapping[str, str]) -> redis.Redis:
    return redis.Redis(host=facts["DRAGONFLY_HOST"], port=int(facts["DRAGONFLY_PORT"]), socket_timeout=5)


def fill_keys(facts: Mapping[str, str]) -> None:
    client = redis_client(facts)
    pipe = client.pipeline(transaction=False)
    for i in range(KEYS):
        pipe.set(f"bench:{i}", "v" * 100)
    pipe.execute()
    if client.dbsize() != KEYS:
        raise SystemExit(f"redis holds {client.dbsize()} keys, not {KEYS}")
    client.close()


def flushall(facts: Mapping[str, str]) -> None:
    client = redis_client(facts)
    client.flushall()
    client.close()


async def fill_streams(url: str) -> None:
    import nats  # noqa: PLC0415

    nc = await nats.connect(url)
    js = nc.jetstream()
    for i in range(STREAMS):
        await js.add_stream(name=f"BENCH{i}", subjects=[f"bench{i}.>"])
        for n in range(10):
            await js.publish(f"bench{i}.event", f"message {n}".encode())
        await js.add_consumer(f"BENCH{i}", durable_name=f"worker{i}")
    await nc.close()


async def delete_streams(url: str) -> int:
    """What a reset does: every stream of the account, and with them their consumers."""
    import nats  # noqa: PLC0415

    nc = await nats.connect(url)
    js = nc.jetstream()
    deleted = 0
    for stream in await js.streams_info():
        assert stream.config.name is not None
        await js.delete_stream(stream.config.name)
        deleted += 1
    await nc.close()
    return deleted


def import_time(module: str) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    return float(sh(sys.executable, "-c", code))


def drop_and_clone(conn: psycopg.Connection[Any], database: str, template: str, strategy: str) -> None:
    conn.execute(f"DROP DATABASE {database} WITH (FORCE)")
    conn.execute(f"CREATE DATABASE {database} TEMPLATE {template} STRATEGY {strategy}")


def resets(table: Table, facts: Mapping[str, str], repeat: int) -> None:
    flushes = []
    for _ in range(repeat):
        fill_keys(facts)
        flushes.append(timed(lambda: flushall(facts)))
        if redis_client(facts).dbsize() != 0:
            raise SystemExit("FLUSHALL left keys behind")
    redis_reset = table.add("reset", f"Redis: connect, FLUSHALL ({KEYS} keys), close", flushes)

    import nats  # noqa: F401, PLC0415 - the import is measured on its own below

    url = facts["NATS_URL"]
    deletions = []
    for _ in range(repeat):
        asyncio.run(fill_streams(url))
        began = time.perf_counter()
        deleted = asyncio.run(delete_streams(url))
        deletions.append(time.perf_counter() - began)
        if deleted != STREAMS:
            raise SystemExit(f"deleted {deleted} streams, not {STREAMS}")
    nats_reset = table.add(
        "reset",
        f"NATS: connect, list and delete {STREAMS} streams (+consumers), close",
        deletions,
        "nats-py, already imported",
    )
    for module in ("nats", "redis", "psycopg"):
        table.add("reset", f"import {module} in a fresh interpreter", [import_time(module) for _ in range(repeat)])

    pg_reset = pg_resets(table, facts, repeat)
    total = median(pg_reset) + median(redis_reset) + median(nats_reset)
    table.note("reset", "one worker's reset: sum of the medians (faster PostgreSQL strategy)", f"{ms(total)}")


def pg_resets(table: Table, facts: Mapping[str, str], repeat: int) -> list[float]:
    """Drop + clone of one worker's database; then of two workers' databases after each wrote DIRTY_ROWS
    (what a reset after a run finds: FILE_COPY's checkpoints write the other databases' dirty pages).
    Strategies alternate within each repetition. Returns the faster strategy's single-worker samples."""
    template = facts["POSTGRES_DB"]
    workers = [f"{CLONE}_gw{i}" for i in range(2)]
    single: dict[str, list[float]] = {strategy: [] for strategy in STRATEGIES}
    dirty: dict[str, list[float]] = {strategy: [] for strategy in STRATEGIES}
    with admin(facts) as conn:
        for worker in workers:
            conn.execute(f"CREATE DATABASE {worker} TEMPLATE {template}")
        try:
            for i in range(repeat):
                for strategy in alternate(i):
                    single[strategy].append(timed(partial(drop_and_clone, conn, workers[0], template, strategy)))
            for i in range(repeat):
                for strategy in alternate(i):
                    for worker in workers:
                        write_rows(facts, worker, DIRTY_ROWS)
                    began = time.perf_counter()
                    for worker in workers:
                        drop_and_clone(conn, worker, template, strategy)
                    dirty[strategy].append(time.perf_counter() - began)
        finally:
            for worker in workers:
                conn.execute(f"DROP DATABASE IF EXISTS {worker} WITH (FORCE)")
    for strategy in STRATEGIES:
        table.add(
            "reset",
            f"PostgreSQL: DROP WITH (FORCE) + clone of migrated, {strategy}",
            single[strategy],
            paired(single) if strategy == STRATEGIES[-1] else "",
        )
    for strategy in STRATEGIES:
        table.add(
            "reset",
            f"PostgreSQL: 2 workers' drop + clone after {DIRTY_ROWS} rows each, {strategy}",
            dirty[strategy],
            paired(dirty) if strategy == STRATEGIES[-1] else "",
        )
    return min(single.values(), key=median)


# ---------------------------------------------------------------------------------------------------- 5. docker


def dockers(table: Table, place: Workspace, repeat: int) -> None:
    from testbed.backends import docker_api  # noqa: PLC0415

    if docker_api.engine_answers(timeout=5) is None:
        table.note("docker", "skipped", "no Docker engine answers")
        return
    sys.path.insert(0, str(PROJECT / "tests"))
    from images.build import ensure_images  # type: ignore[import-not-found]  # noqa: PLC0415

    images = ensure_images()
    place.containers = True
    for name in ("dragonfly", "nats"):
        # The first container is a warm-up (the image's layers in the page cache).
        runs = [run_container(name, images[name], f"bench-isolation-{name}-{i}") for i in range(repeat + 1)][1:]
        returned, ready, removed = (list(samples) for samples in zip(*runs, strict=True))
        table.add("docker", f"{name} ({images[name]}): docker run -d returns", returned)
        table.add("docker", f"{name} ({images[name]}): docker run -d until ready", ready, "the same probe")
        table.add("docker", f"{name}: docker rm -f", removed)


def run_container(name: str, image: str, container: str) -> tuple[float, float, float]:
    """The kind's container as testbed's Docker backend makes it (command, tmpfs, ports on 127.0.0.1):
    until `docker run -d` returns, until the probe answers, and `docker rm -f`."""
    settings = dict(load_catalogue()[name])
    kind = kind_of(name, settings)
    parts = kind.container(settings)
    inside = kind.ports(settings)
    published = {key: free_port() for key in inside}
    settings |= published
    argv = ["docker", "run", "-d", "--rm", "--label", LABEL, "--name", container]
    argv += [arg for key, port in inside.items() for arg in ("-p", f"127.0.0.1:{published[key]}:{port}")]
    argv += [arg for path in parts.tmpfs for arg in ("--tmpfs", path)]
    argv += [image, *parts.command]
    began = time.perf_counter()
    sh(*argv)
    returned = time.perf_counter() - began
    until_ready(Instance(kind, settings, kind.facts(settings, "127.0.0.1"), None))
    ready = time.perf_counter() - began
    return returned, ready, timed(partial(sh, "docker", "rm", "-f", container))


# ------------------------------------------------------------------------------------------------------ main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--only", default=",".join(SECTIONS))
    parser.add_argument("--rows", default="10000,100000", help="rows of the bigger clone templates")
    args = parser.parse_args()
    wanted = set(args.only.split(","))
    if wanted - set(SECTIONS):
        parser.error(f"--only: unknown {sorted(wanted - set(SECTIONS))}; choose from {','.join(SECTIONS)}")
    row_counts = [int(n) for n in args.rows.split(",") if n]
    table = Table()
    before = load()
    place = Workspace()
    try:
        if wanted & {"clone", "reset"}:
            with reference_stack(place) as facts:
                if "clone" in wanted:
                    clones(table, facts, args.repeat, row_counts)
                if "reset" in wanted:
                    resets(table, facts, args.repeat)
        if "instance" in wanted:
            instances(table, place, args.repeat)
        if "account" in wanted:
            accounts(table, place, args.repeat)
        if "docker" in wanted:
            dockers(table, place, args.repeat)
    finally:
        place.close()
    print(f"{os.cpu_count()} cores; --repeat {args.repeat}; load average {before} before, {load()} after")
    table.print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
