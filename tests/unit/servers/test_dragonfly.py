"""The Redis-protocol slot: Dragonfly when installed, redis-server standing in with the same port and data folder
(and no persistence), each on loopback; its container, facts and environment."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from testbed.core.host import invoking_account
from testbed.servers.base import Binary
from testbed.servers.dragonfly import STAND_IN, Dragonfly

SETTINGS = {"port": 16380, "proactor_threads": 2, "maxmemory": "512mb"}


def test_dragonfly_gets_its_own_sizing_flags_and_no_snapshot_file(tmp_path: Path) -> None:
    launch = Dragonfly().launch(SETTINGS, "/usr/bin/dragonfly", tmp_path, invoking_account())
    assert launch.argv == ["/usr/bin/dragonfly", "--port", "16380", "--bind", "127.0.0.1", "--dir",
                           str(tmp_path / "dragonfly"), "--dbfilename", "", "--proactor_threads=2",
                           "--maxmemory=512mb"]
    assert (launch.data_dir, launch.stop_signal) == (tmp_path / "dragonfly", signal.SIGTERM)


def test_redis_server_stands_in_without_persistence(tmp_path: Path) -> None:
    launch = Dragonfly().launch(SETTINGS, "/usr/bin/redis-server", tmp_path, invoking_account())
    assert launch.argv[:7] == ["/usr/bin/redis-server", "--port", "16380", "--bind", "127.0.0.1", "--dir",
                               str(tmp_path / "dragonfly")]
    assert launch.argv[7:] == ["--save", "", "--appendonly", "no", "--maxmemory", "512mb"]


def test_dragonfly_is_preferred_and_redis_server_stands_in_saying_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert "apt-get install redis-server" in str(Dragonfly().locate(SETTINGS))  # neither: what to install
    for name in ("redis-server", "dragonfly"):
        (tmp_path / name).write_text("#!/bin/sh\n")
        (tmp_path / name).chmod(0o755)
        located = Dragonfly().locate(SETTINGS)
        assert isinstance(located, Binary) and located.path == str(tmp_path / name)
        assert located.notice == (STAND_IN if name == "redis-server" else "")


def test_container_facts_and_environment() -> None:
    parts = Dragonfly().container(SETTINGS)
    assert parts.command == ["--port=6379", "--proactor_threads=2", "--maxmemory=512mb"] and parts.tmpfs == ["/data"]
    fact = Dragonfly().facts(SETTINGS, "127.0.0.1")
    assert fact == {"host": "127.0.0.1", "port": 16380, "url": "redis://127.0.0.1:16380/0"}
    assert Dragonfly().environment(fact) == {"DRAGONFLY_HOST": "127.0.0.1", "DRAGONFLY_PORT": "16380"}
    assert Dragonfly().ports(SETTINGS) == {"port": 6379}  # the container's own port, published on settings' port
