"""Shards: `k/n` parsed or refused in one line, durations files read or named, an empty group a pass only when its
tests went elsewhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testbed.core.errors import ExitCode, TestbedError
from testbed.parallel import split
from testbed.run.record import ShardInfo


@pytest.mark.parametrize(("text", "expected"), [("1/1", (1, 1)), ("2/3", (2, 3)), (" 3/3 ", (3, 3))])
def test_shard_parses_k_of_n(text: str, expected: tuple[int, int]) -> None:
    assert split.parse(text) == expected


@pytest.mark.parametrize("text", ["0/3", "4/3", "3", "1/0", "a/b", "1/2/3", "-1/2", ""])
def test_shard_refuses_anything_else_in_one_line(text: str) -> None:
    with pytest.raises(TestbedError) as caught:
        split.parse(text)
    assert caught.value.exit_code == ExitCode.CONFIG
    assert str(caught.value) == f"--shard {text!r}: expected K/N with 1 <= K <= N, e.g. --shard 2/3"


def test_shard_refuses_more_groups_than_merge_takes() -> None:
    assert split.parse("1000/1000") == (1000, 1000)
    with pytest.raises(TestbedError, match=r"--shard '1/1001': a split into at most 1000 shards"):
        split.parse("1/1001")
    with pytest.raises(TestbedError, match="expected K/N"):  # too many digits for a number, not a traceback
        split.parse("1/" + "9" * 5000)


@pytest.mark.parametrize(("log", "sharded", "rc", "expected"), [
    ("collected 9 items / 9 deselected", True, 5, 0),  # every test went to other shards: passed
    ("collected 1 item / 1 deselected", True, 5, 0),
    ("collected 9 items / 4 deselected", True, 5, 5),  # some ran and none was found: pytest's answer stands
    ("collected 0 items", True, 5, 5),  # nothing to split at all
    ("collected 9 items / 9 deselected", False, 5, 5),  # not a shard
    ("collected 9 items / 9 deselected", True, 1, 1),
])
def test_an_empty_shard_is_a_pass_only_when_its_tests_went_elsewhere(
    tmp_path: Path, log: str, sharded: bool, rc: int, expected: int
) -> None:
    (tmp_path / "pytest.log").write_text(f"header\n{log}\n")
    info = ShardInfo(3, 3) if sharded else None
    assert split.exit_code(info, rc, tmp_path / "pytest.log") == expected


def test_durations_file_missing_or_empty_means_none_known(tmp_path: Path) -> None:
    assert split.read_durations(tmp_path / "none") == {}
    (tmp_path / "empty").write_text("")
    assert split.read_durations(tmp_path / "empty") == {}
    (tmp_path / "some").write_text(json.dumps({"t::a": 1.5}))
    assert split.read_durations(tmp_path / "some") == {"t::a": 1.5}


def test_a_durations_file_that_is_not_durations_is_named(tmp_path: Path) -> None:
    (tmp_path / "bad").write_text("{not json")
    with pytest.raises(TestbedError, match=r"durations file .*bad: not JSON .*; delete it to split evenly"):
        split.read_durations(tmp_path / "bad")
    (tmp_path / "list").write_text('[["t::a", 2]]')  # pytest-split's older format
    assert split.read_durations(tmp_path / "list") == {"t::a": 2.0}
    (tmp_path / "wrong").write_text('{"t::a": true}')
    with pytest.raises(TestbedError, match="expected a JSON object of test id → seconds"):
        split.read_durations(tmp_path / "wrong")
