"""What a run prints or logs, redacted on its way out: the wrapper's stdout, and a child's output through a pipe
into a capped log that a lingering grandchild cannot hold up."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

from support import alive
from testbed.core.redact import Redactor
from testbed.core.redacted_output import RedactingWriter, redacting_log

VALUE = "s3cr3t-of-the-run-42"


def test_every_write_to_the_wrapper_s_stdout_is_redacted() -> None:
    out = io.StringIO()
    writer = RedactingWriter(out, Redactor([VALUE]))
    writer.write(f"✅ Secrets: {VALUE} resolved\n")
    writer.flush()
    assert out.getvalue() == "✅ Secrets: *** resolved\n"


def test_a_child_s_output_lands_redacted_in_the_log(tmp_path: Path) -> None:
    log = tmp_path / "pytest.log"
    code = f"import sys\nfor i in range(3):\n    print('line', i, {VALUE!r})\nprint({VALUE!r}, file=sys.stderr)"
    with redacting_log(log, Redactor([VALUE])) as pipe:
        subprocess.run([sys.executable, "-c", code], stdout=pipe.fd, stderr=pipe.fd, check=True, timeout=60)
    text = log.read_text()
    assert text.splitlines() == ["line 0 ***", "line 1 ***", "line 2 ***", "***"]
    assert VALUE not in text and pipe.full is None


def test_a_grandchild_that_keeps_the_pipe_open_does_not_hold_the_block_up(tmp_path: Path) -> None:
    log = tmp_path / "pytest.log"
    # The child starts a daemon that inherits the pipe and sleeps on, and ends at once itself.
    code = "import subprocess; print(subprocess.Popen(['sleep', '60']).pid)"
    with redacting_log(log, Redactor()) as pipe:
        subprocess.run([sys.executable, "-c", code], stdout=pipe.fd, stderr=pipe.fd, check=True, timeout=60)
    daemon = int(log.read_text())  # the block ended although `sleep` still holds the pipe's write end
    assert alive(daemon)
    os.kill(daemon, signal.SIGKILL)
