"""The Unix sockets testbed serves the pytest plugin on from the process running pytest (the reset gate, the
per-test hand-over): listening in the run's private runtime folder, accepting until told to stop, and stopping
at once rather than at the accept's next timeout."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

# How long an accept waits before it looks at `closing` again; `wake` ends the wait sooner.
_ACCEPT_TIMEOUT = 0.2


def listen(path: Path, backlog: int) -> socket.socket:
    """A listening socket at `path` (one a crashed run left there is replaced)."""
    path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(backlog)
    listener.settimeout(_ACCEPT_TIMEOUT)
    return listener


def connections(listener: socket.socket, closing: threading.Event) -> Iterator[socket.socket]:
    """Each connection `listener` accepts, until `closing` is set or the listener is closed."""
    while not closing.is_set():
        try:
            connection, _ = listener.accept()
        except TimeoutError:
            continue
        except OSError:
            return
        if closing.is_set():  # the waker's, or one that came too late
            connection.close()
            return
        connection.settimeout(None)
        yield connection


def stop(listener: socket.socket, path: Path, closing: threading.Event) -> None:
    """Stop accepting now: `closing` set, the accept woken by a connection of its own; the socket removed."""
    closing.set()
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as waker:
        waker.connect(str(path))
    with contextlib.suppress(OSError):
        listener.close()
    path.unlink(missing_ok=True)
