"""PostgreSQL's names and errors as testbed's admin helpers shape them (cloning and swapping are tested against a
real server in tests/e2e/test_isolation.py and tests/e2e/test_workers.py)."""

from __future__ import annotations

import pytest

from testbed.servers import postgres_admin


def test_a_name_over_63_bytes_keeps_its_start_and_a_digest_of_the_whole() -> None:
    assert postgres_admin.identifier("svc") == "svc"
    long = "d" * 60 + "_testbed_fresh"
    other = "d" * 60 + "_testbed_trash"
    assert len(postgres_admin.identifier(long).encode()) <= 63
    assert postgres_admin.identifier(long).startswith("d" * 50 + "_")
    assert postgres_admin.identifier(long) != postgres_admin.identifier(other)  # PostgreSQL would make them one
    assert len(postgres_admin.identifier("é" * 40).encode()) <= 63  # never cut inside a character


def test_the_kept_template_is_named_after_its_database() -> None:
    assert postgres_admin.fresh_name("svc") == "svc_testbed_fresh"


@pytest.mark.parametrize(("error", "line"), [
    (RuntimeError('database "x" is being accessed by other users\nDETAIL:  There is 1 other session.'),
     'database "x" is being accessed by other users'),
    (TimeoutError(), "TimeoutError"),
])
def test_an_error_is_its_first_line_or_its_type(error: BaseException, line: str) -> None:
    assert postgres_admin.first_line(error) == line

