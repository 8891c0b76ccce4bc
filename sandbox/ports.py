"""Free TCP ports on 127.0.0.1.

A port found free can be taken by someone else before its user binds it (another sandbox, an
outgoing connection), so callers that bind through a child process retry with a new port when
the child fails to start; :class:`PortAllocator` only guarantees that one sandbox never hands
out the same port twice.
"""

import socket

LOOPBACK = "127.0.0.1"


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def is_listening(port, host=LOOPBACK, timeout=0.5):
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class PortAllocator:
    """Hands out free ports, each at most once per sandbox."""

    def __init__(self):
        self._given = set()

    def take(self):
        while True:
            port = free_port()
            if port not in self._given:
                self._given.add(port)
                return port
