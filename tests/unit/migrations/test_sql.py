"""Splitting a migration file into statements the way PostgreSQL reads them: quotes, dollar quotes, comments, rules and
SQL-standard function bodies."""

from __future__ import annotations

import pytest

from testbed.migrations import sql


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SELECT 1; SELECT 2", ["SELECT 1;", "SELECT 2"]),
        ("SELECT ';'; SELECT 'it''s; fine'", ["SELECT ';';", "SELECT 'it''s; fine'"]),
        (r"SELECT 'a\'; SELECT 2", [r"SELECT 'a\';", "SELECT 2"]),  # standard_conforming_strings
        (r"SELECT E'\';x'; SELECT e'\\'; SELECT 3", [r"SELECT E'\';x';", r"SELECT e'\\';", "SELECT 3"]),
        ("SELECT date'2020-01-01'; SELECT 2", ["SELECT date'2020-01-01';", "SELECT 2"]),
        ('SELECT 1 AS "a;""b"; SELECT 2', ['SELECT 1 AS "a;""b";', "SELECT 2"]),
        ("SELECT $$a;b$$, $x$ $$; $x$; SELECT 2", ["SELECT $$a;b$$, $x$ $$; $x$;", "SELECT 2"]),
        ("SELECT 1 AS a$b; SELECT $1; SELECT 3", ["SELECT 1 AS a$b;", "SELECT $1;", "SELECT 3"]),
        (
            "/* a /* b; */ c; */ SELECT 1; -- x; y\nSELECT 2;",
            ["/* a /* b; */ c; */ SELECT 1;", "-- x; y\nSELECT 2;"],
        ),
        ("SELECT 1; -- the end;\n/* really; */\n", ["SELECT 1;"]),
        (";;  ; SELECT 1", ["SELECT 1"]),
        (
            "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO u VALUES (1); NOTIFY u); SELECT 1",
            ["CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO u VALUES (1); NOTIFY u);", "SELECT 1"],
        ),
        (
            "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1;"
            " SELECT CASE WHEN true THEN 2 END; END; SELECT 3",
            [
                "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1;"
                " SELECT CASE WHEN true THEN 2 END; END;",
                "SELECT 3",
            ],
        ),
        (
            "CREATE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC INSERT INTO t VALUES (1); END; SELECT 1",
            ["CREATE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC INSERT INTO t VALUES (1); END;", "SELECT 1"],
        ),
        ("SELECT CASE WHEN true THEN 1 END; SELECT 2", ["SELECT CASE WHEN true THEN 1 END;", "SELECT 2"]),
        ("SELECT 'unterminated; SELECT 2", ["SELECT 'unterminated; SELECT 2"]),
    ],
)
def test_split_statements(text: str, expected: list[str]) -> None:
    statements = sql.split_statements(text)
    assert [text[s.start : s.end].strip().lstrip(";").strip() for s in statements] == expected
