"""The highstate applied for real from the salt-master to the default map's hosts, checked as an
operator checks a cluster. Debian's archive installs for real; what this machine cannot fetch
runs as the lab's stand-ins (see REAL and STAND_INS in conftest.py; the test output names them)."""

import json

import pytest

from lab import mirror, network
from lab import salt as salt_results

pytestmark = pytest.mark.slow

SERVICES = {
    "kong": ["chrony", "dnsmasq", "consul", "postgresql", "kong"],
    "master": ["chrony", "dnsmasq", "consul", "docker", "weave", "zookeeper", "mesos-master",
               "marathon", "etcd", "vulcand"],
    "slave": ["chrony", "dnsmasq", "consul", "docker", "weave", "mesos-agent"],
}
# Where each role's services promise to listen (ADDRESS: the host's private address).
LISTENERS = {
    "*": ["127.0.0.1:53", "ADDRESS:53", "127.0.0.1:8500", "ADDRESS:8500", "127.0.0.1:8600", "ADDRESS:8600"],
    "kong": ["0.0.0.0:8000", "ADDRESS:8001", "127.0.0.1:5432"],
    "master": ["ADDRESS:2181", "ADDRESS:5050", "ADDRESS:8080", "127.0.0.1:2379", "ADDRESS:8182",
               "ADDRESS:8300", "ADDRESS:6783"],
    "slave": ["ADDRESS:5051", "ADDRESS:6783"],
}
WILDCARD_LISTENERS = ("0.0.0.0:", "*:", "[::]:")
# Kong's proxy is the platform's one public listener.
PUBLIC_LISTENERS = {"kong": ("0.0.0.0:8000",)}
# The salt-master's publish and request ports: the deploy's master configuration leaves its
# default interface (every address); the security groups admit only the cluster's.
SALT_MASTER_LISTENERS = ("0.0.0.0:4505", "0.0.0.0:4506")


def role(lab, host):
    return lab.profiles[host.name]["grains"]["roles"][0]


def listeners(host):
    """Local address:port of every listening socket (IPv4-mapped addresses as IPv4)."""
    return {line.split()[4].replace("[::ffff:", "").replace("]:", ":") if "[::ffff:" in line else line.split()[4]
            for line in host.run(["ss", "-H", "-ltnu"]).stdout.splitlines()}


def test_every_host_runs_the_services_of_its_role(default_lab, applied):
    for host in default_lab.hosts.values():
        for service in SERVICES[role(default_lab, host)]:
            state = host.run(["systemctl", "is-active", service], check=False).stdout.strip()
            assert state == "active", f"{host.name}: {service} is {state}"
        failed = host.run(["systemctl", "--failed", "--no-legend", "--plain"]).stdout.strip()
        assert not failed, f"{host.name}: failed units: {failed}"


def test_services_listen_where_promised_and_only_kongs_proxy_on_every_address(default_lab, applied):
    for host in default_lab.hosts.values():
        local = listeners(host)
        for promised in LISTENERS["*"] + LISTENERS[role(default_lab, host)]:
            assert promised.replace("ADDRESS", host.address) in local, (host.name, promised, sorted(local))
        allowed = PUBLIC_LISTENERS.get(role(default_lab, host), ()) + (
            SALT_MASTER_LISTENERS if host is default_lab.master else ())
        wildcard = sorted(address for address in local
                          if address.startswith(WILDCARD_LISTENERS) and address not in allowed)
        assert not wildcard, f"{host.name} listens on every address: {wildcard}"


def test_zookeeper_answers_from_another_host(default_lab, applied):
    answer = default_lab["slave0"].run(
        f"echo srvr | nc -q 2 {default_lab.master.address} 2181").stdout
    assert "Mode: standalone" in answer, answer


def test_etcd_is_healthy(default_lab, applied):
    health = default_lab.master.run(["curl", "-sf", "http://127.0.0.1:2379/health"]).stdout
    assert json.loads(health)["health"] == "true", health


def test_postgresql_accepts_kongs_user(default_lab, applied):
    password = default_lab.pillar()["kong"]["database"]["password"]
    answer = default_lab["kong"].run(
        ["env", f"PGPASSWORD={password}", "psql", "-X", "-tA", "-h", "127.0.0.1", "-U", "kong", "-d", "kong",
         "-c", "SELECT current_user"]).stdout.strip()
    assert answer == "kong"


def test_the_apis_answer_across_hosts(default_lab, applied):
    kong, master = default_lab["kong"], default_lab.master
    checks = [
        (master, f"http://{kong.address}:8001/status", 200),
        (master, f"http://{kong.address}:8000/", 404),  # Kong's proxy: no route matches yet
        (kong, f"http://{master.address}:5050/health", 200),
        (kong, f"http://{master.address}:8080/v2/apps", 200),
        (kong, f"http://{master.address}:8182/v2/status", 200),
        (kong, "http://slave0:5051/health", 200),
    ]
    for client, url, status in checks:
        code = client.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url], check=False).stdout
        assert code == str(status), f"{client.name} -> {url}: {code}"


def test_service_names_resolve_through_dnsmasq_on_every_host(default_lab, applied):
    servers = {host.address for host in default_lab.by_role("master")}
    for host in default_lab.hosts.values():
        assert host.run(["cat", "/etc/resolv.conf"]).stdout.count("nameserver 127.0.0.1") == 1
        # Through the system resolver (dnsmasq), Consul's DNS on the servers answering.
        consul = {line.split()[0] for line in
                  host.run(["getent", "ahostsv4", "consul.service.consul"]).stdout.splitlines()}
        assert consul == servers, (host.name, consul)
        kong = host.run(["dig", "+short", "kong.service.consul"]).stdout.split()
        assert kong == [default_lab["kong"].address], (host.name, kong)
        # Other names still reach the VPC resolver.
        assert host.run(["dig", "+short", "master"]).stdout.split() == [default_lab.master.address]


def test_names_still_resolve_after_dhcp_renews_the_lease(default_lab, applied):
    for host in default_lab.hosts.values():
        # What dhclient runs on a renewal: its script, offered the VPC's resolver.
        host.run(["env", "reason=RENEW", "interface=host0", f"new_ip_address={host.address}",
                  f"old_ip_address={host.address}", "new_subnet_mask=255.255.255.0",
                  f"new_routers={network.router(host.subnet)}", f"new_domain_name_servers={network.RESOLVER}",
                  f"new_domain_name={network.DOMAIN}", "/sbin/dhclient-script"])
        assert "nameserver 127.0.0.1" in host.run(["cat", "/etc/resolv.conf"]).stdout, host.name
        assert host.run(["dig", "+short", "kong.service.consul"]).stdout.split() == [default_lab["kong"].address]


def test_a_failing_state_names_its_host_state_and_message(default_lab, applied):
    missing = f"{mirror.URL}/no/such/file"
    by_host = salt_results.results(default_lab.salt(
        "slave2", "state.single", "file.managed", "/tmp/lab-missing", f"source={missing}",
        "skip_verify=True", check=False).stdout)
    failed = salt_results.failures(by_host)
    assert len(failed) == 1 and failed[0].startswith("slave2: /tmp/lab-missing (file.managed): ")
    assert missing in failed[0]


def test_a_second_apply_changes_nothing(default_lab, applied):
    second = default_lab.apply()
    assert not salt_results.failures(second), salt_results.failures(second)
    assert not salt_results.changed(second), "a second apply changed:\n" + "\n".join(salt_results.changed(second))
