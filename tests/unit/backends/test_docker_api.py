"""What testbed says when no Docker engine answers on the socket (a socket in this process stands for the
engine: missing, refusing, or never answering). A real engine's answers are tested in test_docker_backend."""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.backends import docker, docker_api
from testbed.core.errors import ExitCode, TestbedError
from testbed.run.record import RunRecord


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A unix socket path must stay under ~107 bytes: pytest's tmp_path can be longer."""
    with tempfile.TemporaryDirectory(prefix="tb-sock-") as folder:
        yield Path(folder)


def _engine_at(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")


def test_missing_socket(monkeypatch: pytest.MonkeyPatch, short_dir: Path) -> None:
    _engine_at(monkeypatch, short_dir / "docker.sock")
    assert docker_api.engine_answers() is None
    assert docker_api.image_present("postgres:15") is False
    with pytest.raises(docker_api.EngineUnreachable) as caught:
        docker_api.containers_of("r1")
    assert str(caught.value) == f"no Docker engine answers on {short_dir / 'docker.sock'} (No such file or directory)"


def test_socket_that_refuses(monkeypatch: pytest.MonkeyPatch, short_dir: Path) -> None:
    path = short_dir / "docker.sock"
    with socket.socket(socket.AF_UNIX) as closed:
        closed.bind(str(path))  # bound, never listening: connect() is refused
    _engine_at(monkeypatch, path)
    assert docker_api.engine_answers() is None
    for call in (lambda: docker_api.request("GET", "/containers/x/json"), lambda: docker_api.logs("x"),
                 lambda: docker_api.remove_container("x")):
        with pytest.raises(docker_api.EngineUnreachable) as caught:
            call()
        assert str(caught.value) == f"no Docker engine answers on {path} (Connection refused)"


def test_engine_that_never_answers(monkeypatch: pytest.MonkeyPatch, short_dir: Path) -> None:
    path = short_dir / "docker.sock"
    with socket.socket(socket.AF_UNIX) as silent:
        silent.bind(str(path))
        silent.listen(8)  # accepts connections (the kernel's backlog) and never answers
        _engine_at(monkeypatch, path)
        assert docker_api.engine_answers(timeout=0.2) is None
        with pytest.raises(docker_api.EngineUnreachable) as caught:
            docker_api.request("GET", "/version", timeout=0.2)
    assert str(caught.value) == f"no Docker engine answers on {path} (no answer within 0.2s)"


def test_a_caller_that_catches_oserror_names_the_engine(monkeypatch: pytest.MonkeyPatch, short_dir: Path) -> None:
    """The Docker backend catches OSError around the engine's answers and prints it as is: the line names the
    socket and why, and what to do."""
    _engine_at(monkeypatch, short_dir / "docker.sock")
    record = RunRecord.from_dict({
        "run_id": "r1", "run_folder": str(short_dir / "runs"), "runtime_dir": str(short_dir / "r1"),
        "servers": {"postgres": {"title": "PostgreSQL"}},
        "resources": [{"kind": "container", "service": "postgres", "name": "testbed-r1-postgres"}],
    })
    with pytest.raises(TestbedError) as failed:
        docker.published_ports(record)
    assert failed.value.exit_code == ExitCode.PROVISIONING
    assert str(failed.value) == (
        "PostgreSQL: cannot read the ports of container testbed-r1-postgres: no Docker engine answers on "
        f"{short_dir / 'docker.sock'} (No such file or directory); once it answers, `testbed gc` removes what the "
        "run left")


def test_an_engine_not_on_a_unix_socket_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.0.0.1:2375")
    assert docker_api.engine_answers() is None
    with pytest.raises(TestbedError) as caught:
        docker_api.networks_of()
    assert caught.value.exit_code == ExitCode.CONFIG
    assert str(caught.value) == "DOCKER_HOST=tcp://10.0.0.1:2375: testbed talks to a local engine over its unix socket"
