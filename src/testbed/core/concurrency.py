"""Doing one thing to several servers at once: all awaited, the first failure raised."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import TypeVar

from testbed.core.errors import TestbedError

Item = TypeVar("Item")


def each_at_once(action: Callable[[Item], None], items: Iterable[Item]) -> None:
    """Run `action` on every item at once, the first in the calling thread and each other in a thread of its own
    (a single item starts none: the per-test reset of one server is on every test's path), and wait for all of
    them (none is abandoned half-way); then raise the first TestbedError any of them raised, else the first
    other exception (never lost in a thread)."""
    errors: list[Exception] = []

    def one(item: Item) -> None:
        try:
            action(item)
        except Exception as exc:  # raised below, once every item is done
            errors.append(exc)

    todo = list(items)
    threads = [threading.Thread(target=one, args=(item,)) for item in todo[1:]]
    for thread in threads:
        thread.start()
    try:
        if todo:
            one(todo[0])
    finally:
        for thread in threads:
            thread.join()
    if errors:
        raise next((exc for exc in errors if isinstance(exc, TestbedError)), errors[0])
