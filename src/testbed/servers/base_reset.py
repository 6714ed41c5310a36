"""What a server kind hands the per-test isolation (tests.isolation: test): an object that brings one server
back to its freshly migrated state before each test, holding what makes that fast (kept connections, a pool
of ready clones) for the length of the tests phase."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class TestReset:
    """One server's reset before each test. `fact` is a worker's share of the server (its database, its
    instance); calls for one worker never overlap, calls for different workers may."""

    __test__ = False  # not a pytest test class despite the name

    def reset(self, fact: Mapping[str, Any]) -> None:
        """Bring the worker's share back to the state migrations left; raise TestbedError naming the server."""

    def keep(self, fact: Mapping[str, Any], label: str) -> str | None:
        """Keep the worker's share as a failing test left it, under a name made from `label`, and put a fresh
        one in its place; the name kept, or None when this kind keeps nothing."""
        return None

    def fresh_copy(self) -> dict[str, Any] | None:
        """A fresh share of the server of its own, not any worker's (the `testbed_database` fixture); None when
        this kind has none to give."""
        return None

    def release(self, name: str) -> None:
        """Remove what fresh_copy gave once its test is over."""

    def failure(self) -> str | None:
        """A problem found in the background (a clone that failed), to stop the tests with; None when all is well."""
        return None

    def close(self) -> None:
        """Give back everything: connections, pooled clones, the template's lock. Never raises."""
