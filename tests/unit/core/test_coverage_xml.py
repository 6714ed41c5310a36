"""coverage.py's Cobertura XML as the one figure testbed shows: its line rate in percent, or None without a report."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.core.coverage_xml import coverage_percent


@pytest.mark.parametrize(("rate", "percent"), [("1", 100.0), ("0.87654", 87.7), ("0", 0.0)])
def test_the_line_rate_is_shown_in_percent_to_one_decimal(tmp_path: Path, rate: str, percent: float) -> None:
    report = tmp_path / "coverage.xml"
    report.write_text(f'<?xml version="1.0" ?>\n<coverage version="7.6" line-rate="{rate}" branch-rate="0"/>\n')
    assert coverage_percent(report) == percent


@pytest.mark.parametrize("content", [None, "", "<coverage line-rate=", "not xml at all"])
def test_no_readable_report_is_none(tmp_path: Path, content: str | None) -> None:
    report = tmp_path / "coverage.xml"
    if content is not None:
        report.write_text(content)
    assert coverage_percent(report) is None
