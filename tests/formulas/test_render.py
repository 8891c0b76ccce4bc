"""Every node of both cloud maps renders on Debian 12, and carries what its role runs from the
sources the platform pins."""

import json

import pytest

from tests.formulas.conftest import TEST_SECRETS, Node, state_args, write_pillar

FORMULAS_BY_ROLE = {
    "master": {"docker", "weave", "zookeeper", "mesos.master", "marathon", "etcd", "vulcand"},
    "slave": {"docker", "weave", "mesos.agent"},
    "kong": {"postgresql", "kong"},
}
EVERY_NODE = {"base", "dnsmasq", "consul"}
# Shared by the formulas with vendor apt repositories (the signing-key checker).
APT_KEY_USERS = {"kong", "mesos.master", "mesos.agent"}


def formulas_of(highstate):
    """Top-level formula names ("mesos.master", "consul") of the rendered states."""
    names = set()
    for state in highstate.values():
        sls = state["__sls__"].rsplit(".", 1)[0]
        names.add(sls if sls.startswith("mesos.") or sls == "mesos" else sls.split(".")[0])
    return names - {"mesos"}




@pytest.fixture(scope="module")
def by_role(rendered, cluster_nodes):
    """[(node, highstate)] per role."""
    grouped = {}
    for key, highstate in rendered.items():
        node = cluster_nodes[key]
        for role in node.roles:
            grouped.setdefault(role, []).append((node, key, highstate))
    return grouped


def test_every_node_runs_its_roles_formulas(rendered, cluster_nodes):
    for key, highstate in rendered.items():
        expected = set(EVERY_NODE)
        for role in cluster_nodes[key].roles:
            expected |= FORMULAS_BY_ROLE[role]
        if expected & APT_KEY_USERS:
            expected.add("platform")
        assert formulas_of(highstate) == expected, key


@pytest.mark.parametrize("role", ["master", "slave", "kong"])
def test_the_checks_module_renders_the_same_highstate(role, rendered, cluster_nodes, tmp_path):
    """With the custom modules synced (a highstate's SLS files), map.jinja takes the checks from
    platform_checks, rendered once a run: the highstate is the one the jinja path renders, and
    the module returns the topology every formula reads."""
    key = next(key for key, node in sorted(cluster_nodes.items()) if key[0] == "default" and role in node.roles)
    node = cluster_nodes[key]
    synced = Node(tmp_path / "root", node.name, node.roles, node.address, node.os_name, node.pillar_dir)
    synced.sync_modules()
    assert synced.highstate() == rendered[key]
    checks = json.loads(synced.salt_call("platform_checks.checks").stdout)["local"]
    assert checks["problems"] == []
    assert checks["topology"]["address"] == node.address and checks["topology"]["roles"] == node.roles
    assert [master["id"] for master in checks["topology"]["masters"]] == sorted(
        other.name for other_key, other in cluster_nodes.items() if other_key[0] == "default" and "master" in other.roles)


def test_consul_servers_expect_every_master(by_role, cluster_nodes):
    for node, key, highstate in by_role["master"]:
        masters = sorted(n.address for k, n in cluster_nodes.items() if k[:2] == key[:2] and "master" in n.roles)
        config = state_args(highstate, "Consul agent is configured")["dataset"]
        assert config["server"] is True
        assert config["bootstrap_expect"] == len(masters)
        assert sorted(config["retry_join"]) == masters
        assert config["acl"]["enabled"] is True and config["acl"]["default_policy"] == "deny"
        assert config["acl"]["tokens"]["initial_management"]
        assert_agent_tokens(config)
        for policy_name, token_key in (("dns-read", "dns_token"), ("agent", "agent_token"),
                                       ("registrar", "registrar_token")):
            policy = state_args(highstate, f"Consul policy {policy_name} is present")
            token = state_args(highstate, f"Consul token {token_key} is present")
            assert (token["secret_id"], token["policies"]) == (TEST_SECRETS["consul"][token_key], [policy_name])
            assert token["url"] == policy["url"] == "http://127.0.0.1:8500"
            assert token["token"] == policy["token"] == TEST_SECRETS["consul"]["acl_token"]
            assert policy["require"] == [{"service": "Consul is running"}]
            assert token["require"] == [{"consul_acl": f"Consul policy {policy_name} is present"}]
        dns_rules = state_args(highstate, "Consul policy dns-read is present")["rules"]
        assert 'service_prefix "" { policy = "read" }' in dns_rules and "write" not in dns_rules
        assert config["encrypt"]
        assert config["client_addr"] == f"127.0.0.1 {node.address}"
        assert config["enable_script_checks"] is False
        services = {
            state_args(highstate, sid)["dataset"]["service"]["name"]: state_args(highstate, sid)
            for sid in highstate
            if sid.startswith("Consul service ")
        }
        assert set(services) == {"mesos", "marathon", "zookeeper", "vulcand", "etcd"}
        etcd_check = services["etcd"]["dataset"]["service"]["checks"][0]
        assert etcd_check["http"] == f"http://{node.address}:2379/health"
        mesos_check = services["mesos"]["dataset"]["service"]["checks"][0]
        assert mesos_check["http"] == f"http://{node.address}:5050/health"
        assert services["zookeeper"]["dataset"]["service"]["checks"][0]["tcp"] == f"{node.address}:2181"


