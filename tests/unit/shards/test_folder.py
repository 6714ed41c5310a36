"""A shard folder read as untrusted input: no symlink followed, no file past its limit, JSON without NaN, each value
checked against its schema, every refusal one line naming the folder, the file and the key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from testbed.core.errors import ExitCode, TestbedError
from testbed.shards import folder as shard_folder
from testbed.shards.folder import REPORT, Fields


def _refused(call: object) -> str:
    with pytest.raises(TestbedError) as caught:
        call()  # type: ignore[operator]
    assert caught.value.exit_code == ExitCode.CONFIG and "\n" not in str(caught.value)
    return str(caught.value)


def test_a_file_is_read_and_an_absent_one_is_none(tmp_path: Path) -> None:
    (tmp_path / REPORT).write_text('{"exit_code": 0}')
    assert shard_folder.read_json(tmp_path, REPORT) == {"exit_code": 0}
    assert shard_folder.read_json(tmp_path, "state.json") is None
    assert _refused(lambda: shard_folder.read_json(tmp_path / "gone", REPORT)) == (
        f"merge: shard folder {tmp_path / 'gone'} is unreadable: {REPORT}: cannot open the folder "
        "(No such file or directory)")


def test_a_symlink_a_fifo_or_an_oversize_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "elsewhere.json").write_text("{}")
    (tmp_path / REPORT).symlink_to(tmp_path / "elsewhere.json")
    assert _refused(lambda: shard_folder.read_json(tmp_path, REPORT)) == (
        f"merge: shard folder {tmp_path} is unreadable: {REPORT}: is a symlink; merge follows none in a shard folder "
        "(a run writes none)")
    (tmp_path / REPORT).unlink()
    os.mkfifo(tmp_path / REPORT)
    assert _refused(lambda: shard_folder.read_json(tmp_path, REPORT)).endswith(f"{REPORT}: is not a regular file")
    (tmp_path / REPORT).unlink()
    limit = shard_folder.LIMITS[REPORT]
    (tmp_path / REPORT).write_bytes(b" " * (limit + 1))
    assert f"is {limit + 1} bytes; merge reads at most {limit} of it" in _refused(
        lambda: shard_folder.read_json(tmp_path, REPORT))


@pytest.mark.parametrize(("text", "problem"), [
    ('{"duration": NaN}', "not valid JSON (NaN is not a number JSON allows)"),
    ('{"a": ', "not valid JSON"),
    ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
])
def test_what_json_does_not_allow_is_refused(tmp_path: Path, text: str, problem: str) -> None:
    (tmp_path / REPORT).write_text(text)
    assert problem in _refused(lambda: shard_folder.read_json(tmp_path, REPORT))


def test_each_value_is_checked_and_a_refusal_names_its_key(tmp_path: Path) -> None:
    fields = Fields(tmp_path, REPORT, {"count": 3, "big": 10**9, "flag": True, "name": "a\x1bb", "code": 77,
                                       "tests": {"passed": -1}, "backend": "vm", "run_id": "Bad Id"})
    assert fields.integer("count", 0, 10) == 3 and fields.integer("missing", 0, 10, default=7) == 7
    assert _refused(lambda: fields.integer("big", 0, 10)).endswith(
        '"big" is 1000000000: expected a whole number from 0 to 10')
    assert "expected a whole number" in _refused(lambda: fields.integer("flag", 0, 10))  # a bool is not a number
    assert "'a\\x1bb'" in _refused(lambda: fields.text("name"))  # shown escaped: no terminal commands
    assert "expected one of testbed's exit codes" in _refused(lambda: fields.exit_code("code"))
    child = fields.child("tests")
    assert child is not None and '"tests.passed" is -1' in _refused(lambda: child.integer("passed", 0, 5))
    assert "expected one of 'native', 'docker'" in _refused(lambda: fields.choice("backend", ("native", "docker"), "?"))
    assert "expected a run id" in _refused(lambda: fields.run_id("run_id"))
    assert _refused(lambda: Fields(tmp_path, REPORT, [1, 2])).endswith(f"{REPORT}: the file is not a JSON object")
