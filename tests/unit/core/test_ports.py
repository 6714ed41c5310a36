"""Ports: a port that only TIME_WAIT connections hold is free; a listener is named with its pid."""

from __future__ import annotations

import os
import socket

from support import leave_time_wait
from testbed.core.ports import free_port, port_free, port_holder


def test_a_port_held_only_by_time_wait_is_free_and_a_listener_is_named() -> None:
    port = free_port()
    leave_time_wait(port)
    assert port_free(port)
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", port))
        holder.listen()
        assert not port_free(port)
        assert f"(pid {os.getpid()})" in port_holder(port)
