"""Each phase's outcome as a typed value, and the words for it. The Renderer reads a module's result back
with `from_result()` and prints its `lines()`; the CLI's direct paths (a second `testbed up`, `testbed down`,
the wrapper's own teardown) build the same values and print the same `lines()`: one outcome, one wording.
A module returns `as_result()`: plain data, as it travels through Ansible."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from testbed.core.errors import ExitCode, TestbedError
from testbed.servers import ordered

GC_RETRIES = "`testbed gc` retries"


def tests_line(tests: Mapping[str, Any]) -> str:
    """`5 passed in 4.2s`, `1 passed, 1 failed in 3.2s`: pytest's own wording."""
    parts = [
        f"{tests[key]} {word}"
        for key, word in (("passed", "passed"), ("failed", "failed"), ("errors", "errors"), ("skipped", "skipped"))
        if tests.get(key)
    ]
    return f"{', '.join(parts) or 'no tests ran'} in {tests.get('duration', 0):.1f}s"


class PhaseResult(ABC):
    """What a phase's module returns (through Ansible, as plain data) and the lines that say it."""

    @classmethod
    @abstractmethod
    def from_result(cls, res: Mapping[str, Any]) -> PhaseResult: ...

    @abstractmethod
    def as_result(self) -> dict[str, Any]: ...

    @abstractmethod
    def lines(self) -> list[str]: ...


@dataclass(frozen=True)
class BackendChosen(PhaseResult):
    """Preflight: the backend and why, and what the run should know (a stand-in binary, ...)."""

    backend: str
    reason: str
    notices: Sequence[str] = ()

    @classmethod
    def from_result(cls, res: Mapping[str, Any]) -> BackendChosen:
        return cls(str(res["backend"]), str(res["backend_reason"]), tuple(res.get("notices") or ()))

    def as_result(self) -> dict[str, Any]:
        return {"backend": self.backend, "backend_reason": self.reason, "notices": list(self.notices)}

    def lines(self) -> list[str]:
        return [f"✅ Backend: {self.backend} ({self.reason})", *(f"ℹ️  {notice}" for notice in self.notices)]


@dataclass(frozen=True)
class SecretsResolved(PhaseResult):
    resolved: Sequence[str] = ()
    skipped_optional: Sequence[str] = ()

    @classmethod
    def from_result(cls, res: Mapping[str, Any]) -> SecretsResolved:
        return cls(tuple(res.get("resolved") or ()), tuple(res.get("skipped_optional") or ()))

    def as_result(self) -> dict[str, Any]:
        return {"resolved": list(self.resolved), "skipped_optional": list(self.skipped_optional)}

    def lines(self) -> list[str]:
        skipped = f"; {', '.join(self.skipped_optional)} not set (optional)" if self.skipped_optional else ""
        return [f"✅ Secrets: {len(self.resolved)} resolved{skipped}"]


@dataclass(frozen=True)
class ServerUp:
    name: str
    title: str
    port: int
    seconds: float = 0.0
    version: str | None = None


@dataclass(frozen=True)
class ServersReady(PhaseResult):
    """Readiness: every server answers its protocol (`already_up`: a second `testbed up` found them so)."""

    servers: Sequence[ServerUp]
    already_up: bool = False

    @classmethod
    def from_result(cls, res: Mapping[str, Any]) -> ServersReady:
        servers = res.get("servers") or {}
        return cls(
            tuple(
                ServerUp(name, str(s["title"]), int(s["port"]), float(s.get("seconds") or 0), s.get("version"))
                for name, s in servers.items()
            )
        )

    def as_result(self) -> dict[str, Any]:
        return {
            "servers": {
                s.name: {"title": s.title, "port": s.port, "seconds": s.seconds, "version": s.version}
                for s in self.servers
            }
        }

    def lines(self) -> list[str]:
        by_name = {server.name: server for server in self.servers}
        suffix = " (already up)" if self.already_up else ""
        # The kinds' display order, whoever listed them (JSON results come sorted, a state file as started).
        return [
            f"✅ {by_name[name].title}: Running on port {by_name[name].port}{suffix}" for name in ordered(list(by_name))
        ]


