"""The Jinja sandbox testbed renders config values in: plain text stays as it is, Python internals are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.core import templates
from testbed.core.errors import TestbedError


def test_plain_values_are_not_templates(tmp_path: Path) -> None:
    """No `{`: the value is data, even with characters Jinja would care about elsewhere."""
    assert templates.render_all({"env.A": "50% off #1 %}"}, {}) == {"env.A": "50% off #1 %}"}


def test_the_sandbox_refuses_python_internals() -> None:
    with pytest.raises(TestbedError, match=r"'env\.A': cannot render"):
        templates.render("{{ ''.__class__.__mro__[1].__subclasses__() }}", {}, "env.A")
