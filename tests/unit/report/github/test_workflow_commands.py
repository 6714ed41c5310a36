"""testbed.core.junit and testbed.report.github: JUnit parsing of a real pytest run, workflow commands, summary."""

import io
import os
import re
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from testbed.core import junit
from testbed.core.junit import Failure
from testbed.report import github

TEST_MODULE = textwrap.dedent(
    """\
    import pytest


    @pytest.fixture
    def broken():
        raise RuntimeError("boom in fixture")


    def test_passes():
        assert 1 + 1 == 2


    def test_fails():
        value = 41
        assert value == 42, "value is not the answer"


    @pytest.mark.skip(reason="not today")
    def test_skipped():
        pass


    def test_errors(broken):
        pass
    """
)

CLASS_MODULE = textwrap.dedent(
    """\
    def helper(x):
        assert x > 5, "x too small"


    class TestThing:
        def test_in_helper(self):
            helper(1)
    """
)


def line_of(source: str, needle: str) -> int:
    """1-based line number of the first source line containing ``needle``."""
    for number, line in enumerate(source.splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in source")


def _run_pytest(folder: Path, junit_family: str, *targets: str) -> Path:
    (folder / "pytest.ini").write_text("[pytest]\n")
    xml = folder / "junit.xml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    proc = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
            "-o", f"junit_family={junit_family}", f"--junitxml={xml}", *targets,
        ],
        cwd=folder, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert xml.is_file()
    return xml


