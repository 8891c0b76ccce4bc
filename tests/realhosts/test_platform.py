"""The highstate applied for real from the salt-master to the default map's hosts, checked as an
operator checks a cluster. Debian's archive installs for real; what this machine cannot fetch
runs as the lab's stand-ins (see REAL and STAND_INS in conftest.py; the test output names them).
Then the seed's request across the hosts, orch.cluster, and last the tests that disturb the
cluster: a pillar change and a host reboot."""

import json

import pytest

from lab import image, mirror, network
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


# --- the seed's flow across hosts, then the tests that disturb the cluster (last) ----------------

# The example web app (simulators/webapp.py) on every slave, a port outside the platform's
# listener range (pillar platform:listener_ports), as a task would hold.
WEB_PORT = 20080
WEB_APP = "/usr/local/lib/showcase-lab/webapp.py"
WEB_UNIT = "web-instance"
PROXY_PORT = 8000


def request(client, url, headers=(), user=None):
    """(status, JSON body or text, response headers) of a GET made with curl on ``client``."""
    argv = ["curl", "-s", "-D", "/dev/stderr", "-w", "\n%{http_code}", url]
    argv += [argument for header in headers for argument in ("-H", header)]
    argv += ["-u", user] if user else []
    done = client.run(argv, check=False)
    body, _, status = done.stdout.rpartition("\n")
    head = dict(line.split(": ", 1) for line in done.stderr.splitlines()[1:] if ": " in line)
    try:
        body = json.loads(body)
    except ValueError:
        pass
    return int(status or 0), body, {name.lower(): value.strip() for name, value in head.items()}


@pytest.fixture(scope="module")
def web_instances(default_lab, applied):
    """One instance of `web` per slave, a transient systemd unit bound to the slave's address;
    their pillar entries {instance id: {address, port}}."""
    code = (image.REPO_ROOT / "simulators" / "webapp.py").read_text()
    instances = {}
    for slave in default_lab.by_role("slave"):
        slave.write(WEB_APP, code)
        slave.run(["systemd-run", f"--unit={WEB_UNIT}", "python3", WEB_APP, "--name", slave.name,
                   "--address", slave.address, "--port", str(WEB_PORT)])
        instances[slave.name] = {"address": slave.address, "port": WEB_PORT}
    return instances


def web_pillar(instances):
    """What `salt kong state.apply services pillar='{"service": "web"}'` reads, the service
    given with the command (the lab's pillar has none)."""
    return "pillar=" + json.dumps({"service": "web", "services": {"web": {"port": 10000, "instances": instances}}})


def test_the_seeds_flow_crosses_kong_vulcand_and_the_slaves(default_lab, web_instances):
    registered = default_lab.apply("kong", ["services"], [web_pillar(web_instances)])
    assert not salt_results.failures(registered), salt_results.failures(registered)
    assert salt_results.changed(registered) == ["kong: Microservices from pillar are registered"]
    kong, client = default_lab["kong"], default_lab["slave0"]
    answers = [request(client, f"http://{kong.address}:{PROXY_PORT}/seed", ["Host: web.service.consul"])
               for _ in range(2 * len(web_instances))]
    for status, body, headers in answers:
        assert status == 200 and body["path"] == "/seed", body
        assert headers["via"].startswith("1.1 kong/"), headers  # through Kong's proxy...
        # ... then vulcand on master, which sends the server's own address as Host (the
        # frontend does not pass Kong's on): the instance on a slave answers.
        instance = web_instances[body["instance"]]
        assert body["host"] == f"{instance['address']}:{instance['port']}", body
    assert {body["instance"] for _, body, _ in answers} == set(web_instances)


def test_registering_web_again_changes_nothing(default_lab, web_instances):
    predicted = default_lab.apply("kong", ["services"], [web_pillar(web_instances), "test=True"])
    assert not salt_results.failures(predicted) and not salt_results.changed(predicted), predicted
    assert [state["result"] for state in predicted["kong"].values()] == [True]
    again = default_lab.apply("kong", ["services"], [web_pillar(web_instances)])
    assert not salt_results.failures(again) and not salt_results.changed(again), again


