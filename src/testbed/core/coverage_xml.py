"""A coverage.xml report (coverage.py's Cobertura XML) as the one figure testbed shows of it."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path


def coverage_percent(path: Path) -> float | None:
    """The line coverage it reports, in percent to one decimal; None when there is no readable report."""
    try:
        root = ET.parse(path).getroot()  # noqa: S314 - coverage.py wrote it, in this run or this merge
    except (OSError, ET.ParseError):
        return None
    return round(float(root.get("line-rate", "0")) * 100, 1)
