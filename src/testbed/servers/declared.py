"""Servers a service declares itself in testbed.yml, beside the catalogue's:

    servers:
      - postgres
      - s3:
          port: 15000
          native: {command: [moto_server, -H, "{{ host }}", -p, "{{ port }}"]}
          image: motoserver/moto:5.1.4
          container_port: 5000
          ready: {http: /moto-api/}
          env: {AWS_ENDPOINT_URL: "http://{{ host }}:{{ port }}"}

A declaration is validated here (parse) and served by one Declared kind per name."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from testbed.core import supervisor
from testbed.core.environ import bad_env_names
from testbed.core.errors import ExitCode, TestbedError
from testbed.core.host import Account, Launch, which
from testbed.core.templates import render_all
from testbed.servers.base import Binary, ContainerParts, ServerKind
from testbed.servers.base_reset import TestReset

DECLARED_KEY = "declared"  # marks a server's settings as the service's own declaration
READY_KINDS = ("http", "tcp", "command")
PROBE_TIMEOUT = 5.0
_KEYS = ("title", "port", "native", "image", "container_port", "command", "ready", "env", "workers", "reset")
WORKER_SHARES = ("instance", "shared")  # a declared server cannot be shared logically: testbed cannot know how


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _strings(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(item, str) for item in value)


def _reset_problems(spec: Mapping[str, Any], where: str) -> list[str]:
    if "reset" not in spec:
        return []
    if not _strings(spec["reset"]):
        return [f"'{where}.reset' (run before each test with tests.isolation: test) must be a list of strings"]
    if spec.get("workers") == "shared":
        return [f"'{where}.reset' with 'workers: shared' resets the server under other workers' tests: drop one"]
    return []


def parse(name: str, spec: object, errors: list[str]) -> dict[str, Any] | None:
    """The settings of one declared server, or None after naming each problem in `errors`."""
    where = f"servers.{name}"
    if not isinstance(spec, dict):
        errors.append(f"'{where}' must be a mapping (port, native, image, ready, env), got {type(spec).__name__}")
        return None
    before = len(errors)
    errors.extend(f"unknown key '{where}.{key}' (allowed: {', '.join(_KEYS)})" for key in spec if key not in _KEYS)
    port = spec.get("port")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        errors.append(f"'{where}.port' is required: a TCP port (1-65535) the server listens on, got {port!r}")
    native = spec.get("native", {})
    if not isinstance(native, dict) or set(native) - {"command"}:
        errors.append(f"'{where}.native' must be a mapping with 'command' (a list of strings)")
    elif "command" in native and not _strings(native["command"]):
        errors.append(f"'{where}.native.command' must be a non-empty list of strings")
    if "image" in spec and not isinstance(spec["image"], str):
        errors.append(f"'{where}.image' must be a string")
    if "container_port" in spec and not (_is_int(spec["container_port"]) and 0 < spec["container_port"] < 65536):
        errors.append(f"'{where}.container_port' must be a TCP port (1-65535)")
    if "command" in spec and not _strings(spec["command"]):
        errors.append(f"'{where}.command' (the container's command) must be a non-empty list of strings")
    if "title" in spec and not isinstance(spec["title"], str):
        errors.append(f"'{where}.title' must be a string")
    ready = spec.get("ready", {"tcp": True})
    if not isinstance(ready, dict) or len(ready) != 1 or next(iter(ready)) not in READY_KINDS:
        errors.append(
            f"'{where}.ready' must be one of {{http: /path}}, {{tcp: true}} or {{command: [...]}}, got {ready!r}"
        )
    elif "http" in ready and not (isinstance(ready["http"], str) and ready["http"].startswith("/")):
        errors.append(f"'{where}.ready.http' must be a path starting with '/', got {ready['http']!r}")
    elif "tcp" in ready and ready["tcp"] is not True:
        errors.append(f"'{where}.ready.tcp' must be true")
    elif "command" in ready and not _strings(ready["command"]):
        errors.append(f"'{where}.ready.command' must be a non-empty list of strings")
    if spec.get("workers", "instance") not in WORKER_SHARES:
        errors.append(f"'{where}.workers' must be one of {', '.join(WORKER_SHARES)}, got {spec['workers']!r}")
    errors.extend(_reset_problems(spec, where))
    env = spec.get("env", {})
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        errors.append(f"'{where}.env' must map variable names to strings")
    else:
        errors.extend(bad_env_names(env, f"{where}.env"))  # the rule the top-level `env` keys follow
    if len(errors) > before:
        return None
    return {
        DECLARED_KEY: True,
        "title": spec.get("title", name),
        "port": port,
        "container_port": spec.get("container_port", port),
        "native_command": list(native.get("command", [])),
        "image": spec.get("image", ""),
        "container_command": list(spec.get("command", [])),
        "ready": dict(ready),
        "env": dict(env),
        "workers": spec.get("workers", "instance"),
        "reset_command": list(spec.get("reset", [])),
    }


class _HttpRedirectsOnly(urllib.request.HTTPRedirectHandler):
    """HTTP readiness follows a redirect to http(s) only (urllib's own handler also follows one to ftp://)."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        scheme = urllib.parse.urlsplit(newurl).scheme.lower()
        if scheme not in ("http", "https"):
            raise urllib.error.HTTPError(
                newurl, code, f"redirect to {newurl} refused: readiness follows only http:// and https://", headers, fp
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _http_get(url: str) -> str:
    with urllib.request.build_opener(_HttpRedirectsOnly).open(url, timeout=2) as response:
        server = response.headers["Server"]
        return f"HTTP {response.status}" + (f" ({server})" if server else "")


def _run_command(argv: list[str], run_id: str, what: str = "ready command") -> str:
    """Run a `ready: {command: [...]}` (or a `reset:`) once. Supervised, as the tests are: whatever it leaves
    running (`sleep 1000 &`) is killed when it ends, or after PROBE_TIMEOUT, and what escapes carries the run's
    marker."""
    code, out, err = supervisor.run(
        argv,
        state=None,  # not recorded: it is polled, and the marker finds it
        run_id=run_id,
        what=what,
        deadline=PROBE_TIMEOUT,
        env=dict(os.environ),
        cwd=Path.cwd(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    stdout, stderr = out.decode(errors="replace").strip(), err.decode(errors="replace").strip()
    if code == ExitCode.DEADLINE:
        raise ConnectionError(f"{what} did not finish in {PROBE_TIMEOUT:g}s: stopped")
    if code != 0:
        last = (stderr or stdout).splitlines()[-1:] or ["no output"]
        raise ConnectionError(f"{what} exited {code}: {last[0]}")
    return (stdout.splitlines() or ["ready"])[0][:80]


class _ResetCommand(TestReset):
    """A declared server's `reset:` command, run with the worker's instance's host, port and url before each test;
    supervised as a ready command is (whatever it leaves running is stopped)."""

    def __init__(self, name: str, argv: Callable[[Mapping[str, Any]], list[str]]) -> None:
        self.name = name
        self.argv = argv

    def reset(self, fact: Mapping[str, Any]) -> None:
        try:
            _run_command(self.argv(fact), "", "reset command")
        except ConnectionError as exc:
            raise TestbedError(f"server {self.name}: {exc}", ExitCode.PROVISIONING) from exc


def _render(argv: list[str], values: Mapping[str, Any], where: str, first: int = 0) -> list[str]:
    # Named by their index in the declaration (`first`: argv may start after the command itself).
    rendered = render_all({f"{where}[{i}]": arg for i, arg in enumerate(argv, start=first)}, values)
    return list(rendered.values())


class Declared(ServerKind):
    """One server a service declared; its settings say everything (see parse)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def ports(self, settings: Mapping[str, Any]) -> dict[str, int]:
        return {"port": int(settings["container_port"])}

    def worker_share(self, settings: Mapping[str, Any]) -> str:
        return str(settings.get("workers", "instance"))

    def exited_hint(self, settings: Mapping[str, Any]) -> str:
        # A command that forks into the background and exits looks like a server that died: testbed keeps and
        # stops the process it started, so the server must be that process.
        return "a declared server's command must stay in the foreground: run it in the foreground, not as a daemon"

    def unavailable(self, settings: Mapping[str, Any], backend: str) -> str | None:
        if backend == "native" and not settings["native_command"]:
            return f"'servers.{self.name}.native.command' is missing: the native backend runs it (or --backend docker)"
        if backend == "docker" and not settings["image"]:
            return f"'servers.{self.name}.image' is missing: the Docker backend runs it (or use --backend native)"
        return None

    def locate(self, settings: Mapping[str, Any]) -> Binary | str:
        program = settings["native_command"][0] if settings["native_command"] else ""
        # Console scripts installed beside testbed (pip install moto[server]) count as installed.
        beside = Path(sys.executable).parent / program
        found = which(program) or (str(beside) if program and shutil.which(str(beside)) else None)
        if found:
            return Binary(found)
        return f"{program or 'a command'} (server {self.name}: install it or fix 'servers.{self.name}.native.command')"

    def launch(self, settings: Mapping[str, Any], binary: str, run_dir: Path, account: Account) -> Launch:
        data = run_dir / self.name
        argv = [binary, *self._native_arguments(settings, data)]
        return Launch(self.name, argv, data, signal.SIGTERM, as_invoker=True)

    def _native_arguments(self, settings: Mapping[str, Any], data: Path) -> list[str]:
        values = {"host": "127.0.0.1", "port": int(settings["port"]), "data_dir": str(data)}
        return _render(settings["native_command"][1:], values, f"servers.{self.name}.native.command", first=1)

    def container(self, settings: Mapping[str, Any]) -> ContainerParts:
        values = {"host": "0.0.0.0", "port": int(settings["container_port"])}  # noqa: S104 - inside its container
        command = settings["container_command"]
        return ContainerParts(command=_render(command, values, f"servers.{self.name}.command") if command else [])

    def _ready_command(self, settings: Mapping[str, Any], fact: Mapping[str, Any]) -> list[str]:
        return _render(settings["ready"]["command"], dict(fact), f"servers.{self.name}.ready.command")

    def _reset_command(self, settings: Mapping[str, Any], fact: Mapping[str, Any]) -> list[str]:
        return _render(settings["reset_command"], dict(fact), f"servers.{self.name}.reset")

    def test_reset(
        self, settings: Mapping[str, Any], fact: Mapping[str, Any], workers: int, *, eager: bool = True
    ) -> TestReset | None:
        if not settings.get("reset_command"):
            return None
        return _ResetCommand(self.name, lambda worker_fact: self._reset_command(settings, worker_fact))

    def template_problems(self, settings: Mapping[str, Any]) -> list[str]:
        """Each command's templates rendered with the names it gets when it runs (on either backend), so that
        preflight names an unknown one, or a syntax error, by its place in the declaration."""
        checks: list[Callable[[], object]] = [
            lambda: self._native_arguments(settings, Path("/data")),  # the values do not matter, the names do
            lambda: self.container(settings),
        ]
        if "command" in settings["ready"]:
            checks.append(lambda: self._ready_command(settings, self.facts(settings, "127.0.0.1")))
        if settings.get("reset_command"):
            checks.append(lambda: self._reset_command(settings, self.facts(settings, "127.0.0.1")))
        problems = []
        for check in checks:
            try:
                check()
            except TestbedError as exc:
                problems.append(str(exc))
        return problems

    def facts(self, settings: Mapping[str, Any], host: str) -> dict[str, Any]:
        port = int(settings["port"])
        scheme = "http" if "http" in settings["ready"] else "tcp"
        return {"host": host, "port": port, "url": f"{scheme}://{host}:{port}"}

    def env_templates(self, settings: Mapping[str, Any]) -> dict[str, str]:
        return dict(settings["env"])

    def probe(self, settings: Mapping[str, Any], fact: Mapping[str, Any], run_id: str = "") -> str:
        ready = settings["ready"]
        host, port = fact["host"], int(fact["port"])
        if "http" in ready:
            return _http_get(f"http://{host}:{port}{ready['http']}")
        if "command" in ready:
            return _run_command(self._ready_command(settings, fact), run_id)
        with socket.create_connection((host, port), timeout=2):
            return "accepts TCP connections"
