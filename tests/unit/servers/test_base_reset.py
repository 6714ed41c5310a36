"""A kind without a per-test reset of its own keeps nothing, gives nothing and reports nothing wrong."""

from __future__ import annotations

from testbed.servers.base_reset import TestReset


def test_the_default_reset_keeps_and_gives_nothing() -> None:
    reset = TestReset()
    reset.reset({"url": "x"})
    assert (reset.keep({"database": "d"}, "t"), reset.fresh_copy(), reset.failure()) == (None, None, None)
    reset.release("d")
    reset.close()
