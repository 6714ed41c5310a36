"""The one schema of what merge takes from a shard: its report.json (ShardReport), its state.json
(ShardState) and the service name it recorded, each value typed and in range."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from testbed.config.servers import SERVICE_NAME
from testbed.parallel import split as parallel_split
from testbed.run.record import ShardInfo
from testbed.shards.folder import MAX_PATH, MAX_SECONDS, Fields

MAX_SHARDS = parallel_split.MAX_SHARDS


MAX_COUNT = 10_000_000  # tests of one kind in one shard


MAX_LINE = 1_000_000  # a line number coverage recorded


_MAX_PHASES = 64


_BACKENDS = ("native", "docker", "auto", "", "?")  # "?" and "": a run that stopped before choosing one


_WORD = re.compile(r"^[a-z0-9_-]{1,40}$")


def service_name(fields: Fields, key: str) -> str:
    if fields.data.get(key) == "":
        return ""  # a run that failed before it read the config
    return fields.text(key, SERVICE_NAME, 100, "a service name (letters, digits, '_', '.', '-')")


@dataclass(frozen=True)
class Counts:
    """A shard's test counts (report.json "tests")."""

    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    duration: float = 0.0

    @classmethod
    def parse(cls, fields: Fields) -> Counts:
        kinds = ("passed", "failed", "errors", "skipped")
        counts = {kind: fields.integer(kind, 0, MAX_COUNT) for kind in kinds}
        return cls(**counts, duration=fields.number("duration", 0, MAX_SECONDS) or 0.0)

    def as_dict(self) -> dict[str, Any]:
        return {**vars(self)}


@dataclass(frozen=True)
class Phase:
    """One phase of a shard's run (report.json "phases"): merge keeps when it started."""

    name: str
    title: str
    status: str
    started: float | None
    duration: float
    line: str

    @classmethod
    def parse(cls, fields: Fields) -> Phase:
        return cls(
            name=fields.text("name", _WORD, 40, "a phase name"),
            title=fields.text("title", None, 100),
            status=fields.text("status", _WORD, 40, "a phase status"),
            started=fields.number("started", 0, 1e11),
            duration=fields.number("duration", 0, MAX_SECONDS) or 0.0,
            line=fields.text("line", None, 10_000),
        )

    def as_dict(self) -> dict[str, Any]:
        return {**vars(self)}


@dataclass(frozen=True)
class ShardReport:
    """What merge takes from a shard's report.json (the wrapper's report.build_report), checked."""

    run_id: str | None
    service: str
    backend: str
    exit_code: int
    tests: Counts | None
    coverage: float | None
    duration: float | None
    phases: tuple[Phase, ...] = ()

    @classmethod
    def parse(cls, fields: Fields) -> ShardReport:
        tests = fields.child("tests")
        return cls(
            run_id=fields.run_id("run_id"),
            service=service_name(fields, "service"),
            backend=fields.choice("backend", _BACKENDS, "?"),
            exit_code=fields.exit_code("exit_code"),
            tests=Counts.parse(tests) if tests is not None else None,
            coverage=fields.number("coverage", 0, 100),
            duration=fields.number("duration", 0, MAX_SECONDS),
            phases=tuple(Phase.parse(p) for p in fields.children("phases", _MAX_PHASES)),
        )


@dataclass(frozen=True)
class ShardState:
    """What merge takes from a shard's state.json: its split, and for a run without the wrapper how it ended."""

    run_id: str | None
    service: str
    backend: str
    torn_down: bool
    split: ShardInfo | None

    @classmethod
    def parse(cls, fields: Fields) -> ShardState:
        found = fields.child("shard")
        split = None
        if found is not None:
            count = found.integer("count", 1, MAX_SHARDS)
            index = found.integer("index", 1, count)
            if not index:
                raise found.fail("index", "is missing")
            split = ShardInfo(index, count, found.text("durations", None, MAX_PATH))
        return cls(
            run_id=fields.run_id("run_id"),
            service=service_name(fields, "service"),
            backend=fields.choice("backend", _BACKENDS, "?"),
            torn_down=fields.number("torn_down", 0, 1e11) is not None,
            split=split,
        )
