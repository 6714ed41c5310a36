"""Choosing the backend (Docker or native): the engine, the images at hand, their registries' reachability."""

from __future__ import annotations

import socket
from collections.abc import Mapping

from testbed.backends import docker_api
from testbed.core.errors import ExitCode, TestbedError

BACKENDS = ("auto", "docker", "native")


def _registry_answers(image: str, timeout: float = 3.0) -> str | None:
    """A bounded reachability check of an image's registry (never a pull, which can hang).

    The registry is the reference's first component when it looks like a host (has a dot or a port, or
    is `localhost`), else Docker Hub; an explicit port (`localhost:5000/x`, `[::1]:5000/x`) is used."""
    first, slash, _ = image.partition("/")
    registry = first if slash and ("." in first or ":" in first or first == "localhost") else "registry-1.docker.io"
    host, port = registry, 443
    if registry.startswith("["):
        host, _, rest = registry[1:].partition("]")
        port = int(rest[1:]) if rest[1:].isdigit() else 443
    elif registry.count(":") == 1 and registry.partition(":")[2].isdigit():
        host, port = registry.partition(":")[0], int(registry.partition(":")[2])
    try:
        socket.setdefaulttimeout(timeout)  # getaddrinfo has no timeout of its own
        socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return f"registry {registry} does not answer ({exc.strerror or exc})"
    finally:
        socket.setdefaulttimeout(None)


def choose_backend(requested: str, images: Mapping[str, str], pull: bool) -> tuple[str, str]:
    """The backend to use and why, in words. Never pulls: an image that is not here (or every image,
    with `pull`) needs its registry to answer a bounded check."""
    if requested == "native":
        return "native", "asked for"
    version = docker_api.engine_answers()
    if version is None:
        if requested == "docker":
            raise TestbedError(
                "backend docker: no Docker engine answers on "
                f"{docker_api.socket_path()}; start it or use --backend native",
                ExitCode.PROVISIONING,
            )
        return "native", "no Docker engine answers"
    to_pull = []
    for server, image in images.items():
        if not pull and docker_api.image_present(image):
            continue
        problem = _registry_answers(image)
        if problem is None:
            to_pull.append(image)
        elif requested == "docker":
            raise TestbedError(
                f"image {image} cannot be pulled: {problem}; use --backend native, "
                f"or point settings.{server}.image (or --image {server}=IMAGE) at an image you have",
                ExitCode.PROVISIONING,
            )
        else:
            return "native", f"image {image} is not here and {problem}"
    pulling = f"; {', '.join(to_pull)} will be pulled" if to_pull else ""
    if requested == "docker":
        return "docker", f"asked for (engine {version}){pulling}"
    return "docker", f"engine {version} answers and every image is at hand{pulling}"
