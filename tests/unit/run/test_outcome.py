"""A test whose pytest-xdist worker crashed (`[gw0] node down`) counts as pytest counts it, failed: its junit
writer calls it an error "on setup"."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from testbed.core import junit
from testbed.run.outcome import tests_line as phase_words  # not collected as a test


def test_a_crashed_worker_s_test_counts_as_failed(tmp_path: Path) -> None:
    (tmp_path / "test_crash.py").write_text(
        "import os\nimport pytest\n\n"
        "@pytest.mark.parametrize('i', range(4))\ndef test_ok(i):\n    pass\n\n"
        "def test_crash():\n    os._exit(1)\n"
    )
    report = tmp_path / "junit.xml"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "-p", "no:randomly", "-p", "no:cacheprovider",
         f"--junitxml={report}", "-o", "junit_family=xunit1", "test_crash.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )
    assert "1 failed, 4 passed" in done.stdout, done.stdout  # pytest's own words
    summary = junit.parse(report)
    assert summary is not None
    assert (summary.passed, summary.failed, summary.errors) == (4, 1, 0)
    assert phase_words(summary.counts()).startswith("4 passed, 1 failed in ")
    [failure] = summary.failures
    assert re.fullmatch(r"worker 'gw\d' crashed while running 'test_crash.py::test_crash'", failure.message)
