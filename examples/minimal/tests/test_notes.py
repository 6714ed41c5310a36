import notes
import psycopg
import pytest


def test_a_note_is_stored() -> None:
    with notes.connect() as conn:
        note = notes.add(conn, "buy milk")
        assert note > 0
        assert "buy milk" in notes.bodies(conn)


def test_an_empty_note_is_refused_by_the_migration() -> None:
    with notes.connect() as conn, pytest.raises(psycopg.errors.CheckViolation):
        notes.add(conn, "")
