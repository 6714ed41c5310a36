"""Host ports: whether one is free, a free one, and who holds a taken one."""

from __future__ import annotations

import socket
from pathlib import Path


def port_holder(port: int) -> str:
    """Who listens on a TCP port, where /proc tells (root sees every process)."""
    wanted = f":{port:04X}"
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text(encoding="ascii").splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[1].endswith(wanted) and fields[3] == "0A":  # 0A: LISTEN
                inodes.add(fields[9])
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                target = str(fd.readlink())
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    name = (proc / "comm").read_text(encoding="utf-8").strip()
                    return f"{name} (pid {proc.name})"
        except OSError:
            continue
    return ""


def port_free(port: int) -> bool:
    """Whether a server could listen on the port. With SO_REUSEADDR, as the servers bind: the previous
    run's TIME_WAIT connections do not count, a listener (or a socket that refuses the bind) does."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
