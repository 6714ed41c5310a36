"""What a run prints: ansible-runner's job events turned into phase lines (one per outcome, the same words
the CLI's direct paths use), the live line on a terminal, and GitHub Actions' collapsible groups."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from testbed.core.errors import ExitCode
from testbed.report import github
from testbed.run.outcome import (
    PHASE_EXIT,
    PHASES,
    RESULTS,
    PhaseResult,
    TestsRan,
    failure_line,
    without_phase,
)


@dataclass
class Phase:
    name: str
    started: float
    duration: float = 0.0
    status: str = "ok"
    lines: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": PHASES.get(self.name, self.name),
            "status": self.status,
            "started": self.started,
            "duration": round(self.duration, 3),
            "line": " / ".join(self.lines),
        }


class Renderer:
    """Turns ansible-runner job events into the seed's phase lines; remembers what the report needs."""

    def __init__(
        self, out: IO[str], verbose: int = 0, environ: Mapping[str, str] | None = None, prefix: str = ""
    ) -> None:
        self.out = out
        self.verbose = verbose
        self.environ = os.environ if environ is None else environ
        self.prefix = prefix  # `[host] `: one of several hosts' runs printing into the same output
        self.phases: dict[str, Phase] = {}
        self.failure: tuple[str, ExitCode, str] | None = None
        self.kinds_said: set[str] = set()  # a full disk, a link: said once, whichever phases hit it
        self.teardown_failed = False
        self.run: dict[str, Any] = {}
        self.tests: dict[str, Any] | None = None
        self.coverage: float | None = None
        self.on_secrets: Callable[[], None] | None = None
        # Several hosts' lines interleave: neither collapsible groups nor one live line can follow them.
        self.groups = github.is_github_actions(self.environ) and not prefix
        self._lock = threading.Lock()
        # On a terminal, a live line shows the step under way once it takes more than a second.
        self.live = self.out.isatty() and not self.groups and not prefix
        self._status = ""
        self._since = 0.0
        self._stop = threading.Event()
        if self.live:
            threading.Thread(target=self._spin, daemon=True).start()

    def say(self, line: str) -> None:
        if self.live:
            self.out.write("\r\x1b[K")  # the live line gives way to a phase line
        self.out.write(self.prefix + line + "\n")
        self.out.flush()

    def _spin(self) -> None:
        frames = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
        tick = 0
        while not self._stop.wait(0.1):
            with self._lock:
                elapsed = time.monotonic() - self._since
                if self._status and elapsed >= 1.0:
                    self.out.write(f"\r\x1b[K{frames[tick % len(frames)]} {self._status} {elapsed:.0f}s")
                    self.out.flush()
            tick += 1

    def _phase(self, role: str) -> Phase:
        if role not in self.phases:
            # Under GitHub Actions each phase is a collapsible group in the job's log.
            if self.groups and self.phases:
                github.end_group(self.out)
            if self.groups:
                github.begin_group(PHASES[role], self.out)
            self.phases[role] = Phase(role, time.time())
        return self.phases[role]

    def close(self) -> None:
        """End the live line, and the last phase's group, so what follows (the run folder, annotations) shows."""
        self._stop.set()
        if self.live:
            with self._lock:
                self._status = ""
                self.out.write("\r\x1b[K")
                self.out.flush()
        if self.groups and self.phases:
            github.end_group(self.out)
            self.groups = False

    def _line(self, phase: Phase, line: str) -> None:
        phase.lines.append(line)
        self.say(line)

    def __call__(self, event: Mapping[str, Any]) -> bool:
        with self._lock:
            self._handle(event)
        return True  # ansible-runner writes the job event only when the handler returns True

    def _handle(self, event: Mapping[str, Any]) -> None:
        data = event.get("event_data") or {}
        role = data.get("role") or ""
        kind = event.get("event", "")
        if role == "workspace":  # a remote host's copy of the service belongs to preflight, its return to teardown
            role = "teardown" if "teardown" in self.phases else "preflight"
        if role not in PHASES:
            return
        phase = self._phase(role)
        if kind == "playbook_on_task_start":
            self._task_started(role, str(data.get("task", "")))
        if kind in ("runner_on_ok", "runner_on_failed", "runner_on_skipped"):
            phase.duration = time.time() - phase.started
        if kind == "runner_on_ok":
            self._task_ok(phase, str(data.get("task", "")), data.get("task_action", ""), data.get("res") or {})
        elif kind == "runner_on_failed" and not data.get("ignore_errors"):
            self._failed(phase, data.get("res") or {})
        elif kind == "runner_on_unreachable":
            self._failed(
                phase,
                {
                    "msg": f"host {data.get('host')} unreachable: {data.get('res', {}).get('msg', '')}",
                    "exit_code": int(ExitCode.PROVISIONING),
                },
            )

    def task_started(self, role: str, task: str) -> None:
        """A task of `role`'s phase starts (what a playbook_on_task_start event says): the wrapper's own run of
        a playbook's tasks (testbed.ansible.in_process) reports through these, in the events' words."""
        with self._lock:
            self._phase(role)
            self._task_started(role, task)

    def task_done(self, role: str, task: str, action: str, res: Mapping[str, Any]) -> None:
        """The task ended with the module result `res` (failed or not), as a runner_on_ok/failed event says."""
        with self._lock:
            phase = self._phase(role)
            phase.duration = time.time() - phase.started
            if res.get("failed"):
                self._failed(phase, res)
            else:
                self._task_ok(phase, task, action, res)

    def _task_started(self, role: str, task: str) -> None:
        self._status = f"{PHASES[role]}: {task}"
        self._since = time.monotonic()

    def _task_ok(self, phase: Phase, task: str, action: str, res: Mapping[str, Any]) -> None:
        if self.verbose:
            self.say(f"   · {task}: {'changed' if res.get('changed') else 'ok'}")
        self._ok(phase, action, res)

    def _ok(self, phase: Phase, action: str, res: Mapping[str, Any]) -> None:
        module = action.rsplit(".", 1)[-1]
        if module not in RESULTS:
            return
        if module == "testbed_preflight":
            self.run = dict(res)
        if module == "testbed_secrets_check" and self.on_secrets:
            self.on_secrets()
        self._say_result(phase, RESULTS[module].from_result(res))

    def _say_result(self, phase: Phase, result: PhaseResult) -> None:
        if isinstance(result, TestsRan) and result.tests is not None:
            self.tests = dict(result.tests)
            self.coverage = result.coverage
        for line in result.lines():
            self._line(phase, line)

    def _failed(self, phase: Phase, res: Mapping[str, Any]) -> None:
        phase.status = "failed"
        message = " ".join(str(res.get("msg", "failed")).split())
        code = ExitCode(res["exit_code"]) if res.get("exit_code") in set(ExitCode) else PHASE_EXIT[phase.name]
        if phase.name == "teardown":
            self.teardown_failed = True
        kind = res.get("kind")
        if kind in self.kinds_said:
            phase.lines.append(failure_line(phase.name, without_phase(phase.name, message)))
        elif phase.name == "tests" and "tests" in res:
            self._say_result(phase, TestsRan.from_result(res, failure=message))
        else:
            message = without_phase(phase.name, message)
            self._line(phase, failure_line(phase.name, message))
        if kind:
            self.kinds_said.add(str(kind))
        for line in res.get("log_tail") or []:
            self.say(f"   │ {line}")
        if self.failure is None or self.failure[0] == "teardown":
            self.failure = (phase.name, code, message)

    def exit_code(self, status: str, rc: int) -> ExitCode:
        """The first failure's code; a failed teardown only when nothing failed before it."""
        if self.failure:
            return self.failure[1]
        if status == "successful" and rc == 0:
            return ExitCode.PASSED
        return ExitCode.INTERNAL_ERROR


