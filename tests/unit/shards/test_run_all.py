"""`--shards N` or `auto`: how many shards, and the hosts of the group that runs one each."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.core.errors import TestbedError
from testbed.shards import run_all


@pytest.mark.parametrize(("text", "hosts", "expected"), [
    ("3", [], 3), ("99", [], 99), ("auto", ["r1", "r2"], 2), ("2", ["r1", "r2", "r3"], 2),
])
def test_a_count_or_one_per_host(text: str, hosts: list[str], expected: int) -> None:
    assert run_all.count(text, hosts) == expected


@pytest.mark.parametrize(("text", "hosts", "message"), [
    ("0", [], "--shards '0': expected a number from 1 to 99, or auto"),
    ("100", [], "--shards '100': expected a number from 1 to 99, or auto"),
    ("two", [], "--shards 'two': expected a number from 1 to 99, or auto"),
    ("auto", [], "--shards auto needs --inventory FILE --limit GROUP"),
    ("3", ["r1", "r2"], "--shards 3: the group has 2 host(s) (r1, r2) and its play runs one shard per host"),
])
def test_a_bad_count_is_one_line_naming_the_fix(text: str, hosts: list[str], message: str) -> None:
    with pytest.raises(TestbedError) as caught:
        run_all.count(text, hosts)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_the_group_s_hosts_are_those_ansible_resolves(tmp_path: Path) -> None:
    inventory = tmp_path / "runners.yml"
    inventory.write_text("all:\n  children:\n    runners:\n      hosts:\n        runner-1:\n        runner-2:\n"
                         "    others:\n      hosts:\n        elsewhere:\n")
    assert run_all.group_hosts(inventory, "runners") == ["runner-1", "runner-2"]
    assert run_all.group_hosts(inventory, "runner-2") == ["runner-2"]
    with pytest.raises(TestbedError, match=rf"^--limit nobody: no host of {inventory} matches$"):
        run_all.group_hosts(inventory, "nobody")
