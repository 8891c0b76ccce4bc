"""The lab's network, all inside its namespace: a bridge that plays the VPC (its router on
each subnet's first address, its resolver on 10.0.0.2 and 169.254.169.253 as AWS's is), a lab dnsmasq answering
the hosts' names, and the apt relay to the machine's Debian mirror.

The relay: on the machine, a UNIX socket forwarding to the mirror's host and port; in the
namespace, a TCP listener on the resolver address forwarding to that socket. Hosts use it as
their apt HTTP proxy for the mirror's host (the mirror answers only to its own Host header).
"""

import subprocess
import time

from lab import system
from lab.standins import VPC_CIDR  # noqa: F401 - the one definition, which the stand-ins need on the hosts

BRIDGE = "br-lab"
SUBNETS = {"public": "10.0.5", "private": "10.0.12"}
RESOLVER = "10.0.0.2"
# The VPC resolver's link-local address, the platform's default upstream (cluster:upstream_dns).
LINK_LOCAL_RESOLVER = "169.254.169.253"
RELAY_FIRST_PORT = 3142
DOMAIN = "eu-west-1.compute.internal"


def router(subnet):
    return f"{SUBNETS[subnet]}.1"


def _ns(*argv):
    subprocess.run(system.in_netns(list(argv)), check=True, env={"PATH": system.TOOL_PATH})


def create():
    subprocess.run(["ip", "netns", "add", system.NETNS], check=True)
    _ns("ip", "link", "set", "lo", "up")
    _ns("ip", "link", "add", BRIDGE, "type", "bridge")
    for prefix in SUBNETS.values():
        _ns("ip", "addr", "add", f"{prefix}.1/24", "dev", BRIDGE)
    for address in (RESOLVER, LINK_LOCAL_RESOLVER):
        _ns("ip", "addr", "add", f"{address}/32", "dev", BRIDGE)
    _ns("ip", "link", "set", BRIDGE, "up")
    # The VPC routes between its subnets; the namespace's own setting, not the machine's.
    _ns("sysctl", "-q", "-w", "net.ipv4.ip_forward=1")


def start_resolver(hosts):
    """The VPC's resolver: the hosts' names (short and EC2-style) and nothing else, answered
    at once (no upstream: an unanswered lookup would stall every tool for seconds)."""
    hosts_file = system.STATE / "resolver-hosts"
    hosts_file.write_text("".join(
        f"{address} {name} ip-{address.replace('.', '-')}.{DOMAIN}\n" for name, address in hosts.items()
    ))
    system.start("infra", system.in_netns([
        "dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--bind-interfaces",
        f"--listen-address={RESOLVER},{LINK_LOCAL_RESOLVER}", f"--addn-hosts={hosts_file}", "--user=root",
        f"--pid-file={system.STATE / 'dnsmasq.pid'}", "--log-facility=-",
    ]), "resolver")


def start_apt_relay(endpoints):
    """One relay per mirror endpoint; returns {mirror host: proxy URL} for the hosts' apt."""
    proxies = {}
    for index, (host, port) in enumerate(endpoints):
        socket_path = system.STATE / f"apt-relay-{index}.sock"
        listen_port = RELAY_FIRST_PORT + index
        system.start("infra", ["socat", f"UNIX-LISTEN:{socket_path},fork,mode=600",
                               f"TCP:{host}:{port}"], f"apt-relay-{index}-machine")
        _wait_for(socket_path.exists, f"the apt relay socket {socket_path}")
        system.start("infra", system.in_netns([
            "socat", f"TCP-LISTEN:{listen_port},bind={RESOLVER},fork,reuseaddr",
            f"UNIX-CONNECT:{socket_path}",
        ]), f"apt-relay-{index}-namespace")
        proxies[host] = f"http://{RESOLVER}:{listen_port}/"
    return proxies


def _wait_for(predicate, what, timeout=10):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def resolv_conf():
    """What the VPC's DHCP writes: its resolver and the region's search domain."""
    return f"search {DOMAIN}\nnameserver {RESOLVER}\n"
