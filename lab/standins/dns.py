"""A minimal DNS responder (RFC 1035, UDP): A records from a lookup function, an empty
answer for other types of a known name, NXDOMAIN otherwise. Enough for Consul's DNS
interface as dnsmasq and the resolver library use it."""

import socket
import struct
import threading

TYPE_A, CLASS_IN = 1, 1
NOERROR, SERVFAIL, NXDOMAIN = 0, 2, 3
TTL = 0  # as Consul's default: every lookup sees the catalog of now


def _question(packet):
    labels, offset = [], 12
    while packet[offset]:
        length = packet[offset]
        labels.append(packet[offset + 1:offset + 1 + length].decode("ascii", "replace"))
        offset += 1 + length
    qtype, qclass = struct.unpack("!HH", packet[offset + 1:offset + 5])
    return ".".join(labels).lower(), qtype, qclass, offset + 5


def answer(packet, lookup):
    """The reply to one query packet; ``lookup(name)`` returns IPv4 addresses or None."""
    query_id, flags = struct.unpack("!HH", packet[:4])
    name, qtype, qclass, end = _question(packet)
    try:
        addresses = lookup(name)
        rcode = NXDOMAIN if addresses is None else NOERROR
    except Exception:  # a failing lookup answers SERVFAIL rather than nothing
        addresses, rcode = None, SERVFAIL
    records = [] if qtype != TYPE_A or qclass != CLASS_IN else (addresses or [])
    reply_flags = 0x8000 | 0x0400 | (flags & 0x0100) | 0x0080 | rcode  # QR AA RD RA
    head = struct.pack("!HHHHHH", query_id, reply_flags, 1, len(records), 0, 0)
    body = b"".join(
        struct.pack("!HHHIH", 0xC00C, TYPE_A, CLASS_IN, TTL, 4) + socket.inet_aton(address)
        for address in records
    )
    return head + packet[12:end] + body


def serve(address, port, lookup):
    """Answer on ``address``:``port`` (UDP) in a background thread."""
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind((address, port))

    def loop():
        while True:
            packet, client = server.recvfrom(512)
            try:
                server.sendto(answer(packet, lookup), client)
            except (IndexError, struct.error):
                continue  # not a query we can parse: no answer, as for garbage

    threading.Thread(target=loop, name=f"dns-{address}", daemon=True).start()
    return server


def query_packet(name, query_id=0x1AB):
    """An A query for ``name`` (recursion desired)."""
    labels = b"".join(bytes([len(label)]) + label.encode("ascii") for label in name.split(".") if label)
    return struct.pack("!HHHHHH", query_id, 0x0100, 1, 0, 0, 0) + labels + b"\0" + struct.pack("!HH", TYPE_A, CLASS_IN)


def addresses_of(reply):
    """The A records of a reply (None for NXDOMAIN): the answers follow the question."""
    if struct.unpack("!H", reply[2:4])[0] & 0xF == NXDOMAIN:
        return None
    count = struct.unpack("!H", reply[6:8])[0]
    offset = _question(reply)[3]
    found = []
    for _ in range(count):
        rdlength = struct.unpack("!H", reply[offset + 10:offset + 12])[0]
        if rdlength == 4:
            found.append(socket.inet_ntoa(reply[offset + 12:offset + 16]))
        offset += 12 + rdlength
    return found
