"""Which collections a run lacks, and which entries of the `ansible` wheel may be unpacked (the install itself,
from the real wheel, is tested in tests/e2e/test_cold_install.py)."""

from __future__ import annotations

import json
import stat
import zipfile
from pathlib import Path

import pytest

from testbed.ansible import collections_install as ci
from testbed.core.errors import ExitCode, TestbedError

DOCKER = ci.Collection("community.docker", (4, 8, 0), (5, 0, 0))


@pytest.mark.parametrize(("version", "accepted"), [
    ("4.8.0", True), ("4.8.5", True), ("4.10.1", True), ("4.7.9", False), ("5.0.0", False),
    ("4.9.0-rc1", True), ("5.0.0b1", False), ("x.y", False),
])
def test_a_version_is_accepted_inside_its_range_only(version: str, accepted: bool) -> None:
    assert DOCKER.accepts(version) is accepted
    assert DOCKER.requirement == ">=4.8.0,<5.0.0"


def _install(root: Path, folder: str, version: str) -> None:
    (root / folder).mkdir(parents=True)
    (root / folder / "MANIFEST.json").write_text(json.dumps({"collection_info": {"version": version}}))


def test_missing_names_each_collection_no_root_holds_in_range_with_what_was_found(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    _install(first, "community/docker", "3.4.0")  # too old here ...
    _install(second, "community/docker", "4.8.5")  # ... but fine further along the path
    _install(first, "amazon/aws", "11.0.0")
    (first / "broken" / "manifest").mkdir(parents=True)
    assert ci.missing(ci.NEEDED, [first, second]) == [
        "community.library_inventory_filtering_v1 >=1.0.0,<2.0.0",
        "amazon.aws >=10.1.0,<11.0.0 (found 11.0.0)",
    ]


def _entry(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = mode << 16
    return info


@pytest.mark.parametrize(("name", "mode", "why"), [
    ("plugins/modules/docker_container.py", stat.S_IFREG | 0o644, None),
    ("plugins/", stat.S_IFDIR | 0o755, None),
    ("README.md", 0, None),  # no Unix mode recorded: a plain file
    ("/tmp/x/ESCAPED", stat.S_IFREG | 0o644, "an absolute path"),
    ("plugins/../../../etc/cron.d/x", stat.S_IFREG | 0o644, "a '..' component"),
    ("plugins/link", stat.S_IFLNK | 0o777, "a symbolic link"),
    ("plugins/fifo", stat.S_IFIFO | 0o644, "a device or other special file"),
    ("plugins/dir-not-named-so", stat.S_IFDIR | 0o755, "a device or other special file"),
])
def test_only_plain_files_and_folders_inside_the_collection_may_be_unpacked(name: str, mode: int,
                                                                          why: str | None) -> None:
    assert ci._unsafe(_entry(f"ansible_collections/community/docker/{name}", mode), name) == why


def test_a_wheel_with_an_unsafe_entry_is_refused_naming_it_before_anything_is_unpacked(tmp_path: Path) -> None:
    wheel_path = tmp_path / "ansible.whl"
    with zipfile.ZipFile(wheel_path, "w") as wheel:
        wheel.writestr("ansible_collections/community/docker/MANIFEST.json", "{}")
        wheel.writestr(_entry("ansible_collections/community/docker//tmp/x/ESCAPED", stat.S_IFREG | 0o644), "x")
        wheel.writestr("ansible_collections/amazon/aws/MANIFEST.json", "{}")
    with zipfile.ZipFile(wheel_path) as wheel:
        assert [rest for _, rest in ci._members(wheel, ci.NEEDED[2])] == ["MANIFEST.json"]
        with pytest.raises(TestbedError) as refused:
            ci._members(wheel, DOCKER)
    assert refused.value.exit_code == ExitCode.CONFIG
    assert "holds 'ansible_collections/community/docker//tmp/x/ESCAPED', an absolute path" in str(refused.value)