def assert_agent_tokens(config):
    """Under default-deny ACLs: DNS answers with the read-only token (without one, Consul DNS
    and dnsmasq's forward answer nothing), the agent and the services of its config dir with the
    agent token (not anonymously, which would keep them out of the catalog)."""
    tokens, secrets = config["acl"]["tokens"], TEST_SECRETS["consul"]
    assert tokens["dns"] == secrets["dns_token"]
    assert tokens["agent"] == tokens["config_file_service_registration"] == secrets["agent_token"]


def test_consul_agents_join_the_masters(by_role):
    for node, key, highstate in by_role["slave"] + by_role["kong"]:
        config = state_args(highstate, "Consul agent is configured")["dataset"]
        assert config["server"] is False
        assert "bootstrap_expect" not in config
        assert "initial_management" not in config["acl"]["tokens"]
        assert_agent_tokens(config)
        assert not [sid for sid in highstate if sid.startswith(("Consul policy", "Consul token"))]
        assert config["retry_join"] and node.address not in config["retry_join"]
        assert config["leave_on_terminate"] is True


def test_kong_registers_itself_in_consul(by_role):
    for node, key, highstate in by_role["kong"]:
        service = state_args(highstate, "Consul service kong is defined")["dataset"]["service"]
        assert service["port"] == 8001 and service["address"] == node.address
        assert service["checks"][0]["http"] == f"http://{node.address}:8001/status"


def test_quorum_and_ensemble_follow_the_number_of_masters(by_role, cluster_nodes):
    for node, key, highstate in by_role["master"]:
        masters = [n for k, n in cluster_nodes.items() if k[:2] == key[:2] and "master" in n.roles]
        mesos = state_args(highstate, "Mesos master is configured")["context"]["environment"]
        assert mesos["MESOS_QUORUM"] == len(masters) // 2 + 1
        assert mesos["MESOS_ZK"].count(":2181") == len(masters)
        zoo_cfg = state_args(highstate, "ZooKeeper is configured")["context"]["config"]
        servers = {k: v for k, v in zoo_cfg.items() if k.startswith("server.")}
        assert sorted(servers) == [f"server.{i}" for i in range(1, len(masters) + 1)]
        assert f"{node.address}:2888:3888" in servers.values()
        myid = state_args(highstate, "ZooKeeper knows its id")["contents"]
        assert servers[f"server.{myid}"] == f"{node.address}:2888:3888"
        etcd = state_args(highstate, "etcd is configured")["dataset"]
        assert len(etcd["initial-cluster"].split(",")) == len(masters)
        assert etcd["name"] == node.name


def test_mesos_agent_runs_containers_through_weave(by_role):
    for node, key, highstate in by_role["slave"]:
        agent = state_args(highstate, "Mesos agent is configured")["context"]["environment"]
        assert agent["MESOS_RESOURCES"] == "ports(*):[50000-60000]"
        assert agent["MESOS_CONTAINERIZERS"] == "docker,mesos"
        assert agent["MESOS_DOCKER_SOCKET"] == "/var/run/weave/weave.sock"
        assert agent["MESOS_EXECUTOR_REGISTRATION_TIMEOUT"] == "10mins"
        assert agent["MESOS_IP"] == agent["MESOS_ADVERTISE_IP"] == node.address
        assert agent["MESOS_MASTER"].startswith("zk://") and agent["MESOS_MASTER"].endswith("/mesos")
        # Debian 12 mounts cgroup v2 only.
        assert agent["MESOS_LAUNCHER"] == "linux"
        assert agent["MESOS_ISOLATION"].split(",")[:2] == ["cgroups/cpu", "cgroups/mem"]
        assert agent["MESOS_SYSTEMD_ENABLE_SUPPORT"] == "false"
        peers = state_args(highstate, "Weave peers are configured")["context"]["environment"]
        assert peers["PEERS"] and node.address not in peers["PEERS"]


