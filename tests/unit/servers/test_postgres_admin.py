"""PostgreSQL's names and errors as testbed's admin helpers shape them (cloning and swapping are tested against a
real server in tests/e2e/test_isolation.py and tests/e2e/test_workers.py)."""

from __future__ import annotations

import pytest

from testbed.servers import postgres_admin, postgres_pool


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


@pytest.mark.parametrize(("label", "slug"), [
    ("tests/test_a.py::test_one[x-1]", "tests_test_a_py_test_one_x_1"),
    ("Ünïcode only", "n_code_only"),
    ("::[]", "test"),
    ("t" * 80, "t" * 40),
])
def test_a_kept_database_s_name_is_made_of_the_test_s_id(label: str, slug: str) -> None:
    assert postgres_pool._slug(label) == slug