class HostRenderers:
    """One play over several hosts (`testbed run --shards` on an inventory group): a Renderer per host, each
    line prefixed with its host, so every host's phases and outcome stay its own and one failing host hides
    nothing of the others'."""

    def __init__(
        self, out: IO[str], hosts: Sequence[str], verbose: int = 0, environ: Mapping[str, str] | None = None
    ) -> None:
        width = max(len(host) for host in hosts)
        self.hosts = {host: Renderer(out, verbose, environ, prefix=f"[{host}]".ljust(width + 3)) for host in hosts}

    @property
    def on_secrets(self) -> Callable[[], None] | None:
        return next(iter(self.hosts.values())).on_secrets

    @on_secrets.setter
    def on_secrets(self, callback: Callable[[], None] | None) -> None:
        for renderer in self.hosts.values():
            renderer.on_secrets = callback

    def __call__(self, event: Mapping[str, Any]) -> bool:
        data = event.get("event_data") or {}
        renderer = self.hosts.get(str(data.get("host", "")))
        if renderer is not None:
            # A task starts once for the play; each host's own start of it is its runner_on_start.
            kind = event.get("event")
            renderer({**event, "event": "playbook_on_task_start"} if kind == "runner_on_start" else event)
        return True

    def close(self) -> None:
        for renderer in self.hosts.values():
            renderer.close()

    def exit_codes(self, status: str, rc: int) -> dict[str, ExitCode]:
        """Each host's code: its first failure's; passed when it reported its tests and nothing failed there;
        otherwise the play's (a host that never got as far as its tests, with no failure of its own)."""
        return {
            host: renderer.exit_code("successful", 0)
            if renderer.failure or renderer.tests is not None
            else renderer.exit_code(status, rc)
            for host, renderer in self.hosts.items()
        }