def orchestrate(lab):
    """``salt-run state.orchestrate orch.cluster`` on the salt-master: its steps by id."""
    done = lab.master.run(["salt-run", "--out=json", "state.orchestrate", "orch.cluster"], check=False)
    steps = next(iter(json.loads(done.stdout)["data"].values()))
    failed = [f"{step['__id__']}: {step['comment']}" for step in steps.values() if step["result"] is not True]
    assert done.returncode == 0 and not failed, "orch.cluster failed:\n" + "\n".join(failed) + done.stderr[-2000:]
    return {step["__id__"]: step for step in steps.values()}


def test_orchestrating_the_cluster_succeeds_and_again_changes_nothing(default_lab):
    first = orchestrate(default_lab)
    # The highstates change nothing on a built cluster; the gateway's registrations are new.
    highstates = ["Cluster masters are built", "Cluster agents are built", "Cluster gateway node is built"]
    assert {name: first[name]["changes"] for name in highstates} == dict.fromkeys(highstates, {}), first
    assert first["Cluster gateway registrations are applied"]["changes"]["ret"]["kong"]
    # The Marathon UI behind Kong, for the gateway's consumer only (from another host).
    kong, client = default_lab["kong"], default_lab["slave0"]
    url, host = f"http://{kong.address}:{PROXY_PORT}/v2/apps", "Host: marathon.service.consul"
    consumer = next(iter(default_lab.pillar()["gateway"]["consumers"].items()))
    assert request(client, url, [host])[0] == 401
    status, info, _ = request(client, url, [host], user=f"{consumer[0]}:{consumer[1]['password']}")
    assert status == 200 and isinstance(info["apps"], list), info

    second = orchestrate(default_lab)
    # mine.update is a function call: it reports what each host returned, not a change.
    assert set(second.pop("Cluster mine holds every node's addresses")["changes"]["ret"]) == set(default_lab.hosts)
    changed = {name: step["changes"] for name, step in second.items() if step["changes"]}
    assert not changed, f"a second orch.cluster changed: {changed}"


def unit_runs(host, services):
    """{service: (InvocationID, ActiveEnterTimestamp)}: both change when systemd restarts it."""
    shown = host.run(["systemctl", "show", "--property=Id,InvocationID,ActiveEnterTimestamp", *services]).stdout
    runs = {}
    for block in shown.strip().split("\n\n"):
        properties = dict(line.split("=", 1) for line in block.splitlines())
        runs[properties["Id"].removesuffix(".service")] = (properties["InvocationID"],
                                                            properties["ActiveEnterTimestamp"])
    return runs


def test_a_pillar_change_restarts_exactly_the_service_whose_config_changed(default_lab, applied):
    host = default_lab["slave1"]
    services = SERVICES[role(default_lab, host)]
    original = default_lab.pillar()
    config = ["grep", "-x", "cache-size=.*", "/etc/dnsmasq.d/10-platform.conf"]
    cache_size = host.run(config).stdout.strip()
    try:
        for pillar, expected in (({**original, "dnsmasq": {"cache_size": 2000}}, "cache-size=2000"),
                                 (original, cache_size)):  # then restored
            before = unit_runs(host, services)
            default_lab.write_pillar(pillar)
            results = default_lab.apply(host.name)
            assert host.run(config).stdout.strip() == expected
            assert not salt_results.failures(results), salt_results.failures(results)
            assert salt_results.changed(results) == [f"{host.name}: dnsmasq forwards the consul domain",
                                                     f"{host.name}: dnsmasq is running"], salt_results.changed(results)
            after = unit_runs(host, services)
            restarted = sorted(service for service in services if after[service] != before[service])
            assert restarted == ["dnsmasq"], (before, after)
    finally:
        default_lab.write_pillar(original)


def test_a_restarted_host_comes_back_with_every_service_of_its_role(default_lab, applied):
    host = default_lab["slave2"]
    systemd = host.leader()
    host.restart()
    assert host.leader() != systemd  # a new systemd booted the host
    assert host.run(["systemctl", "show", "--value", "--property=SystemState"]).stdout.strip() == "running"
    default_lab.wait_minions()  # its minion reconnects to the salt-master
    for service in SERVICES[role(default_lab, host)]:
        assert host.run(["systemctl", "is-active", service], check=False).stdout.strip() == "active", service
    assert host.run(["dig", "+short", "kong.service.consul"]).stdout.split() == [default_lab["kong"].address]
    status, _, _ = request(default_lab["kong"], f"http://{host.address}:5051/health")
    assert status == 200
    again = default_lab.apply(host.name)
    assert not salt_results.failures(again) and not salt_results.changed(again), salt_results.changed(again)
