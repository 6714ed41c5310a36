"""The `testbed` command: run, merge, up, test, down, status, env, logs, gc, collections. `main()` parses,
dispatches to one `cmd_*` per command and returns the exit code; a TestbedError is its one line."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from testbed.cli import arguments
from testbed.cli.devloop import cmd_down, cmd_env, cmd_logs, cmd_status, cmd_test, cmd_up
from testbed.cli.maintenance import cmd_collections, cmd_gc
from testbed.cli.run import cmd_merge, cmd_run
from testbed.config.catalogue import project_root
from testbed.core.errors import ExitCode, TestbedError
from testbed.core.files import disk_full_of
from testbed.core.interrupts import NOTED

COMMANDS: dict[str, Any] = {
    "run": cmd_run,
    "merge": cmd_merge,
    "up": cmd_up,
    "test": cmd_test,
    "down": cmd_down,
    "status": cmd_status,
    "env": cmd_env,
    "logs": cmd_logs,
    "gc": cmd_gc,
    "collections": cmd_collections,
}


#: Commands that drive a playbook: they act on a signal themselves (cancel, tear down); the others have
#: nothing to tear down and go back to Python's handlers once they start.
PLAYBOOK_COMMANDS = ("run", "up", "test", "down")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        NOTED.note()  # a no-op from `testbed`: __main__ installed it first (tests call main directly)
        args = arguments.parser().parse_args(argv)
        NOTED.checkpoint()
        if args.command not in PLAYBOOK_COMMANDS:
            NOTED.release()
    except KeyboardInterrupt:
        print(NOTED.before_start_line(), file=sys.stderr)
        return int(NOTED.exit_code)
    try:
        project = project_root()
        code = int(COMMANDS[args.command](args, project))
    except TestbedError as exc:
        print(f"testbed: error: {exc}", file=sys.stderr)
        if args.command in ("run", "up", "test"):
            from testbed.report.run_report import publish_failure  # noqa: PLC0415 - start-up cost: junitparser

            # Under GitHub Actions a run that fails before its playbook still leaves a step summary.
            publish_failure(args.command, getattr(args.service, "name", "") or "service", exc)
        code = int(exc.exit_code)
    except KeyboardInterrupt:  # noted before the run existed (checkpoint), or after release
        print(NOTED.before_start_line(), file=sys.stderr)
        return int(NOTED.exit_code)
    except OSError as exc:
        full = disk_full_of(exc)  # a write of the wrapper's own (secrets, the private folder) on a full disk
        if full is None:
            raise
        print(f"testbed: error: {full}", file=sys.stderr)
        code = int(full.exit_code)
    if NOTED.signum is not None and code not in (ExitCode.SIGINT, ExitCode.SIGTERM):
        # Noted where nothing acted on it (a dev-loop command that ended without a playbook): still its code.
        print(f"❌ Interrupted by {NOTED.name}", file=sys.stderr)
        return int(NOTED.exit_code)
    return code
