"""`python -m testbed` and the `testbed` command. Its own imports are light, so a Ctrl-C that lands while
the CLI's modules import (a second or more on a cold or busy machine) ends as a later one does: one line,
exit 130. From `cli.main` on, main handles it."""

import sys

INTERRUPTED = "❌ Interrupted by SIGINT before anything started"


def run() -> int:
    try:
        from testbed.cli import main  # noqa: PLC0415
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130  # ExitCode.SIGINT, whose module may not have imported yet
    return main()


if __name__ == "__main__":
    sys.exit(run())
