"""The pool's names (the pool itself is tested against real servers in tests/e2e/test_isolation.py)."""

from __future__ import annotations

import pytest

from testbed.servers import postgres_pool


@pytest.mark.parametrize(("label", "slug"), [
    ("tests/test_a.py::test_one[x-1]", "tests_test_a_py_test_one_x_1"),
    ("Ünïcode only", "n_code_only"),
    ("::[]", "test"),
    ("t" * 80, "t" * 40),
])
def test_a_kept_database_s_name_is_made_of_the_test_s_id(label: str, slug: str) -> None:
    assert postgres_pool._slug(label) == slug
