"""What every kind of server gets unless it says otherwise: its container port published, tcp:// facts, one
instance per pytest worker, no migrations, nothing to find without its state file."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from testbed.core.host import Account, Launch
from testbed.servers.base import Binary, ContainerParts, ServerKind


class _Plain(ServerKind):
    """A kind that says only what it must."""

    name = "plain"

    def locate(self, settings: Mapping[str, Any]) -> Binary | str:
        return Binary("/bin/plain")

    def launch(self, settings: Mapping[str, Any], binary: str, run_dir: Path, account: Account) -> Launch:
        return Launch(self.name, [binary], run_dir / self.name, 15)

    def container(self, settings: Mapping[str, Any]) -> ContainerParts:
        return ContainerParts()

    def probe(self, settings: Mapping[str, Any], fact: Mapping[str, Any], run_id: str = "") -> str:
        return "plain 1"


def test_the_defaults(tmp_path: Path) -> None:
    kind = _Plain()
    settings = {"port": 17007, "container_port": 7007}
    assert kind.ports(settings) == {"port": 7007}
    assert kind.facts(settings, "10.0.0.1") == {"host": "10.0.0.1", "port": 17007, "url": "tcp://10.0.0.1:17007"}
    assert (kind.environment({}), kind.env_templates(settings), kind.exited_hint(settings)) == ({}, {}, "")
    assert kind.unavailable(settings, "docker") is None and kind.left_running(tmp_path) == []
    assert (kind.worker_share(settings), kind.runs_migrations, kind.kept(settings, {})) == ("instance", False, None)
    assert (kind.order, kind.program, kind.run_dir_entries) == (99, "", ())


def test_what_a_kind_does_not_do_is_said_with_its_name() -> None:
    with pytest.raises(NotImplementedError, match=r"^plain does not run migrations$"):
        _Plain().conninfo({})
    with pytest.raises(NotImplementedError, match=r"^plain shares workers by "):
        _Plain().isolate({}, {}, "gw1")


def test_a_kind_must_say_how_it_starts_and_answers() -> None:
    class _Half(ServerKind):
        name = "half"

    with pytest.raises(TypeError, match="abstract"):
        _Half()  # type: ignore[abstract]
