"""The forms of a secret that are too short to redact safely."""

from __future__ import annotations

from testbed.core import secret_forms


def test_values_too_short_to_redact_safely() -> None:
    assert secret_forms.too_short("1234567") and secret_forms.too_short("  1234567  ")
    assert not secret_forms.too_short("12345678")
