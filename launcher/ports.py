"""Every port the suite will listen on is checked before anything starts.

Without the check, a second `make run` next to a running suite printed
"ready" (the other suite answered its health check) and then restarted its
children forever on "Address already in use". Each port is bound once here,
the way the servers bind it (SO_REUSEADDR, so a socket in TIME_WAIT is no
obstacle, as it is none for them), and released at once. For a taken port the
message names the setting that chose it and, from /proc, the process that
holds it when this user may see it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from launcher.config import Binding

_PROC = Path("/proc")
_TCP_LISTEN = "0A"
_MAX_COMMAND_CHARS = 200


@dataclass(frozen=True, slots=True)
class Unavailable:
    """A port the suite cannot listen on, and why."""

    binding: Binding
    reason: str

    def message(self) -> str:
        b = self.binding
        return f"{b.what} cannot listen on {b.host}:{b.port} ({b.setting}): {self.reason}"


def _bind_error(host: str, port: int) -> OSError | None:
    """The error binding host:port gives now, or None if it is free."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        return OSError(errno.EADDRNOTAVAIL, f"{host} does not resolve: {error}")
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
            # A bind can succeed next to a socket that is bound but not listening yet; listen cannot.
            probe.listen(1)
        except OSError as error:
            return error
    return None


def _socket_inodes(port: int, proc: Path) -> list[str]:
    """Inodes of TCP sockets on `port`, listening ones first (from /proc/net/tcp and tcp6)."""
    listening: list[str] = []
    other: list[str] = []
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in (proc / "net" / table).read_text(encoding="ascii").splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9 and int(fields[1].rpartition(":")[2], 16) == port and fields[9] != "0":
                    (listening if fields[3] == _TCP_LISTEN else other).append(fields[9])
    return listening + other


def _command(pid: str, proc: Path) -> str:
    with contextlib.suppress(OSError):
        argv = (proc / pid / "cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        command = " ".join(part.decode(errors="replace") for part in argv)
        if command:
            return command if len(command) <= _MAX_COMMAND_CHARS else command[: _MAX_COMMAND_CHARS - 3] + "..."
    return "?"


def holder(port: int, proc: Path = _PROC) -> str:
    """Who holds `port`: "pid N (command)" when /proc shows it to this user, else "another process"."""
    inodes = _socket_inodes(port, proc)
    if not inodes:
        return "another process"
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in wanted:
                        return f"pid {entry.name} ({_command(entry.name, proc)})"
    return "another process (not one this user may inspect)"


def unavailable(bindings: Iterable[Binding]) -> list[Unavailable]:
    """Every binding that cannot be made now: taken, or refused (a privileged port, an address not here)."""
    found = []
    for binding in bindings:
        error = _bind_error(binding.host, binding.port)
        if error is None:
            continue
        if error.errno == errno.EADDRINUSE:
            reason = f"the port is in use by {holder(binding.port)}"
        else:
            reason = str(error.strerror or error)
        found.append(Unavailable(binding, reason))
    return found
