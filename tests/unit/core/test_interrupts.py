"""SIGINT and SIGTERM noted, never raised at an arbitrary point; acted on at fixed points; the handlers there were
before come back."""

from __future__ import annotations

import signal

import pytest

from testbed.core.errors import ExitCode
from testbed.core.interrupts import Interrupted


def test_a_signal_is_noted_not_raised_and_ends_the_command_at_the_next_checkpoint() -> None:
    before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    noted = Interrupted()
    with noted:
        signal.raise_signal(signal.SIGTERM)  # nothing raised here: only noted
        signal.raise_signal(signal.SIGINT)
        assert noted() and noted.count == 2
        assert (noted.name, noted.exit_code) == ("SIGTERM", ExitCode.SIGTERM)  # the first one counts
        assert noted.before_start_line() == "❌ Interrupted by SIGTERM before anything started"
        with pytest.raises(KeyboardInterrupt):
            noted.checkpoint()
    assert {signum: signal.getsignal(signum) for signum in before} == before


def test_without_a_signal_the_checkpoint_lets_the_command_go_on() -> None:
    noted = Interrupted()
    with noted:
        noted.checkpoint()
    assert not noted() and noted.exit_code == ExitCode.SIGINT and noted.count == 0


def test_a_nested_block_leaves_the_outer_one_s_handlers_in_place() -> None:
    noted = Interrupted()
    with noted:
        handler = signal.getsignal(signal.SIGINT)
        with noted:
            pass
        assert signal.getsignal(signal.SIGINT) == handler  # still noting
        signal.raise_signal(signal.SIGINT)
    assert noted.name == "SIGINT" and noted.exit_code == ExitCode.SIGINT
