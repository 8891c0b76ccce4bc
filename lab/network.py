"""The lab's network, all inside its namespace: a bridge that plays the VPC (its router on
each subnet's first address, its resolver on 10.0.0.2 and 169.254.169.253 as AWS's is), a lab dnsmasq answering
the hosts' names, and the apt relay to the machine's Debian mirror.

The relay: on the machine, a UNIX socket forwarding to the mirror's host and port; in the
namespace, a TCP listener on the resolver address forwarding to that socket. Hosts use it as
their apt HTTP proxy for the mirror's host (the mirror answers only to its own Host header).
"""

import concurrent.futures
import ctypes
import ipaddress
import os
import signal
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
RESOLVER_PID_FILE = system.STATE / "dnsmasq.pid"


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


def _resolver_hosts(hosts):
    hosts_file = system.STATE / "resolver-hosts"
    hosts_file.write_text("".join(
        f"{address} {name} ip-{address.replace('.', '-')}.{DOMAIN}\n" for name, address in hosts.items()
    ))
    return hosts_file


def start_resolver(hosts):
    """The VPC's resolver: the hosts' names (short and EC2-style) and nothing else, answered
    at once (no upstream: an unanswered lookup would stall every tool for seconds)."""
    system.start("infra", system.in_netns([
        "dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--bind-interfaces",
        f"--listen-address={RESOLVER},{LINK_LOCAL_RESOLVER}", f"--addn-hosts={_resolver_hosts(hosts)}",
        "--user=root", f"--pid-file={RESOLVER_PID_FILE}", "--log-facility=-",
    ]), "resolver")
    _wait_for(RESOLVER_PID_FILE.exists, "the resolver's pid file")


def update_resolver(hosts):
    """The resolver answers ``hosts`` from now on (hosts come and go with their instances)."""
    _resolver_hosts(hosts)
    os.kill(int(RESOLVER_PID_FILE.read_text()), signal.SIGHUP)  # dnsmasq rereads its hosts files


def _relay(name, target, listen):
    """Connections to ``listen`` (address, port) in the namespace reach ``target`` (host,
    port) of the machine, through a UNIX socket."""
    socket_path = system.STATE / f"{name}.sock"
    system.start("infra", ["socat", f"UNIX-LISTEN:{socket_path},fork,mode=600",
                           "TCP:{}:{}".format(*target)], f"{name}-machine")
    _wait_for(socket_path.exists, f"the relay socket {socket_path}")
    system.start("infra", system.in_netns([
        "socat", "TCP-LISTEN:{1},bind={0},fork,reuseaddr".format(*listen), f"UNIX-CONNECT:{socket_path}",
    ]), f"{name}-namespace")


def start_apt_relay(endpoints):
    """One relay per mirror endpoint; returns {mirror host: proxy URL} for the hosts' apt."""
    proxies = {}
    for index, (host, port) in enumerate(endpoints):
        listen_port = RELAY_FIRST_PORT + index
        _relay(f"apt-relay-{index}", (host, port), (RESOLVER, listen_port))
        proxies[host] = f"http://{RESOLVER}:{listen_port}/"
    return proxies


def relay_loopback_port(port):
    """The machine's 127.0.0.1:``port`` (a service of the machine's loopback, such as
    moto_server) at the same address and port inside the namespace."""
    _relay(f"loopback-{port}", ("127.0.0.1", port), ("127.0.0.1", port))
    _wait_for(lambda: _listening_in_netns(port), f"the relay of 127.0.0.1:{port} in the namespace")


def _listening_in_netns(port):
    listening = subprocess.run(system.in_netns(["ss", "-Hltn", f"sport = :{port}"]),
                               capture_output=True, text=True, env={"PATH": system.TOOL_PATH})
    return bool(listening.stdout.strip())


# moto_server's elastic IPs are in 127.0.0.0/8: loopback addresses everywhere else, so the
# route to one is in the local table (ahead of 127.0.0.0/8 on lo) and route_localnet lets such
# packets cross the bridge. The host behind it takes them as its own (its lo's 127.0.0.0/8),
# with route_localnet on its side too (HOST_LOCALNET_SYSCTLS).
HOST_LOCALNET_SYSCTLS = ("net.ipv4.conf.all.route_localnet=1", "net.ipv4.conf.host0.route_localnet=1")


def route_public_address(public, private):
    """A public address (an elastic IP) reaches the host of ``private``, as AWS's internet
    gateway forwards it to the instance's private address."""
    table = ["table", "local"] if ipaddress.ip_address(public).is_loopback else []
    if table:
        _ns("sysctl", "-q", "-w", "net.ipv4.conf.all.route_localnet=1",
            f"net.ipv4.conf.{BRIDGE}.route_localnet=1")
    _ns("ip", "route", "replace", f"{public}/32", "via", private, "dev", BRIDGE, *table)


def unroute_public_address(public):
    table = ["table", "local"] if ipaddress.ip_address(public).is_loopback else []
    subprocess.run(system.in_netns(["ip", "route", "del", f"{public}/32", *table]),
                   capture_output=True, env={"PATH": system.TOOL_PATH})


def _wait_for(predicate, what, timeout=10):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


_CLONE_NEWNET = 0x40000000


def _enter_namespace():
    libc = ctypes.CDLL(None, use_errno=True)
    with open(system.NETNS_PATH, "rb") as namespace:
        if libc.setns(namespace.fileno(), _CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {system.NETNS_PATH}")


def namespace_executor():
    """An executor whose one thread lives in the lab's namespace (setns moves only the calling
    thread): what it runs reaches the hosts' addresses, as the operator's machine reaches AWS."""
    return concurrent.futures.ThreadPoolExecutor(max_workers=1, initializer=_enter_namespace,
                                                 thread_name_prefix="lab namespace")


def resolv_conf():
    """What the VPC's DHCP writes: its resolver and the region's search domain."""
    return f"search {DOMAIN}\nnameserver {RESOLVER}\n"