@dataclass(frozen=True)
class Migrated(PhaseResult):
    applied: Sequence[str] = ()
    skipped: Sequence[str] = ()
    rebuilt: str = ""  # the server whose kept migrated state (the dev loop's) was gone and was migrated again

    @classmethod
    def from_result(cls, res: Mapping[str, Any]) -> Migrated:
        return cls(tuple(res.get("applied") or ()), tuple(res.get("skipped") or ()), str(res.get("rebuilt") or ""))

    def as_result(self) -> dict[str, Any]:
        return {
            "applied": list(self.applied),
            "skipped": list(self.skipped),
            "rebuilt": self.rebuilt,
            "changed": bool(self.applied),
        }

    def rebuilt_note(self) -> str:
        count = len(self.applied)
        return (
            f"{self.rebuilt}'s kept migrated state was gone: migrated again from empty "
            f"({count} migration{'' if count == 1 else 's'} applied) and kept"
        )

    def lines(self) -> list[str]:
        count = len(self.applied)
        if self.rebuilt:
            return [f"✅ Migrations: {self.rebuilt_note()}"]
        return [f"✅ Migrations: {f'Applied successfully ({count} new)' if count else 'Up to date (0 new)'}"]


@dataclass(frozen=True)
class DependenciesReady(PhaseResult):
    python: str
    cached: bool

    @classmethod
    def from_result(cls, res: Mapping[str, Any]) -> DependenciesReady:
        return cls(str(res.get("python", "")), bool(res.get("cached")))

    def as_result(self) -> dict[str, Any]:
        return {"python": self.python, "cached": self.cached, "changed": not self.cached}

    def lines(self) -> list[str]:
        return [f"✅ Dependencies: {'reused' if self.cached else 'installed'}"]


@dataclass(frozen=True)
class TestsRan(PhaseResult):
    """The tests phase: pytest's counts, coverage, workers, and the dev loop's reset (run while pytest
    starts: `reset_waited` is what it added to the phase). `failure`: the phase's failed line's message."""

    __test__ = False  # not a pytest test class despite the name

    tests: Mapping[str, Any] | None = None
    coverage: float | None = None
    workers: int = 1
    reset_seconds: float | None = None
    reset_waited: float | None = None
    failure: str | None = None
    reset_rebuilt: str = ""  # what the reset rebuilt first (Migrated.rebuilt_note), when its kept state was gone
    kept: tuple[str, ...] = ()  # the failing tests' databases --keep-failed kept

    @classmethod
    def from_result(cls, res: Mapping[str, Any], failure: str | None = None) -> TestsRan:
        return cls(
            dict(res["tests"]) if res.get("tests") else None,
            res.get("coverage"),
            int(res.get("workers") or 1),
            float(res["reset_seconds"]) if res.get("reset_seconds") is not None else None,
            float(res.get("reset_waited") or 0),
            failure,
            str(res.get("reset_rebuilt") or ""),
            tuple(str(name) for name in res.get("kept") or ()),
        )

    def as_result(self) -> dict[str, Any]:
        return {
            "tests": dict(self.tests) if self.tests is not None else None,
            "coverage": self.coverage,
            "workers": self.workers,
            "reset_seconds": self.reset_seconds,
            "reset_waited": self.reset_waited,
            "reset_rebuilt": self.reset_rebuilt,
            "kept": list(self.kept),
        }

    def lines(self) -> list[str]:
        lines = [f"❌ {self.failure}"] if self.failure else []
        if self.reset_seconds is not None:
            rebuilt = f"; {self.reset_rebuilt}" if self.reset_rebuilt else ""
            lines.append(
                f"✅ Reset: back to the freshly migrated state in {self.reset_seconds:.2f}s "
                f"(the tests waited {self.reset_waited or 0:.2f}s){rebuilt}"
            )
        if not self.failure:
            on_workers = f" on {self.workers} workers" if self.workers > 1 else ""
            lines.append(f"✅ Tests: {tests_line(self.tests or {})}{on_workers}")
        if self.coverage is not None:
            lines.append(f"✅ Coverage: {self.coverage:g}%")
        if self.kept:
            lines.append(f"ℹ️  Kept for debugging (--keep-failed): {', '.join(self.kept)}; `testbed env` prints them")
        return lines


