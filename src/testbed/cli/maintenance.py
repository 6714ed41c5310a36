"""`testbed gc` and `testbed collections install`."""

from __future__ import annotations

import argparse
from pathlib import Path

from testbed.core.errors import ExitCode
from testbed.teardown.gc import gc


def cmd_gc(args: argparse.Namespace, _project: Path) -> int:
    results = gc(ttl=args.ttl, run_id_prefix=args.run_id_prefix)
    left = [item for r in results for item in r.left]
    removed = sum(len(r.removed) for r in results)
    print(
        f"gc: {len(results)} run(s) collected, {removed} resource(s) removed"
        + (f"; left {', '.join(left)}" if left else "")
    )
    return int(ExitCode.TEARDOWN) if left else 0


def cmd_collections(args: argparse.Namespace, _project: Path) -> int:
    from testbed.ansible import collections_install  # noqa: PLC0415 - start-up cost of every other command

    root = args.path.resolve() / "ansible_collections" if args.path else None
    for line in collections_install.install(root):
        print(line)
    return 0
