"""Free TCP ports on 127.0.0.1.

A port found free can be taken by someone else before its user binds it (another sandbox, an
outgoing connection), so callers that bind through a child process retry with a new port when
the child fails to start; :class:`PortAllocator` only guarantees that one sandbox never hands
out the same port twice.
"""

import random
import socket

LOOPBACK = "127.0.0.1"


def free_port(within=None):
    """A TCP port on 127.0.0.1 that nothing listens on right now; with ``within`` (a range),
    one of those ports, tried in random order."""
    candidates = [0] if within is None else random.sample(within, len(within))
    for port in candidates:
        with socket.socket() as probe:
            try:
                probe.bind((LOOPBACK, port))
            except OSError:
                continue
            return probe.getsockname()[1]
    raise OSError(f"no free port from {within.start} to {within.stop - 1}")


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

    def take(self, within=None):
        """A free port (of ``within``, a range, when given) not handed out before."""
        while True:
            port = free_port(within)
            if port not in self._given:
                self._given.add(port)
                return port
