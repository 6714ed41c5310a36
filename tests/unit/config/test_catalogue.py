"""The collection testbed drives, and its one service catalogue (the servers role's defaults)."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import PROJECT
from testbed.config import catalogue
from testbed.core.errors import TestbedError


def test_a_checkout_drives_its_own_collection() -> None:
    root = catalogue.project_root()
    assert (root / "playbooks" / "integration.yml").is_file() and (root / catalogue.CATALOGUE_FILE).is_file()
    assert root in (PROJECT, PROJECT.resolve()) or root.parts[-3:] == ("ansible_collections", "testbed", "pipeline")


def test_the_catalogue_lists_the_three_servers_with_their_fixed_ports() -> None:
    servers = catalogue.load_catalogue(PROJECT)
    assert {name: servers[name]["port"] for name in ("postgres", "dragonfly", "nats")} == {
        "postgres": 15433, "dragonfly": 16380, "nats": 14222}


def test_a_catalogue_that_is_not_a_mapping_is_named(tmp_path: Path) -> None:
    path = tmp_path / "main.yml"
    path.write_text("servers_catalogue: [postgres]\n")
    with pytest.raises(TestbedError, match=rf"^{path}: servers_catalogue must be a mapping$"):
        catalogue.load_catalogue_file(path)
