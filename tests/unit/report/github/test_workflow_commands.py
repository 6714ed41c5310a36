"""GitHub's workflow commands: masks, groups and annotations, and telling GitHub Actions apart."""


import io

import pytest

from support.reports import failures
from testbed.core.junit import Failure
from testbed.report import github

# ------------------------------------------------------------------ environment detection


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"GITHUB_ACTIONS": "true"}, True),
        ({"GITHUB_ACTIONS": "true", "CI": "true"}, True),
        ({"CI": "true"}, False),
        ({"GITHUB_ACTIONS": "false", "CI": "true"}, False),
        ({}, False),
    ],
)
def test_is_github_actions(environ, expected):
    assert github.is_github_actions(environ) is expected


# ------------------------------------------------------------------ masks and groups


def test_mask_writes_only_to_the_given_stream(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    stream = io.StringIO()
    count = github.mask(["s3cret", "", None, "line-one\nline-two\r\n\n", "50%off", "s3cret"], stream)
    assert stream.getvalue().splitlines() == [
        "::add-mask::s3cret",
        "::add-mask::line-one",
        "::add-mask::line-two",
        "::add-mask::50%25off",
    ]
    assert count == 4
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ""
    assert list(tmp_path.iterdir()) == []


def test_mask_refuses_a_regular_file(tmp_path):
    target = tmp_path / "log.txt"
    with target.open("w") as handle, pytest.raises(ValueError, match="stdout"):
        github.mask(["s3cret"], handle)
    assert target.read_text() == ""


def test_group_context_manager_closes_on_error():
    stream = io.StringIO()

    def fail_inside_group() -> None:
        with github.group("Servers: up, 3", stream):
            stream.write("inside\n")
            raise RuntimeError

    with pytest.raises(RuntimeError):
        fail_inside_group()
    assert stream.getvalue() == "::group::Servers: up, 3\ninside\n::endgroup::\n"


def test_begin_and_end_group():
    stream = io.StringIO()
    github.begin_group("a\nb", stream)
    github.end_group(stream)
    assert stream.getvalue() == "::group::a%0Ab\n::endgroup::\n"


# ------------------------------------------------------------------ annotations


def test_annotations_cap_at_ten_with_a_notice_for_the_rest():
    lines = github.annotations(failures(13))
    assert len(lines) == 11
    assert all(line.startswith("::error ") for line in lines[:10])
    assert lines[10] == "::notice::3 more failures not annotated (see the step summary and junit.xml)"
    assert lines[0] == "::error file=tests/test_x.py,line=1,title=tests.test_x%3A%3Atest_0::assert 0 == 0"


def test_annotations_at_or_under_the_cap_have_no_notice():
    assert len(github.annotations(failures(10))) == 10
    assert not any(line.startswith("::notice") for line in github.annotations(failures(3)))
    assert github.annotations(failures(11))[-1].startswith("::notice::1 more failure not")


def test_annotation_escaping():
    failure = Failure("a::b[x,y]", "100% wrong\r\nnext", "dir,1/f:2.py", 7)
    (line,) = github.annotations([failure], path_prefix="services/agent_executor/")
    assert line == (
        "::error file=services/agent_executor/dir%2C1/f%3A2.py,line=7,"
        "title=a%3A%3Ab[x%2Cy]::100%25 wrong%0D%0Anext"
    )


def test_annotation_without_location():
    (line,) = github.annotations([Failure("t::x", "m")])
    assert line == "::error title=t%3A%3Ax::m"


def test_escape_functions():
    assert github.escape_data("%\r\n:,") == "%25%0D%0A:,"
    assert github.escape_property("%\r\n:,") == "%25%0D%0A%3A%2C"
