"""Doing one thing to several servers at once: a thread each, all awaited, the first failure raised."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import TypeVar

from testbed.core.errors import TestbedError

Item = TypeVar("Item")


def each_at_once(action: Callable[[Item], None], items: Iterable[Item]) -> None:
    """Run `action` on every item in its own thread and wait for all of them (none is abandoned half-way);
    then raise the first TestbedError any of them raised."""
    errors: list[TestbedError] = []

    def one(item: Item) -> None:
        try:
            action(item)
        except TestbedError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(item,)) for item in items]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
