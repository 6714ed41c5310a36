"""The shard option, merge's exit-code ranking and the redactor's less obvious encodings (test_leaks has
the common ones), in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testbed.shards import merge


@pytest.mark.parametrize(
    ("junit", "torn_down", "expected"),
    [
        ('<testsuite tests="2"><testcase classname="t" name="a"/><testcase classname="t" name="b"/></testsuite>', 1, 0),
        ('<testsuite tests="1"><testcase classname="t" name="a"><failure message="no"/></testcase></testsuite>', 1, 1),
        (None, 1, 10),  # stopped before its tests
        ('<testsuite tests="1"><testcase classname="t" name="a"/></testsuite>', None, 14),  # something left behind
    ],
)
def test_a_shard_plain_ansible_playbook_ran_is_read_from_its_folder(
    tmp_path: Path, junit: str | None, torn_down: int | None, expected: int
) -> None:
    """No wrapper, no report.json: the shard's state and JUnit report say how it ended."""
    folder = tmp_path / "run-1"
    folder.mkdir()
    state = {"run_id": "run-1", "service": "svc", "backend": "native", "shard": {"index": 1, "count": 1}}
    (folder / "state.json").write_text(json.dumps({**state, "torn_down": torn_down}))
    if junit is not None:
        (folder / "junit.xml").write_text(junit)
    report = merge.merge([folder], tmp_path / "merged")
    assert report["exit_code"] == expected
    assert report["shards"][0]["shard"] == "shard 1/1" and report["service"] == "svc"
    if junit is not None:
        assert report["tests"]["passed"] + report["tests"]["failed"] == junit.count("<testcase")
