"""The shard option, merge's exit-code ranking and the redactor's less obvious encodings (test_leaks has
the common ones), in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testbed.core import errors, redact, secret_forms
from testbed.core.errors import ExitCode, TestbedError
from testbed.parallel import split
from testbed.run.record import ShardInfo
from testbed.shards import merge

VALUE = "s3cr3t-välue\nline-two-of-it"


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


@pytest.mark.parametrize(("codes", "expected"), [
    ([], 0),
    ([0, 1, 5], 5),  # among test outcomes, the larger code
    ([1, 10], 10),  # a setup failure (10 and up) over any test outcome
    ([14, 12, 1], 14),
    ([130, 15, 1], 130),  # an interrupted shard over everything
    ([143, 130], 143),
])
def test_merge_reports_the_worst_exit_code(codes: list[int], expected: int) -> None:
    assert errors.worst(codes) == expected


def test_redactor_with_no_values_changes_nothing(tmp_path: Path) -> None:
    empty = redact.Redactor([None, ""])
    assert not empty and empty.text("anything") == "anything"
    path = tmp_path / "f"
    path.write_text("anything")
    assert not empty.file(path)


def test_redactor_masks_non_ascii_json_and_xml_attribute_encodings() -> None:
    redactor = redact.Redactor([VALUE])
    forms = [
        json.dumps(VALUE),  # \u00e4 and \n escaped
        json.dumps(VALUE, ensure_ascii=False),
        repr(VALUE),
        VALUE.replace("\n", "&#10;"),  # ElementTree's newline inside an attribute
    ]
    for form in forms:
        masked = redactor.text(f"<x a={form}/>")
        assert "s3cr3t" not in masked and "two-of-it" not in masked, masked


def test_redactor_masks_keys_and_values_of_json_shaped_data() -> None:
    redactor = redact.Redactor(["tok-12345678"])
    data = {"tok-12345678": ["a tok-12345678 b", {"n": 1, "t": ("tok-12345678",)}], "ok": None}
    assert redactor.data(data) == {"***": ["a *** b", {"n": 1, "t": ["***"]}], "ok": None}


def test_redactor_scrubs_a_file_in_place_and_never_through_a_symlink(tmp_path: Path) -> None:
    redactor = redact.Redactor(["tok-12345678"])
    target = tmp_path / "target.log"
    target.write_text("x tok-12345678 y\n")
    link = tmp_path / "link.log"
    link.symlink_to(target)
    assert not redactor.file(link)
    assert "tok-12345678" in target.read_text()
    assert redactor.file(target)
    assert target.read_text() == "x *** y\n"
    assert not redactor.file(target)  # nothing left to scrub


def test_values_too_short_to_redact_safely() -> None:
    assert secret_forms.too_short("1234567") and secret_forms.too_short("  1234567  ")
    assert not secret_forms.too_short("12345678")


def test_a_durations_file_that_is_not_durations_is_named(tmp_path: Path) -> None:
    (tmp_path / "bad").write_text("{not json")
    with pytest.raises(TestbedError, match=r"durations file .*bad: not JSON .*; delete it to split evenly"):
        split.read_durations(tmp_path / "bad")
    (tmp_path / "list").write_text('[["t::a", 2]]')  # pytest-split's older format
    assert split.read_durations(tmp_path / "list") == {"t::a": 2.0}
    (tmp_path / "wrong").write_text('{"t::a": true}')
    with pytest.raises(TestbedError, match="expected a JSON object of test id → seconds"):
        split.read_durations(tmp_path / "wrong")


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
