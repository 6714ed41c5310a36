"""JUnit reports as pytest writes them (xunit2 and xunit1): counts, failures with file and line, and what a
broken or missing file gives; annotations from a real run's failures."""


import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from testbed.core import junit
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



def test_annotations_from_a_real_run(real_junit):
    folder, xml = real_junit
    summary = junit.parse(xml, root=folder)
    assert summary is not None
    lines = github.annotations(list(summary.failures), path_prefix="services/agent_executor")
    expected = f"file=services/agent_executor/test_mod.py,line={line_of(TEST_MODULE, 'assert value == 42')}"
    assert any(expected in line for line in lines)
