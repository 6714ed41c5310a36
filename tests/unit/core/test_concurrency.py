"""Doing one thing to several servers at once: every item runs, none is abandoned, the first failure is raised."""

from __future__ import annotations

import threading

import pytest

from testbed.core.concurrency import each_at_once
from testbed.core.errors import ExitCode, TestbedError


def test_every_item_runs_in_a_thread_of_its_own_at_the_same_time() -> None:
    barrier = threading.Barrier(3, timeout=30)  # passes only when all three run at once
    seen: list[str] = []

    def action(item: str) -> None:
        barrier.wait()
        seen.append(item)

    each_at_once(action, ["postgres", "dragonfly", "nats"])
    assert sorted(seen) == ["dragonfly", "nats", "postgres"]


def test_a_failure_is_raised_after_every_other_item_finished() -> None:
    finished: list[str] = []
    failed = threading.Event()

    def action(item: str) -> None:
        if item == "bad":
            failed.set()
            raise TestbedError("bad: would not start", ExitCode.PROVISIONING)
        failed.wait(timeout=30)  # still running when the failure is raised in the other thread
        finished.append(item)

    with pytest.raises(TestbedError, match="bad: would not start") as caught:
        each_at_once(action, ["a", "bad", "b"])
    assert caught.value.exit_code == ExitCode.PROVISIONING
    assert sorted(finished) == ["a", "b"]


def test_no_items_is_nothing_to_do() -> None:
    each_at_once(lambda _item: (_ for _ in ()).throw(AssertionError("called")), [])


def test_a_single_item_runs_in_the_calling_thread() -> None:
    ran_in: list[threading.Thread] = []
    each_at_once(lambda _item: ran_in.append(threading.current_thread()), ["postgres"])
    assert ran_in == [threading.current_thread()]


def test_an_unexpected_exception_in_a_thread_is_raised_not_lost() -> None:
    def action(item: str) -> None:
        if item == "bug":
            raise KeyError(item)

    with pytest.raises(KeyError, match="bug"):
        each_at_once(action, ["a", "bug"])


def test_a_testbed_error_is_raised_before_an_unexpected_one() -> None:
    def action(item: str) -> None:
        raise KeyError(item) if item == "bug" else TestbedError("b: failed", ExitCode.PROVISIONING)

    with pytest.raises(TestbedError, match="b: failed"):
        each_at_once(action, ["bug", "b"])
