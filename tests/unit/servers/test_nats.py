"""NATS with JetStream: on loopback, its store in the run's data folder, the monitor port beside the client's; its
container, facts and environment."""

from __future__ import annotations

import signal
from pathlib import Path

from testbed.core.host import invoking_account
from testbed.servers.nats import Nats

SETTINGS = {"port": 14222, "monitor_port": 18222}


def test_launch_listens_on_loopback_with_jetstream_in_the_run_s_folder(tmp_path: Path) -> None:
    launch = Nats().launch(SETTINGS, "/usr/bin/nats-server", tmp_path, invoking_account())
    assert launch.argv == ["/usr/bin/nats-server", "-a", "127.0.0.1", "-p", "14222", "-m", "18222", "-js", "-sd",
                           str(tmp_path / "nats")]
    assert (launch.data_dir, launch.stop_signal) == (tmp_path / "nats", signal.SIGTERM)


def test_container_facts_and_environment() -> None:
    parts = Nats().container(SETTINGS)
    assert parts.command == ["-js", "-sd", "/data/jetstream", "-p", "4222", "-m", "8222"] and parts.tmpfs == ["/data"]
    fact = Nats().facts(SETTINGS, "10.0.0.5")
    assert fact == {"host": "10.0.0.5", "port": 14222, "url": "nats://10.0.0.5:14222", "monitor_port": 18222}
    assert Nats().environment(fact) == {"NATS_URL": "nats://10.0.0.5:14222"}
    assert Nats().ports(SETTINGS) == {"port": 4222, "monitor_port": 8222}
