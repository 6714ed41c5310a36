"""`python -m testbed` and the `testbed` command. Signals are noted from its first line (testbed.core.interrupts),
before the CLI's modules import, so a Ctrl-C at any moment of start-up ends in one line and 128 + the signal,
and one during a run tears it down."""

import sys


def run() -> int:
    try:
        from testbed.core.interrupts import NOTED  # noqa: PLC0415 - start-up: a signal that beats it is caught here

        NOTED.note()
        from testbed.cli.main import main  # noqa: PLC0415 - start-up cost: after the handlers are in place
    except KeyboardInterrupt:
        print("❌ Interrupted by SIGINT before anything started", file=sys.stderr)
        return 130  # ExitCode.SIGINT, whose module may not have imported yet
    return main()


if __name__ == "__main__":
    sys.exit(run())