@pytest.fixture(scope="module")
def real_junit(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("junit-run")
    (folder / "test_mod.py").write_text(TEST_MODULE)
    return folder, _run_pytest(folder, "xunit2", "test_mod.py")


@pytest.fixture(scope="module")
def real_junit_xunit1(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("junit-run-xunit1")
    (folder / "pkg").mkdir()
    (folder / "pkg" / "__init__.py").write_text("")
    (folder / "pkg" / "test_cls.py").write_text(CLASS_MODULE)
    return folder, _run_pytest(folder, "xunit1", "pkg/test_cls.py")


# ------------------------------------------------------------------ junit


def test_junit_counts_of_a_real_pytest_run(real_junit):
    folder, xml = real_junit
    summary = junit.parse(xml, root=folder)
    assert summary is not None
    assert (summary.passed, summary.failed, summary.errors, summary.skipped) == (1, 1, 1, 1)
    assert summary.total == 4
    # The suite's own time, as pytest wrote it (a real run takes some): not a sum of zeros or a default.
    suite_time = float(ET.parse(xml).getroot().find("testsuite").get("time"))  # type: ignore[union-attr,arg-type]
    assert summary.duration == suite_time > 0
    assert summary.problem is None
    assert summary.counts()["failed"] == 1


def test_junit_failure_details_are_derived_without_xunit1_attributes(real_junit):
    folder, xml = real_junit
    summary = junit.parse(xml, root=folder)
    assert summary is not None
    by_name = {f.test: f for f in summary.failures}
    assert set(by_name) == {"test_mod::test_fails", "test_mod::test_errors"}

    fail = by_name["test_mod::test_fails"]
    assert fail.kind == "failure"
    assert "value is not the answer" in fail.message
    assert "\n" not in fail.message
    assert fail.file == "test_mod.py"
    assert fail.line == line_of(TEST_MODULE, "assert value == 42")

    error = by_name["test_mod::test_errors"]
    assert error.kind == "error"
    assert error.file == "test_mod.py"
    assert error.line == line_of(TEST_MODULE, 'raise RuntimeError("boom in fixture")')


def test_junit_without_root_still_finds_file_and_line(real_junit):
    _, xml = real_junit
    summary = junit.parse(xml)
    assert summary is not None
    fail = next(f for f in summary.failures if f.test.endswith("test_fails"))
    assert (fail.file, fail.line) == ("test_mod.py", line_of(TEST_MODULE, "assert value == 42"))


def test_junit_xunit1_class_in_package(real_junit_xunit1):
    folder, xml = real_junit_xunit1
    summary = junit.parse(xml, root=folder)
    assert summary is not None
    assert (summary.passed, summary.failed, summary.errors, summary.skipped) == (0, 1, 0, 0)
    (fail,) = summary.failures
    assert fail.test == "pkg.test_cls.TestThing::test_in_helper"
    assert fail.file == "pkg/test_cls.py"
    # The deepest frame in the test's own file: the assert inside the helper.
    assert fail.line == line_of(CLASS_MODULE, "assert x > 5")


def test_junit_missing_file_is_none(tmp_path):
    assert junit.parse(tmp_path / "junit.xml") is None


@pytest.mark.parametrize("content", [b"", b"  \n", b"<testsuites><testsuite"])
def test_junit_empty_or_truncated_file_gives_zero_counts(tmp_path, content):
    xml = tmp_path / "junit.xml"
    xml.write_bytes(content)
    summary = junit.parse(xml)
    assert summary is not None
    assert summary.total == 0
    assert summary.failures == ()
    assert summary.problem


def test_junit_classname_fallback_without_traceback(tmp_path):
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_api.py").write_text("")
    xml = tmp_path / "junit.xml"
    xml.write_text(
        '<testsuites><testsuite time="1.5">'
        '<testcase classname="tests.test_api.TestApi" name="test_a" time="0.5">'
        '<failure message="boom&#10;second line">no traceback here</failure></testcase>'
        '<testcase classname="tests.test_api.TestApi" name="test_b" time="0.5"/>'
        "</testsuite></testsuites>"
    )
    with_root = junit.parse(xml, root=tmp_path)
    without_root = junit.parse(xml)
    assert with_root is not None
    assert without_root is not None
    assert with_root.duration == 1.5
    assert with_root.failures[0].file == without_root.failures[0].file == "tests/test_api.py"
    assert with_root.failures[0].line is None
    assert with_root.failures[0].message == "boom"


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


def _failures(count: int) -> list[Failure]:
    return [
        Failure(f"tests.test_x::test_{i}", f"assert {i} == 0", "tests/test_x.py", i + 1) for i in range(count)
    ]


def test_annotations_cap_at_ten_with_a_notice_for_the_rest():
    lines = github.annotations(_failures(13))
    assert len(lines) == 11
    assert all(line.startswith("::error ") for line in lines[:10])
    assert lines[10] == "::notice::3 more failures not annotated (see the step summary and junit.xml)"
    assert lines[0] == "::error file=tests/test_x.py,line=1,title=tests.test_x%3A%3Atest_0::assert 0 == 0"


def test_annotations_at_or_under_the_cap_have_no_notice():
    assert len(github.annotations(_failures(10))) == 10
    assert not any(line.startswith("::notice") for line in github.annotations(_failures(3)))
    assert github.annotations(_failures(11))[-1].startswith("::notice::1 more failure not")


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


def test_annotations_from_a_real_run(real_junit):
    folder, xml = real_junit
    summary = junit.parse(xml, root=folder)
    assert summary is not None
    lines = github.annotations(list(summary.failures), path_prefix="services/agent_executor")
    expected = f"file=services/agent_executor/test_mod.py,line={line_of(TEST_MODULE, 'assert value == 42')}"
    assert any(expected in line for line in lines)


# ------------------------------------------------------------------ step summary


REPORT = {
    "run_id": "gh-123-1-integration-ab12",
    "service": "agent_executor",
    "backend": "native",
    "exit_code": 1,
    "result": "failed",
    "phases": [
        {"name": "preflight", "title": "Preflight", "status": "ok", "started": 1700000000.0, "duration": 0.4},
        {"name": "servers", "title": "Servers", "status": "ok", "started": 1700000000.4, "duration": 12.25},
        {
            "name": "tests",
            "title": "Tests: run",
            "status": "failed",
            "started": 1700000015.9,
            "duration": 3.2,
        },
    ],
    "tests": {"passed": 1, "failed": 1, "errors": 0, "skipped": 0, "duration": 3.2},
    "coverage": 87.5,
    "run_folder": "/abs/path/runs/gh-123-1-integration-ab12",
    "junit": "/abs/path/runs/gh-123-1-integration-ab12/junit.xml",
}

TASK_LINE = re.compile(r"^    [^:#;%\n]+ : (crit, |active, )?p\d+, (after p\d+|\d+), \d+ms$")


def _mermaid_block(markdown: str) -> list[str]:
    lines = markdown.splitlines()
    start = lines.index("```mermaid")
    end = lines.index("```", start)
    return lines[start + 1 : end]


def test_step_summary_content():
    text = github.step_summary(REPORT, _failures(2))
    assert text.startswith("## ❌ agent_executor integration tests: failed (exit 1: tests failed)")
    assert "| Preflight | ✅ ok | 0.4s |" in text
    assert "| Tests: run | ❌ failed | 3.2s |" in text
    assert "| 1 | 1 | 0 | 0 | 3.2s |" in text
    assert "**Coverage:** 87.5%" in text
    assert "`/abs/path/runs/gh-123-1-integration-ab12`" in text
    assert "tests/test_x.py:1" in text


def test_step_summary_mermaid_gantt_uses_whole_second_starts():
    block = _mermaid_block(github.step_summary(REPORT))
    assert block[0] == "gantt"
    assert "    dateFormat X" in block
    assert "    axisFormat %s" in block
    sections = [line for line in block if line.startswith("    section ")]
    tasks = [line for line in block if " : " in line]
    assert sections == ["    section Preflight", "    section Servers", "    section Tests run"]
    assert len(tasks) == 3
    for task in tasks:
        assert TASK_LINE.match(task), task
    # Contiguous phases chain with `after` (exact), a gap falls back to whole seconds.
    assert tasks[0].endswith("p0, 0, 400ms")
    assert tasks[1].endswith("p1, after p0, 12250ms")
    assert tasks[2].endswith("crit, p2, 15, 3200ms")


def test_step_summary_when_tests_never_ran():
    report = {**REPORT, "tests": None, "coverage": None, "exit_code": 13, "result": "failed"}
    text = github.step_summary(report)
    assert "(exit 13: migrations failed)" in text
    assert "Tests did not run." in text
    assert "**Coverage:** n/a" in text


def test_step_summary_passed():
    text = github.step_summary({**REPORT, "exit_code": 0, "result": "passed", "phases": []})
    assert text.startswith("## ✅ agent_executor integration tests: passed\n")
    assert "```mermaid" not in text


def test_step_summary_stays_under_one_mib_for_a_huge_report():
    phases = [
        {
            "name": f"p{i}",
            "title": "Phase " + "x" * 500 + " | é",
            "status": "ok",
            "started": 1.0 * i,
            "duration": 1,
        }
        for i in range(20_000)
    ]
    failures = [Failure(f"t::test_{i}", "m" * 5000, "f.py", i) for i in range(50_000)]
    report = {**REPORT, "phases": phases, "run_folder": "/r/" + "d" * 100_000}
    text = github.step_summary(report, failures)
    assert len(text.encode()) < 1024 * 1024
    assert "19900 more phases not shown here" in text
    assert "```mermaid" in text
    assert len([line for line in _mermaid_block(text) if " : " in line]) <= 40
    assert "49950 more failures not shown here (see junit.xml)" in text.split("### Failures")[1]


def test_step_summary_respects_a_small_budget():
    text = github.step_summary(REPORT, _failures(500), max_bytes=3000)
    assert len(text.encode()) <= 3000
    # The section fits its first rows and counts the rest: shown + not shown is every failure.
    section = text.split("### Failures\n", 1)[1] if "### Failures\n" in text else ""
    shown = [line for line in section.splitlines() if line.startswith("- `tests.test_x::test_")]
    not_shown = re.search(r"(\d+) more failures not shown here", section)
    assert shown and not_shown and len(shown) + int(not_shown[1]) == 500, text
    assert len(github.step_summary(REPORT, max_bytes=10).encode()) <= 10


# ------------------------------------------------------------------ GITHUB_STEP_SUMMARY / GITHUB_OUTPUT


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "GITHUB_ACTIONS": "true",
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "GITHUB_OUTPUT": str(tmp_path / "output"),
        **extra,
    }


def _read_outputs(path: Path) -> dict[str, str]:
    """Parse a GITHUB_OUTPUT file the way the runner does (name=value and heredoc forms)."""
    values: dict[str, str] = {}
    lines = iter(path.read_text().split("\n"))
    for line in lines:
        if not line:
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            body = []
            for inner in lines:
                if inner == delimiter:
                    break
                body.append(inner)
            values[name] = "\n".join(body)
        else:
            name, value = line.split("=", 1)
            values[name] = value
    return values


def test_write_summary_appends(tmp_path):
    env = _env(tmp_path)
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step output\n")
    assert github.write_summary(REPORT, env) is True
    text = summary.read_text()
    assert text.startswith("earlier step output\n## ❌ agent_executor")
    assert "```mermaid" in text


def test_write_summary_counts_what_is_already_in_the_file(tmp_path):
    env = _env(tmp_path)
    summary = tmp_path / "summary.md"
    summary.write_text("x" * (1024 * 1024 - 5000))
    failures = [Failure(f"t::test_{i}", "m" * 300) for i in range(1000)]
    assert github.write_summary(REPORT, env, failures) is True
    assert summary.stat().st_size < 1024 * 1024


def test_write_outputs(tmp_path):
    env = _env(tmp_path)
    (tmp_path / "output").write_text("earlier=1\n")
    assert github.write_outputs(REPORT, env) is True
    values = _read_outputs(tmp_path / "output")
    assert values == {
        "earlier": "1",
        "result": "failed",
        "passed": "1",
        "failed": "1",
        "errors": "0",
        "skipped": "0",
        "coverage": "87.5",
        "run-folder": "/abs/path/runs/gh-123-1-integration-ab12",  # action.yml's run-folder output
    }
    assert "<<" not in (tmp_path / "output").read_text()


def test_write_outputs_when_tests_never_ran_and_multiline_values(tmp_path):
    env = _env(tmp_path)
    report = {**REPORT, "tests": None, "coverage": None, "result": "failed\nfor real"}
    assert github.write_outputs(report, env) is True
    values = _read_outputs(tmp_path / "output")
    assert values["result"] == "failed\nfor real"
    assert values["passed"] == "0"
    assert values["coverage"] == ""
    assert github.outputs({**report, "run_folder": None})["run-folder"] == ""  # a run refused before its folder


@pytest.mark.parametrize(
    "environ",
    [
        {"CI": "true"},
        {"GITHUB_ACTIONS": "false"},
        {"GITHUB_ACTIONS": "true"},  # no file variables set
    ],
)
def test_nothing_is_written_outside_github_actions(tmp_path, environ):
    env = {
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "GITHUB_OUTPUT": str(tmp_path / "output"),
    }
    if environ.get("GITHUB_ACTIONS") == "true":
        env = {}
    env |= environ
    assert github.write_summary(REPORT, env) is False
    assert github.write_outputs(REPORT, env) is False
    assert list(tmp_path.iterdir()) == []
