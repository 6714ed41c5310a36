"""The migrations phase: the service's migrations applied, and in the dev loop the migrated state kept for
`testbed test`'s reset (and migrated again when a test dropped it)."""

from __future__ import annotations

import time

from testbed.core.errors import ExitCode, TestbedError
from testbed.migrations import engine
from testbed.migrations.files import DEFAULT_SCHEMA, MigrationError
from testbed.parallel import workers
from testbed.run.outcome import Migrated
from testbed.run.store import RunState
from testbed.servers import kind_of, migrations_server


def migrate(run_id: str) -> Migrated:
    """Apply the service's migrations. In a dev-loop run (`testbed up`) that already kept its migrated state,
    a migration added since is applied to that kept state and the database is reset from it, so it lands on
    fresh data; the first time, the migrated state is kept for `testbed test`'s reset."""

    state = RunState.find(run_id)
    record = state.load()
    servers, facts = record.servers, record.facts
    config = record.service_config()
    folder = config.migrations
    target = migrations_server(servers)
    if folder and target is None:  # config validation requires one; a state file edited by hand may not
        raise TestbedError("migrations: the run has no server that runs them", ExitCode.MIGRATIONS)
    kept, lost = workers.kept_state(record)
    if lost and target is not None:
        # The database holds whatever the tests left: start it over empty, migrate it and keep that (below).
        kind_of(target, servers[target]).empty(servers[target], facts[target])
    applied: list[str] = []
    skipped: list[str] = []
    if folder and target is not None:
        kind = kind_of(target, servers[target])
        where = kept or facts[target]
        try:
            schema = config.migrations_schema or DEFAULT_SCHEMA
            result = engine.apply(kind.conninfo(where), folder, schema=schema)
        except MigrationError as exc:
            raise TestbedError(f"migrations: {exc}", ExitCode.MIGRATIONS) from exc
        applied, skipped = list(result.applied), list(result.skipped)
        if kept and applied:
            kind.reset(servers[target], facts[target])
    if record.dev_loop and not kept:
        workers.snapshot(servers, facts)
        with state.update() as current:
            current["kept_at"] = time.time()
    rebuilt = servers[target]["title"] if lost and target is not None else ""
    return Migrated(tuple(applied), tuple(skipped), rebuilt)