def test_dnsmasq_forwards_the_consul_domain(rendered, cluster_nodes):
    for key, highstate in rendered.items():
        context = state_args(highstate, "dnsmasq forwards the consul domain")["context"]
        assert (context["consul_domain"], context["consul_dns"]) == ("consul", "127.0.0.1#8600")
        hook = state_args(highstate, "dnsmasq stays the resolver across DHCP renewals")
        assert hook["name"].startswith("/etc/dhcp/dhclient-enter-hooks.d/")
        assert "make_resolv_conf() { :; }" in hook["contents"]
        resolver = state_args(highstate, "dnsmasq is the host resolver")
        assert resolver["name"] == "/etc/resolv.conf" and "nameserver 127.0.0.1" in resolver["contents"]
        # Pointed at dnsmasq only once it answers, so later downloads still resolve.
        assert {"service": "dnsmasq is running"} in resolver["require"]


def test_docker_resolves_through_the_host(by_role):
    for node, key, highstate in by_role["slave"]:
        daemon = state_args(highstate, "Docker daemon is configured")["dataset"]
        assert daemon == {"dns": [node.address], "dns-search": ["service.consul"]}


def test_only_kongs_proxy_listens_on_every_interface(rendered):
    for key, highstate in rendered.items():
        wildcard = [
            sid
            for sid in highstate
            if "0.0.0.0" in str(state_args(highstate, sid))
        ]
        assert wildcard == (["Kong is configured"] if "Kong is configured" in highstate else []), key


def test_kong_admin_api_is_private(by_role):
    for node, key, highstate in by_role["kong"]:
        config = state_args(highstate, "Kong is configured")["context"]["config"]
        assert config["admin_listen"] == f"{node.address}:8001"
        assert config["proxy_listen"].startswith("0.0.0.0:8000")
        assert config["database"] == "postgres" and config["pg_host"] == "127.0.0.1"


def test_downloads_are_pinned_with_a_hash(rendered):
    for key, highstate in rendered.items():
        for sid in highstate:
            args = state_args(highstate, sid)
            if str(args.get("source", "")).startswith("http"):
                assert args.get("source_hash"), (key, sid)


def test_management_token_stays_on_the_servers(rendered, cluster_nodes):
    secret = TEST_SECRETS["consul"]["acl_token"]
    for key, highstate in rendered.items():
        if "master" in cluster_nodes[key].roles:
            continue
        assert secret not in json.dumps(highstate), key


def test_marathon_and_vulcand_options_follow_the_topology(by_role, cluster_nodes):
    for node, key, highstate in by_role["master"]:
        masters = [n for k, n in cluster_nodes.items() if k[:2] == key[:2] and "master" in n.roles]
        zk_hosts = ",".join(f"{m.address}:2181" for m in sorted(masters, key=lambda m: m.name))
        marathon = state_args(highstate, "Marathon options are configured")["context"]["environment"]
        options = marathon["MARATHON_OPTIONS"].split()
        flags = dict(zip(options[::2], options[1::2]))
        assert flags["--master"] == f"zk://{zk_hosts}/mesos" and flags["--zk"] == f"zk://{zk_hosts}/marathon"
        assert flags["--hostname"] == flags["--http_address"] == node.address
        assert flags["--http_port"] == "8080"
        vulcand = state_args(highstate, "vulcand options are configured")["context"]["environment"]
        options = set(vulcand["VULCAND_OPTIONS"].split())
        assert {f"-apiInterface={node.address}", f"-interface={node.address}", "-etcd=http://127.0.0.1:2379",
                "-etcdApiVer=3", "-etcdKey=/vulcand", "-apiPort=8182"} <= options
