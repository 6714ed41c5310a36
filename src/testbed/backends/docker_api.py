"""The Docker Engine calls of a run: its network and containers (created at once, in the Ansible worker or the
wrapper's head start), container logs, port read-back, readiness, and teardown outside Ansible (signals, gc).

They go through the Docker SDK for Python, imported on first use: its import (requests, urllib3) costs
about 0.09 s, nothing next to a Docker-backend run, but most of a native `testbed down` (0.15 s), which
never calls it. ``engine_answers`` alone stays a hand-written GET over the socket: it is the "is there an
engine at all?" probe on paths that otherwise never touch Docker (the auto backend choice ending on
native, gc, teardown of a native run that lost its state file). docs/DESIGN.md "Libraries" has the figures.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import socket
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from testbed.core.errors import ExitCode, TestbedError

if TYPE_CHECKING:
    import docker

LABEL_RUN = "testbed.run"
LABEL_SERVICE = "testbed.service"
# Which runtime root (uid, TESTBED_RUNTIME_DIR) owns a container: gc sweeps only its own orphans.
LABEL_ROOT = "testbed.root"
# The digest of what a container was created from (image id, spec, network): a change makes it again.
LABEL_SPEC = "testbed.spec"

# The API version each engine socket negotiated: asked once per process, not before every call.
_api_versions: dict[str, str] = {}


def socket_path() -> str:
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        raise TestbedError(f"DOCKER_HOST={host}: testbed talks to a local engine over its unix socket", ExitCode.CONFIG)
    return host.removeprefix("unix://")


class EngineUnreachable(OSError):
    """The engine's socket is missing, refuses, hangs up or does not answer in time. Its message names
    the socket, so whoever catches OSError can print it as is."""


def _why(exc: BaseException, timeout: float) -> str:
    """The reason at the bottom of an exception chain (the SDK wraps the socket's error three times)."""
    import requests  # noqa: PLC0415

    seen: list[BaseException] = []
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop(0)
        if current in seen:
            continue
        seen.append(current)
        if isinstance(current, TimeoutError | requests.Timeout | socket.timeout):
            return f"no answer within {timeout:g}s"
        if isinstance(current, OSError) and current.strerror:
            return current.strerror
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
        pending += [e for e in linked if isinstance(e, BaseException)]
    return str(exc) or type(exc).__name__


@contextlib.contextmanager
def _client(timeout: float) -> Iterator[docker.APIClient]:
    """An SDK client of the local engine; an engine that does not answer raises EngineUnreachable."""
    import docker  # noqa: PLC0415  (see the module's docstring)
    import requests  # noqa: PLC0415

    sock = socket_path()
    try:
        version = _api_versions.get(sock, "auto")
        with docker.APIClient(base_url=f"unix://{sock}", version=version, timeout=timeout) as api:
            _api_versions[sock] = api.api_version
            yield api
    except docker.errors.APIError:
        raise  # the engine answered: the caller reads the status
    except (OSError, requests.RequestException, docker.errors.DockerException) as exc:
        raise EngineUnreachable(f"no Docker engine answers on {sock} ({_why(exc, timeout)})") from exc


def request(method: str, path: str, timeout: float = 10.0, query: dict[str, Any] | None = None) -> tuple[int, bytes]:
    """One API call (`path` without the version prefix); an engine that does not answer raises
    EngineUnreachable (an OSError)."""
    with _client(timeout) as api:
        url = f"{api.base_url}/v{api.api_version}{path}"
        response = api.request(method, url, params=query, timeout=timeout)
        return int(response.status_code), bytes(response.content)


class _Unix(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def engine_answers(timeout: float = 3.0) -> str | None:
    """The engine's version when it answers within `timeout`, else None (no SDK import: see above)."""
    try:
        conn = _Unix(socket_path(), timeout)
    except TestbedError:
        return None
    try:
        conn.request("GET", "/version")
        response = conn.getresponse()
        body = response.read()
        return str(json.loads(body).get("Version", "?")) if response.status == 200 else None
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        conn.close()


def image_present(image: str) -> bool:
    import docker  # noqa: PLC0415

    try:
        with _client(5) as api:
            api.inspect_image(image)
    except (OSError, docker.errors.APIError):
        return False
    return True


def logs(container: str, tail: int | None = None) -> str:
    """stdout and stderr of a container, in order (the SDK takes the engine's framing apart)."""
    import docker  # noqa: PLC0415

    with _client(15) as api:
        try:
            data = api.logs(container, stdout=True, stderr=True, timestamps=False, tail=tail or "all")
        except docker.errors.APIError:
            return ""
    return bytes(data).decode("utf-8", "replace")


_CONFLICT_RETRIES = 10  # half a second apart


def remove_container(container: str) -> bool:
    """Force-remove a container and its anonymous volumes; True when it is gone. A conflict (the engine still
    creating it for a request whose answer was lost, or removing it already) is retried for a few seconds."""
    import docker  # noqa: PLC0415

    with _client(30) as api:
        for attempt in range(_CONFLICT_RETRIES + 1):
            try:
                api.remove_container(container, v=True, force=True)
            except docker.errors.NotFound:
                return True
            except docker.errors.APIError as exc:
                if exc.status_code != 409 or attempt == _CONFLICT_RETRIES:
                    return False
                time.sleep(0.5)
            else:
                return True
    return False


def remove_network(network: str) -> bool:
    import docker  # noqa: PLC0415

    with _client(15) as api:
        try:
            api.remove_network(network)
        except docker.errors.NotFound:
            return True
        except docker.errors.APIError:
            return False
    return True


def containers_of(run_id: str | None = None) -> list[dict[str, Any]]:
    """Containers carrying testbed's run label (of one run, or of all)."""
    import docker  # noqa: PLC0415

    label = f"{LABEL_RUN}={run_id}" if run_id else LABEL_RUN
    with _client(10) as api:
        try:
            return list(api.containers(all=True, filters={"label": [label]}))
        except docker.errors.APIError:
            return []


def networks_of(run_id: str | None = None) -> list[dict[str, Any]]:
    import docker  # noqa: PLC0415

    label = f"{LABEL_RUN}={run_id}" if run_id else LABEL_RUN
    with _client(10) as api:
        try:
            return list(api.networks(filters={"label": [label]}))
        except docker.errors.APIError:
            return []


def ensure_network(name: str, labels: dict[str, str]) -> bool:
    """The run's network, created when missing; True when it was created."""
    with _client(30) as api:
        if any(network["Name"] == name for network in api.networks(names=[name])):
            return False
        api.create_network(name, labels=labels, check_duplicate=True)
    return True


def ensure_container(spec: dict[str, Any], network: str) -> bool:
    """`spec`'s container (testbed.backends.docker.containers) running on `network`: created and started when
    missing, started when stopped, made again when its image or spec changed (a label holds the spec's digest);
    True when anything changed."""
    import docker  # noqa: PLC0415

    made = {key: value for key, value in spec.items() if key != "present"}  # `present` changes once pulled
    with _client(60) as api:
        try:
            return _ensure_container(api, made, network)
        except docker.errors.APIError as exc:
            why = " ".join(str(exc.explanation or exc).split())
            raise TestbedError(f"container {spec['name']}: {why}", ExitCode.PROVISIONING) from exc


def _ensure_container(api: docker.APIClient, spec: dict[str, Any], network: str) -> bool:
    import docker  # noqa: PLC0415

    image = api.inspect_image(spec["image"])["Id"]
    digest = hashlib.sha256(json.dumps([image, spec, network], sort_keys=True).encode()).hexdigest()
    try:
        current = api.inspect_container(spec["name"])
    except docker.errors.NotFound:
        current = None
    if current is not None and (current["Config"].get("Labels") or {}).get(LABEL_SPEC) != digest:
        api.remove_container(spec["name"], v=True, force=True)
        current = None
    if current is None:
        bindings: dict[int, tuple[str, ...] | tuple[str, int]] = {}
        for published in spec["ports"]:  # ADDRESS:HOST:CONTAINER; HOST empty: a free port
            address, host, inner = published.rsplit(":", 2)
            bindings[int(inner)] = (address, int(host)) if host else (address,)
        api.create_container(
            spec["image"],
            command=spec["command"] or None,  # none: the image's own
            environment=spec["env"],
            labels={**spec["labels"], LABEL_SPEC: digest},
            name=spec["name"],
            ports=list(bindings),
            detach=True,
            use_config_proxy=False,
            host_config=api.create_host_config(port_bindings=bindings, tmpfs=spec["tmpfs"], network_mode=network),
        )
    elif current["State"].get("Running"):
        return False
    api.start(spec["name"])
    return True
