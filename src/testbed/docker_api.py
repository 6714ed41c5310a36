"""A few Docker Engine API calls over its unix socket, for what no community.docker module does
(container logs) and for teardown outside Ansible (signals, gc), so both share one implementation."""

from __future__ import annotations

import http.client
import json
import os
import socket
import struct
import urllib.parse
from typing import Any

from testbed.errors import ExitCode, TestbedError

LABEL_RUN = "testbed.run"
LABEL_SERVICE = "testbed.service"
# Which runtime root (uid, TESTBED_RUNTIME_DIR) owns a container: gc sweeps only its own orphans.
LABEL_ROOT = "testbed.root"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def socket_path() -> str:
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        raise TestbedError(f"DOCKER_HOST={host}: testbed talks to a local engine over its unix socket", ExitCode.CONFIG)
    return host.removeprefix("unix://")


class EngineUnreachable(OSError):
    """The engine's socket is missing, refuses, hangs up or does not answer in time. Its message names
    the socket, so whoever catches OSError can print it as is."""


def _why(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g}s"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def request(method: str, path: str, timeout: float = 10.0, query: dict[str, Any] | None = None) -> tuple[int, bytes]:
    """One API call; an engine that does not answer raises EngineUnreachable (an OSError)."""
    url = path + ("?" + urllib.parse.urlencode(query) if query else "")
    sock = socket_path()
    conn = _UnixConnection(sock, timeout)
    try:
        conn.request(method, url)
        response = conn.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException) as exc:
        raise EngineUnreachable(f"no Docker engine answers on {sock} ({_why(exc, timeout)})") from exc
    finally:
        conn.close()


def engine_answers(timeout: float = 3.0) -> str | None:
    """The engine's version when it answers within `timeout`, else None."""
    try:
        status, body = request("GET", "/version", timeout=timeout)
        return str(json.loads(body).get("Version", "?")) if status == 200 else None
    except (OSError, ValueError, TestbedError):
        return None


def image_present(image: str) -> bool:
    try:
        status, _ = request("GET", f"/images/{urllib.parse.quote(image, safe='')}/json", timeout=5)
    except OSError:
        return False
    return status == 200


def logs(container: str, tail: int | None = None) -> str:
    """stdout and stderr of a container, demultiplexed (the engine frames them unless it has a TTY)."""
    query: dict[str, Any] = {"stdout": 1, "stderr": 1, "timestamps": 0}
    if tail:
        query["tail"] = tail
    status, body = request("GET", f"/containers/{container}/logs", timeout=15, query=query)
    if status != 200:
        return ""
    out = bytearray()
    view = memoryview(body)
    while len(view) >= 8 and view[0] in (0, 1, 2) and view[1:4].tobytes() == b"\0\0\0":
        size = struct.unpack(">I", view[4:8])[0]
        out += view[8 : 8 + size]
        view = view[8 + size :]
    out += view  # a TTY container's log is not framed
    return out.decode("utf-8", "replace")


def remove_container(container: str) -> bool:
    """Force-remove a container and its anonymous volumes; True when it is gone."""
    status, _ = request("DELETE", f"/containers/{container}", timeout=30, query={"force": 1, "v": 1})
    return status in (204, 404)


def remove_network(network: str) -> bool:
    status, _ = request("DELETE", f"/networks/{network}", timeout=15)
    return status in (204, 404)


def containers_of(run_id: str | None = None) -> list[dict[str, Any]]:
    """Containers carrying testbed's run label (of one run, or of all)."""
    label = f"{LABEL_RUN}={run_id}" if run_id else LABEL_RUN
    status, body = request("GET", "/containers/json", query={"all": 1, "filters": json.dumps({"label": [label]})})
    return list(json.loads(body)) if status == 200 else []


def networks_of(run_id: str | None = None) -> list[dict[str, Any]]:
    label = f"{LABEL_RUN}={run_id}" if run_id else LABEL_RUN
    status, body = request("GET", "/networks", query={"filters": json.dumps({"label": [label]})})
    return list(json.loads(body)) if status == 200 else []
