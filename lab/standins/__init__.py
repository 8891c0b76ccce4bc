"""Stand-ins for the components this machine cannot fetch, with the real names, versions and
file layout, packed by lab/mirror.py as the vendor ships them. Their payload is the project's
simulator (simulators/) where there is one, else a minimal process answering the component's
health endpoint. Each runs with the Python of the host (or of its image) and the standard
library alone.
"""

import os
import socket

# The lab's VPC (lab/network.py lays it out). The stand-ins' proxies reach servers there, as
# the real Kong and vulcand do: the simulators' opt-in (by default they reach loopback only).
VPC_CIDR = "10.0.0.0/16"


def notify_ready():
    """sd_notify(READY=1) for units of Type=notify, as the real daemon does."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.connect(address)
        notify.send(b"READY=1")
