"""The plugin's Unix sockets: every connection served until stopped, and a stop that takes effect at once."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

from testbed.core import unix_socket


def test_connections_are_served_until_stop_which_ends_the_wait_at_once(tmp_path: Path) -> None:
    path = tmp_path / "gate"
    (tmp_path / "gate").write_text("a crashed run's")  # replaced, not refused
    listener = unix_socket.listen(path, 4)
    closing = threading.Event()
    served: list[bytes] = []

    def serve() -> None:
        for connection in unix_socket.connections(listener, closing):
            with connection:
                served.append(connection.recv(16))
                connection.sendall(b"ok\n")

    thread = threading.Thread(target=serve)
    thread.start()
    for word in (b"one", b"two"):
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(str(path))
            client.sendall(word)
            assert client.recv(16) == b"ok\n"
    unix_socket.stop(listener, path, closing)
    thread.join(timeout=5)
    # The waker's connection ends the loop; it is never served as a request.
    assert not thread.is_alive() and served == [b"one", b"two"]
    assert not path.exists()
