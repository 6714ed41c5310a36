"""`testbed run` and friends: the same playbooks driven through ansible-runner, with readable phase lines,
one exit-code table, secrets kept out of every artifact, and a teardown that survives signals."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

from testbed import __version__, extravars_file, github, junit, pipeline, pytest_run, reaper, redact, secrets
from testbed.errors import ExitCode, TestbedError
from testbed.servers import ordered
from testbed.state import KEPT_FILE, OWNER_FILE, ProcessIdentity, runtime_root, trusted_runtime_root

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
MAX_VERBOSITY = 2  # -vvv and above print decrypted lookup values


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

    def __init__(self, out: IO[str], verbose: int = 0, environ: Mapping[str, str] | None = None) -> None:
        self.out = out
        self.verbose = verbose
        self.environ = os.environ if environ is None else environ
        self.phases: dict[str, Phase] = {}
        self.failure: tuple[str, ExitCode, str] | None = None
        self.teardown_failed = False
        self.run: dict[str, Any] = {}
        self.tests: dict[str, Any] | None = None
        self.coverage: float | None = None
        self.on_secrets: Callable[[], None] | None = None
        self.groups = github.is_github_actions(self.environ)
        self._lock = threading.Lock()
        # On a terminal, a live line shows the step under way once it takes more than a second.
        self.live = self.out.isatty() and not self.groups
        self._status = ""
        self._since = 0.0
        self._stop = threading.Event()
        if self.live:
            threading.Thread(target=self._spin, daemon=True).start()

    def say(self, line: str) -> None:
        if self.live:
            self.out.write("\r\x1b[K")  # the live line gives way to a phase line
        self.out.write(line + "\n")
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
            self._status = f"{PHASES[role]}: {data.get('task', '')}"
            self._since = time.monotonic()
        if kind in ("runner_on_ok", "runner_on_failed", "runner_on_skipped"):
            phase.duration = time.time() - phase.started
        if kind == "runner_on_ok" and self.verbose:
            self.say(f"   · {data.get('task', '')}: {'changed' if data.get('res', {}).get('changed') else 'ok'}")
        if kind == "runner_on_ok":
            self._ok(phase, data.get("task_action", ""), data.get("res") or {})
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

    def _ok(self, phase: Phase, action: str, res: Mapping[str, Any]) -> None:
        module = action.rsplit(".", 1)[-1]
        if module == "testbed_preflight":
            self.run = dict(res)
            self._line(phase, f"✅ Backend: {res['backend']} ({res['backend_reason']})")
            for notice in res.get("notices", []):
                self._line(phase, f"ℹ️  {notice}")
        elif module == "testbed_secrets_check":
            if self.on_secrets:
                self.on_secrets()
            skipped = res.get("skipped_optional") or []
            text = f"{len(res.get('resolved', []))} resolved"
            if skipped:
                text += f"; {', '.join(skipped)} not set (optional)"
            self._line(phase, f"✅ Secrets: {text}")
        elif module == "testbed_ready":
            servers = res.get("servers") or {}
            for name in ordered(list(servers)):  # the kinds' display order; JSON results come sorted
                self._line(phase, f"✅ {servers[name]['title']}: Running on port {servers[name]['port']}")
        elif module == "testbed_migrate":
            applied = len(res.get("applied") or [])
            text = f"Applied successfully ({applied} new)" if applied else "Up to date (0 new)"
            self._line(phase, f"✅ Migrations: {text}")
        elif module == "testbed_deps":
            self._line(phase, f"✅ Dependencies: {'reused' if res.get('cached') else 'installed'}")
        elif module == "testbed_pytest":
            self._tests(phase, res, ok=True)
        elif module == "testbed_teardown":
            self._line(phase, "✅ Teardown: nothing left behind")

    def _tests(self, phase: Phase, res: Mapping[str, Any], ok: bool) -> None:
        if res.get("tests"):
            self.tests = dict(res["tests"])
            self.coverage = res.get("coverage")
        if ok:
            self._line(phase, f"✅ Tests: {pytest_run.tests_line(res['tests'])}")
        if self.coverage is not None:
            self._line(phase, f"✅ Coverage: {self.coverage:g}%")

    def _failed(self, phase: Phase, res: Mapping[str, Any]) -> None:
        phase.status = "failed"
        message = " ".join(str(res.get("msg", "failed")).split())
        code = ExitCode(res["exit_code"]) if res.get("exit_code") in set(ExitCode) else PHASE_EXIT[phase.name]
        if phase.name == "teardown":
            self.teardown_failed = True
        if phase.name == "tests" and "tests" in res:
            self._line(phase, f"❌ {message}")
            self._tests(phase, res, ok=False)
        else:
            title = PHASES[phase.name]
            # Messages may already name their phase ("migrations: …"); say it once, capitalised.
            if message.lower().startswith(f"{phase.name}:"):
                message = message[len(phase.name) + 1 :].strip()
            self._line(phase, f"❌ {title}: {message}")
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


@dataclass
class Options:
    """What a wrapper command asks of the playbooks."""

    service: Path
    playbook: str = "playbooks/integration.yml"
    backend: str = "auto"
    ports: str = "fixed"
    secrets: str = "auto"
    run_id: str = ""
    run_root: Path | None = None
    images: dict[str, str] = field(default_factory=dict)
    pull: bool = False
    verbose: int = 0
    pytest_args: list[str] = field(default_factory=list)
    lease_seconds: int = 0
    readiness_timeout: int = 60
    keep_runner_dir: bool = False
    teardown: str = "always"  # always (run) | on_failure (up) | never (test: the environment stays)
    inventory: Path | None = None  # a remote host's inventory (with limit): the playbook tears down there
    limit: str = ""
    extravars: dict[str, Any] = field(default_factory=dict)


class Interrupted:
    """SIGINT / SIGTERM: cancel the playbook, then tear down from the state file. A second signal makes
    the teardown quicker, never skipped."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.count = 0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Interrupted:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.count += 1
        if self.signum is None:
            self.signum = signum

    def __call__(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.SIGINT if self.signum == signal.SIGINT else ExitCode.SIGTERM


def _scrub_artifacts(private_dir: Path) -> None:
    """ansible-runner records the whole process environment in artifacts/<id>/command."""
    for command in private_dir.glob("artifacts/*/command"):
        command.unlink(missing_ok=True)
    shutil.rmtree(private_dir / "env", ignore_errors=True)


def resolve_env_secrets(config_secrets: list[dict[str, Any]], run_id: str, environ: MutableMapping[str, str]) -> None:
    """--secrets env: move values from the environment into the run's 0600 file, so they never travel
    in ansible-runner's recorded environment. Nothing is written unless every required one is set."""
    secrets.require_env(config_secrets, environ)
    for spec in config_secrets:
        value = environ.pop(spec["variable"], None)
        if value:
            secrets.write_secret(run_id, spec["variable"], value)


def secrets_source(requested: str, environ: Mapping[str, str]) -> str:
    if requested != "auto":
        return requested
    return "ssm" if github.is_github_actions(environ) else "env"


def runner_envvars(project: Path, verbose: int = 0, remote: bool = False) -> dict[str, str]:
    """The environment every playbook testbed drives gets: this project's ansible.cfg, this Python's
    ansible-playbook, verbosity capped, nothing that would print or keep decrypted values."""
    return {
        "ANSIBLE_CONFIG": str(project / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        # A user's shell cannot raise verbosity past -vv (which prints lookup values).
        "ANSIBLE_VERBOSITY": str(min(verbose, MAX_VERBOSITY)),
        "ANSIBLE_DEBUG": "0",
        "ANSIBLE_KEEP_REMOTE_FILES": "0",
        # ansible-runner finds ansible-playbook on PATH: use the one beside this Python.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        # ansible-runner turns host key checking off unless told: SSH hosts must be in known_hosts.
        **({"ANSIBLE_HOST_KEY_CHECKING": "True"} if remote else {}),
    }


def runner_arguments(
    private_dir: Path, project: Path, playbook: str, inventory: Path, envvars: dict[str, str]
) -> dict[str, Any]:
    """What every ansible-runner call of testbed's passes (benchmarks/runner_floor.py measures it bare)."""
    return {
        "private_data_dir": str(private_dir),
        "project_dir": str(project),
        "playbook": playbook,
        "inventory": str(inventory),
        "envvars": envvars,
        "quiet": True,
        "suppress_env_files": True,
        "settings": {"pexpect_timeout": 0.1},
    }


def _private_dir(run_id: str, keep: bool) -> Path:
    """ansible-runner's private data dir, owned by this process: gc removes it once its owner is gone (a
    SIGKILL leaves it behind), unless it was kept on purpose."""
    private_dir = runtime_root() / f"runner-{run_id}"
    private_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if keep:
        (private_dir / KEPT_FILE).touch()
    (private_dir / OWNER_FILE).write_text(
        json.dumps(ProcessIdentity.of(os.getpid()).as_dict()),  # type: ignore[union-attr]
        encoding="utf-8",
    )
    return private_dir


def _extravars(options: Options, run_id: str, run_root: Path, source: str, remote: bool) -> dict[str, Any]:
    """The playbook variables of a wrapper run (passed as data: see extravars_file)."""
    return {
        "testbed_service": str(options.service.resolve()),
        "testbed_backend": options.backend,
        "testbed_ports": options.ports,
        "testbed_run_id": run_id,
        "testbed_run_root": str(run_root),
        "testbed_secrets": source,
        "testbed_images": options.images,
        "testbed_pull": options.pull,
        "testbed_owner_pid": 0 if remote else os.getpid(),
        "testbed_pytest_args": options.pytest_args,
        "testbed_lease_seconds": options.lease_seconds,
        "testbed_readiness_timeout": options.readiness_timeout,
        **({"testbed_hosts": options.limit} if remote and options.limit else {}),
        **options.extravars,
    }


def run_playbook(options: Options, project: Path, config: dict[str, Any], out: IO[str] = sys.stdout) -> int:
    """Drive one playbook through ansible-runner and return the exit code from the table."""
    import ansible_runner  # noqa: PLC0415 - slow import, only for commands that run playbooks

    from testbed.state import new_run_id  # noqa: PLC0415

    run_id = options.run_id or new_run_id()
    run_root = (options.run_root or options.service / "runs").resolve()  # beside the service: git-ignore runs/
    environ = os.environ
    source = secrets_source(options.secrets, environ)
    gha = github.is_github_actions(environ)
    # Everything the wrapper prints goes through the run's redactor; it learns values as they resolve.
    redactor = redact.Redactor()
    out = redact.RedactingWriter(out, redactor)  # type: ignore[assignment]
    renderer = Renderer(out, options.verbose, environ)
    # On a remote host nothing of the run is on this machine: no local sweep, head start or secrets file.
    remote = options.inventory is not None

    if not remote:
        trusted_runtime_root()  # another user's folder (or a world-writable one) is refused before anything
    if options.teardown != "never" and not remote:
        sweep_orphans(out)

    if source == "env" and not remote:
        resolve_env_secrets(config["secrets"], run_id, environ)
        source = "file"

    def mask_secrets() -> None:
        values = secrets.read_secrets(run_id).values() if not remote else []
        redactor.add(values)
        if gha:
            try:
                github.mask(values, sys.__stdout__)
            except ValueError:
                out.write("ℹ️  stdout is a file: secret values are not masked there (and never printed)\n")

    renderer.on_secrets = mask_secrets
    mask_secrets()  # values the wrapper moved from the environment are masked before anything prints

    head_start = _head_start(options, project, run_id, run_root) if source != "ssm" and not remote else None

    private_dir = _private_dir(run_id, options.keep_runner_dir)
    extravars = _extravars(options, run_id, run_root, source, remote)
    inventory = options.inventory.resolve() if options.inventory else project / "inventory" / "hosts.yml"
    envvars = runner_envvars(project, options.verbose, remote)
    interrupted = Interrupted()
    started = time.time()
    # The handlers stay in place through the teardown: a second signal hurries it, never skips it.
    with interrupted:
        try:
            thread, runner = ansible_runner.run_async(
                **runner_arguments(private_dir, project, options.playbook, inventory, envvars),
                limit=options.limit or None,
                # As data: a YAML file whose strings are !unsafe, never templated (a path with {{ }} in it).
                cmdline=extravars_file.cmdline(extravars_file.write(private_dir / "extravars.yml", extravars)),
                event_handler=renderer,
                cancel_callback=interrupted,
                verbosity=min(options.verbose, MAX_VERBOSITY),
                ident="run",
            )
            while thread.is_alive():
                thread.join(0.1)
            status, rc = runner.status, runner.rc
            if head_start is not None:
                head_start.join()
        finally:
            _scrub_artifacts(private_dir)
            if not options.keep_runner_dir:
                shutil.rmtree(private_dir, ignore_errors=True)

        renderer.close()
        if interrupted.signum is not None and options.teardown == "never":
            code = interrupted.exit_code
        elif interrupted.signum is not None:
            code = interrupted.exit_code
            out.write(f"❌ Interrupted by {signal.Signals(interrupted.signum).name}: tearing down\n")
            out.flush()
            if not remote:  # the cancel killed the controller's group; its workers setsid() away from it
                reaper.kill(reaper.playbooks_of(run_id), grace=2.0)
            left = (
                remote_teardown(options, project, run_id, run_root, inventory, envvars)
                if remote
                else teardown_run(run_id, 3.0, hurry=lambda: interrupted.count > 1)
            )
            out.write("✅ Teardown: nothing left behind\n" if not left else f"❌ Teardown: left {', '.join(left)}\n")
        else:
            code = renderer.exit_code(status, rc)
            if status != "successful" and renderer.failure is None:
                out.write(f"❌ Ansible: playbook ended {status} (rc {rc}); rerun with -v\n")
            if not remote and (
                options.teardown == "always" or (options.teardown == "on_failure" and code != ExitCode.PASSED)
            ):
                # Whatever ended the playbook, nothing of the run may stay: sweep from the state file too.
                left = teardown_run(run_id, 3.0)
                if left:
                    out.write(f"❌ Teardown: left {', '.join(left)}\n")
                    code = code if code != ExitCode.PASSED else ExitCode.TEARDOWN

    _finish(build_report(renderer, run_id, run_root / run_id, code, started, options), out, gha, redactor)
    return int(code)


def _finish(report: dict[str, Any], out: IO[str], gha: bool, redactor: redact.Redactor | None = None) -> None:
    """report.json in the run folder, its path on screen, and GitHub's annotations, summary and outputs;
    the run folder scrubbed of every secret value first (server logs, coverage files, anything a test wrote)."""
    redactor = redactor or redact.Redactor()
    report = redactor.data(report)
    folder = Path(report["run_folder"])
    if folder.is_dir():
        redactor.tree(folder, skip=("htmlcov",))  # htmlcov: scrubbed when pytest ended
        (folder / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
        out.write(f"📁 Run folder: {folder}\n")
    if gha:
        publish_to_github(report, out, redactor)
    out.flush()


def sweep_orphans(out: IO[str]) -> None:
    """Every run starts by removing what runs whose owner is gone (or that expired) left behind."""
    from testbed.teardown import gc  # noqa: PLC0415

    try:
        collected = [r for r in gc() if r.removed or r.left]
    except OSError:
        return
    if collected:
        removed = sum(len(r.removed) for r in collected)
        out.write(f"ℹ️  gc: removed {removed} leftover(s) of {len(collected)} earlier run(s) whose owner is gone\n")


def _head_start(options: Options, project: Path, run_id: str, run_root: Path) -> threading.Thread | None:
    """Start native servers while ansible-playbook is still loading: the playbook's own phases then find
    the run (preflight is re-entrant, the start is idempotent and locked) and only wait and migrate.
    Anything that fails here fails again in its own phase, with its message, in the playbook."""
    if options.teardown == "never" or options.backend == "docker":
        return None
    from testbed.config import load_catalogue  # noqa: PLC0415

    try:
        context = pipeline.preflight(
            {
                "service_dir": str(options.service),
                "catalogue": load_catalogue(project),
                "backend": options.backend,
                "ports": options.ports,
                "run_id": run_id,
                "run_root": str(run_root),
                "owner_pid": os.getpid(),
                "lease_seconds": options.lease_seconds,
                "images": options.images,
                "pull": options.pull,
            }
        )
    except TestbedError:
        return None
    if context["backend"] != "native":
        return None

    def start() -> None:
        with contextlib.suppress(TestbedError, OSError):
            pipeline.start_native(run_id)

    thread = threading.Thread(target=start, daemon=True)
    thread.start()
    return thread


def remote_teardown(
    options: Options, project: Path, run_id: str, run_root: Path, inventory: Path, envvars: dict[str, str]
) -> list[str]:
    """After a cancel, a remote host's `always` never ran: tear down there with playbooks/down.yml, which also
    brings the run folder back and removes the host's workspace."""
    import ansible_runner  # noqa: PLC0415

    private_dir = runtime_root() / f"runner-{run_id}-down"
    private_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    (private_dir / OWNER_FILE).write_text(
        json.dumps(ProcessIdentity.of(os.getpid()).as_dict()),  # type: ignore[union-attr]
        encoding="utf-8",
    )
    try:
        result = ansible_runner.run(
            **runner_arguments(private_dir, project, "playbooks/down.yml", inventory, envvars),
            limit=options.limit or None,
            cmdline=extravars_file.cmdline(
                extravars_file.write(
                    private_dir / "extravars.yml",
                    {
                        "testbed_run_id": run_id,
                        "testbed_run_root": str(run_root),
                        **({"testbed_hosts": options.limit} if options.limit else {}),
                    },
                )
            ),
            ident="down",
        )
    finally:
        shutil.rmtree(private_dir, ignore_errors=True)
    if result.rc == 0:
        return []
    return [
        f"the run on {options.limit or 'the inventory'} (`testbed down --inventory {options.inventory} "
        f"--limit {options.limit} --run-id {run_id}` retries)"
    ]


def teardown_run(run_id: str, grace: float, hurry: Callable[[], bool] | None = None) -> list[str]:
    """Tear down whatever the state file still records, the playbook's controller included (it was
    cancelled, or has ended)."""
    from testbed.teardown import teardown_run_id  # noqa: PLC0415

    return teardown_run_id(run_id, grace=grace, include_controller=True, hurry=hurry).left


def build_report(
    renderer: Renderer, run_id: str, run_folder: Path, code: ExitCode, started: float, options: Options
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "service": renderer.run.get("service", options.service.name),
        "backend": renderer.run.get("backend", options.backend),
        "exit_code": int(code),
        "result": "passed" if code == ExitCode.PASSED else "failed",
        "phases": [p.as_dict() for p in renderer.phases.values()],
        "tests": renderer.tests,
        "coverage": renderer.coverage,
        "run_folder": str(run_folder),
        "junit": str(run_folder / "junit.xml"),
        **(
            {"failure": {"phase": PHASES[f[0]], "message": f[2].removeprefix(f"{PHASES[f[0]]}: ")}}
            if (f := renderer.failure)
            else {}
        ),
        "duration": round(time.time() - started, 2),
        "testbed_version": __version__,
    }


def publish_to_github(report: Mapping[str, Any], out: IO[str], redactor: redact.Redactor | None = None) -> None:
    redactor = redactor or redact.Redactor()
    summary = junit.parse(Path(report["junit"])) if report.get("junit") else None
    failures = [junit.Failure(**redactor.data(vars(f))) for f in (summary.failures if summary else [])]
    for line in github.annotations(failures):
        out.write(redactor.text(line) + "\n")
    github.write_summary(report, failures=failures, redact=redactor.text)
    github.write_outputs(report, redact=redactor.text)


def publish_failure(command: str, service: str, error: TestbedError) -> None:
    """A run that failed before its playbook (config, secrets): the step summary still names the phase."""
    phase = "Secrets" if error.exit_code == ExitCode.SECRETS else "Preflight"
    report = {
        "run_id": "",
        "service": service,
        "backend": "",
        "exit_code": int(error.exit_code),
        "result": "failed",
        "phases": [{"name": phase.lower(), "title": phase, "status": "failed", "duration": 0, "line": str(error)}],
        "tests": None,
        "coverage": None,
        "failure": {"phase": phase, "message": f"{command}: {error}"},
        "testbed_version": __version__,
    }
    github.write_summary(report)
    github.write_outputs(report)
