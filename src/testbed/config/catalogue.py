"""The collection testbed drives (playbooks, ansible.cfg) and its one service catalogue: the servers
role's defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from testbed.core.errors import TestbedError

CATALOGUE_FILE = Path("roles/servers/defaults/main.yml")


def project_root() -> Path:
    """The collection testbed.pipeline the wrapper drives (its playbooks, ansible.cfg and catalogue): the one
    installed beside this package (from the wheel, at site-packages/ansible_collections/testbed/pipeline),
    else the checkout this package lives in (an editable install gets no collection of its own)."""
    package = Path(__file__).resolve().parents[1]  # the testbed package (this module is in testbed/config)
    for candidate in (package.parent / "ansible_collections" / "testbed" / "pipeline", package.parents[1]):
        if (candidate / "playbooks" / "integration.yml").is_file() and (candidate / CATALOGUE_FILE).is_file():
            return candidate
    raise TestbedError(
        f"cannot find the collection testbed.pipeline beside the testbed package in {package.parent}; "
        "reinstall testbed from its wheel or a checkout (pip install <wheel or folder>)"
    )


def load_catalogue(root: Path | None = None) -> dict[str, dict[str, Any]]:
    """The one service catalogue: the servers role's defaults."""
    return load_catalogue_file((root or project_root()) / CATALOGUE_FILE)


def load_catalogue_file(path: Path) -> dict[str, dict[str, Any]]:
    import yaml  # noqa: PLC0415 - `testbed down` and friends never parse YAML: keep their start-up short

    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    catalogue = data["servers_catalogue"]
    if not isinstance(catalogue, dict):
        raise TestbedError(f"{path}: servers_catalogue must be a mapping")
    return catalogue