@dataclass
class TeardownResult(PhaseResult):
    """What teardown removed and what it left (`retry`: how to finish the job), and what it could not do safely
    although nothing was left (`refused`: a run folder that became a symbolic link, a full disk; one line each,
    with the exit code and kind of the first)."""

    run_id: str
    removed: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    retry: str = GC_RETRIES
    refused: list[str] = field(default_factory=list)
    refused_code: int | None = None
    refused_kind: str | None = None

    @property
    def ok(self) -> bool:
        return not self.left and not self.refused

    def refuse(self, error: TestbedError) -> None:
        if str(error) in self.refused:
            return
        if not self.refused:
            self.refused_code, self.refused_kind = int(error.exit_code), error.details.get("kind")
        elif error.details.get("kind") != self.refused_kind:
            self.refused_kind = None
        self.refused.append(str(error))

    @classmethod
    def from_result(cls, res: Mapping[str, Any]) -> TeardownResult:
        return cls(
            str(res.get("run_id", "")),
            list(res.get("removed") or []),
            list(res.get("left") or []),
            refused=list(res.get("refused") or []),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "removed": self.removed,
            "left": self.left,
            "refused": self.refused,
            "ok": self.ok,
        }

    def as_result(self) -> dict[str, Any]:
        return self.as_dict() | {"changed": bool(self.removed)}

    def error(self) -> TestbedError:
        """The failed phase's error: exit 14 when something was left, else the first refusal's code (and its
        kind, when the refusals are of one kind: the Renderer says a full disk or a link once per run)."""
        if self.left:
            return TestbedError(f"teardown: {self.problem()}", ExitCode.TEARDOWN)
        error = TestbedError(f"teardown: {self.problem()}", ExitCode(self.refused_code or ExitCode.TEARDOWN))
        if self.refused_kind:
            error.details["kind"] = self.refused_kind
        return error

    def problem(self) -> str:
        """What was left or refused, as the failed phase's message says it (without the phase's name)."""
        left = [f"left behind {', '.join(self.left)}; {self.retry}"] if self.left else []
        return "; ".join(left + self.refused)

    def lines(self) -> list[str]:
        return [f"❌ Teardown: {self.problem()}"] if not self.ok else ["✅ Teardown: nothing left behind"]


PHASES: dict[str, str] = {
    "preflight": "Preflight",
    "secrets": "Secrets",
    "servers": "Servers",
    "readiness": "Readiness",
    "migrations": "Migrations",
    "tests": "Tests",
    "teardown": "Teardown",
}


# The exit code of a failed phase, unless the failure names its own (pytest's codes do).
PHASE_EXIT: dict[str, ExitCode] = {
    "preflight": ExitCode.CONFIG,
    "secrets": ExitCode.SECRETS,
    "servers": ExitCode.PROVISIONING,
    "readiness": ExitCode.PROVISIONING,
    "migrations": ExitCode.MIGRATIONS,
    "tests": ExitCode.TESTS_FAILED,
    "teardown": ExitCode.TEARDOWN,
}


# Each module's result, typed: its lines are the words the CLI's direct paths print for the same outcome.
RESULTS: dict[str, type[PhaseResult]] = {
    "testbed_preflight": BackendChosen,
    "testbed_secrets_check": SecretsResolved,
    "testbed_ready": ServersReady,
    "testbed_migrate": Migrated,
    "testbed_deps": DependenciesReady,
    "testbed_pytest": TestsRan,
    "testbed_teardown": TeardownResult,
}


def without_phase(phase: str, message: str) -> str:
    """A message that already names its phase ("migrations: …") says it once, in the line's title."""
    return message[len(phase) + 1 :].strip() if message.lower().startswith(f"{phase}:") else message


def failure_line(phase: str, message: str) -> str:
    return f"❌ {PHASES.get(phase, phase)}: {without_phase(phase, message)}"
