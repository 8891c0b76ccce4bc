"""``consul``: a stand-in for the Consul 1.21.5 binary (``version``, ``validate``, ``agent
-config-dir=DIR``), its payload the project's Consul simulator.

The agent reads the JSON files of its config dir as Consul does and listens where Consul
would: the HTTP API on ``client_addr`` (port ``ports.http``), DNS on ``client_addr`` (port
``ports.dns``, ``<service>.service.<domain>`` and ``<node>.node.<domain>``), and the server
RPC port 8300 on ``bind_addr``. A server holds the catalog (the simulator, ACLs on with the
management token), itself listed as service ``consul``; every agent sends its node and
config-dir services (a server: and itself as ``consul``) to every other server of
``retry_join`` over that port, as real agents reach the servers over RPC, and a client
forwards the DNS lookups it cannot answer to them.
"""

import json
import pathlib
import socket
import sys
import threading
import time
import urllib.request

from lab.standins import dns, notify_ready
from simulators.base import serve_forever_on
from simulators.consul import PASSING, ConsulSimulator

VERSION = "1.21.5"
RPC_PORT = 8300
RETRY_INTERVAL = 2


def load_config(config_dir):
    config = {}
    for path in sorted(pathlib.Path(config_dir).glob("*.json")):
        data = json.loads(path.read_text())
        if set(data) == {"service"}:
            config.setdefault("services", []).append(data["service"])
        else:
            config.update(data)
    return config


class Agent:
    def __init__(self, config):
        self.config = config
        self.node = config.get("node_name") or socket.gethostname()
        self.address = config["bind_addr"]
        self.domain = config.get("domain", "consul").strip(".")
        self.server = bool(config.get("server"))
        self.token = config.get("acl", {}).get("tokens", {}).get("initial_management") if self.server else None
        self.simulator = ConsulSimulator(
            master_token=self.token, datacenter=config.get("datacenter", "dc1"),
            node_name=self.node, initial_check_status=PASSING,
        )
        self.addresses = config.get("client_addr", "127.0.0.1").split()
        self.peers = [peer for peer in config.get("retry_join", []) if peer != self.address]

    # --- catalog --------------------------------------------------------------------------
    def _api(self, method, path, body=None):
        headers = {"X-Consul-Token": self.token} if self.token else {}
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}{path}", method=method, headers=headers,
            data=None if body is None else json.dumps(body).encode())
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read() or b"null")

    @property
    def http_port(self):
        return self.config.get("ports", {}).get("http", 8500)

    def register(self, node, address, services):
        self._api("PUT", "/v1/catalog/register", {"Node": node, "Address": address})
        for service in services:
            self._api("PUT", "/v1/catalog/register", {
                "Node": node, "Address": address,
                "Service": {"ID": service.get("id", service["name"]), "Service": service["name"],
                            "Port": service.get("port", 0), "Tags": service.get("tags", [])},
            })

    def own_services(self):
        return list(self.config.get("services", []))

    def lookup(self, name):
        suffix = f".{self.domain}"
        if not name.endswith(suffix):
            return None
        parts = name[: -len(suffix)].split(".")
        if len(parts) >= 2 and parts[-1] == "service":
            entries = self._api("GET", f"/v1/catalog/service/{parts[-2]}")
            found = sorted({entry["Address"] for entry in entries})
        elif len(parts) == 2 and parts[1] == "node":
            found = [node["Address"] for node in self._api("GET", "/v1/catalog/nodes") if node["Node"] == parts[0]]
        else:
            return None
        if found or self.server:
            return found or None
        return self._ask_servers(name)

    def _ask_servers(self, name):
        query = dns.query_packet(name)
        for peer in self.peers:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
                client.settimeout(2)
                try:
                    client.sendto(query, (peer, self.config.get("ports", {}).get("dns", 8600)))
                    return dns.addresses_of(client.recv(512))
                except OSError:
                    continue
        return None

    # --- server RPC -----------------------------------------------------------------------
    def serve_rpc(self):
        listener = socket.create_server((self.address, RPC_PORT))

        def loop():
            while True:
                connection, _ = listener.accept()
                with connection, connection.makefile("rb") as stream:
                    member = json.loads(stream.readline())
                    self.register(member["node"], member["address"], member["services"])
                    connection.sendall(b"ok\n")

        threading.Thread(target=loop, name="rpc", daemon=True).start()

    def join_servers(self):
        """Anti-entropy: this node and its services on every other server, retried until each
        answered once (servers may start later)."""
        services = self.own_services() + ([{"name": "consul", "port": RPC_PORT}] if self.server else [])
        member = json.dumps({"node": self.node, "address": self.address, "services": services}).encode() + b"\n"
        pending = set(self.peers)
        while pending:
            for peer in sorted(pending):
                try:
                    with socket.create_connection((peer, RPC_PORT), timeout=5) as connection:
                        connection.sendall(member)
                        if connection.makefile("rb").readline() == b"ok\n":
                            pending.discard(peer)
                except OSError:
                    pass
            time.sleep(RETRY_INTERVAL)

    def run(self):
        for address in self.addresses:
            serve_forever_on(self.simulator, address, self.http_port)
            dns.serve(address, self.config.get("ports", {}).get("dns", 8600), self.lookup)
        self.register(self.node, self.address, self.own_services())
        if not self.server:
            # The simulator starts as a server, listed as service "consul"; a client is not.
            self._api("PUT", "/v1/catalog/deregister", {"Node": self.node, "ServiceID": "consul"})
        if self.server:
            self.serve_rpc()
        threading.Thread(target=self.join_servers, name="join", daemon=True).start()
        notify_ready()
        threading.Event().wait()


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv else ""
    if command == "version":
        print(f"Consul v{VERSION}\nRevision lab-stand-in\nBuild Date 2025-09-01T00:00:00Z")
        return 0
    options = dict(arg.lstrip("-").split("=", 1) for arg in argv[1:] if "=" in arg)
    if command == "validate":
        load_config(argv[-1])
        print("Configuration is valid!")
        return 0
    if command == "agent" and "config-dir" in options:
        Agent(load_config(options["config-dir"])).run()
        return 0
    print(f"consul (lab stand-in): {' '.join(argv) or 'no command'} is not supported", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
