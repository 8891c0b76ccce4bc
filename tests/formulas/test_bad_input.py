"""A node that cannot run the platform is refused before any state runs: its highstate is only
`platform.refused`, one failing state per problem whose name is one sentence naming the OS,
the pillar key (missing, unknown or of the wrong type) or the topology at fault (no traceback,
nothing else rendered)."""

import json

import pytest
import salt.utils.yaml

from tests.formulas.conftest import REPO_ROOT, TEST_SECRETS, Node, write_pillar

MASTERS = {"master": "10.0.12.10"}


def node_for(tmp_path, roles=("master",), masters=MASTERS, drop=None, extra=None, os_name="debian12"):
    pillar_dir = write_pillar(tmp_path / "pillar", masters, extra)
    if drop:
        formula, key = drop
        data = json.loads(json.dumps(TEST_SECRETS))
        data["cluster"] = {"masters": masters}
        data[formula].pop(key)
        (pillar_dir / "local.sls").write_text(json.dumps(data))
    address = "10.0.5.10" if "kong" in roles else "10.0.12.10"
    return Node(tmp_path / "root", "master", list(roles), address, os_name, pillar_dir)


def refusals(node):
    """The problems the highstate reports; asserts that nothing else would run."""
    highstate = node.highstate()
    assert {state["__sls__"] for state in highstate.values()} == {"platform.refused"}, sorted(highstate)
    messages = []
    for state in highstate.values():
        assert "fail_without_changes" in state["test"]
        messages.append(next(item["name"] for item in state["test"] if isinstance(item, dict)))
    return messages


@pytest.mark.parametrize(
    "os_name,reason",
    [
        ("centos7", "CentOS 7.9.2009, which the platform cannot run on: it is end of life since 2024-06-30 "
                    "and Kong 3.9 publishes no build for it; use Debian 12 (bookworm)."),
        ("el9", "Rocky 9.4, which the platform cannot run on: no build of Mesos exists for Enterprise Linux 9; "
                "use Debian 12 (bookworm)."),
    ],
)
def test_unsupported_os_is_refused_with_its_reason(tmp_path, os_name, reason):
    assert refusals(node_for(tmp_path, os_name=os_name)) == [f"master runs {reason}"]


@pytest.mark.parametrize(
    "roles,formula,key,named",
    [
        (["master"], "consul", "acl_token", "consul:acl_token"),
        (["slave"], "consul", "encrypt", "consul:encrypt"),
        (["slave"], "consul", "agent_token", "consul:agent_token"),
        (["kong"], "consul", "dns_token", "consul:dns_token"),
        (["kong"], "kong", "database", "kong:database:password"),
        (["slave"], "weave", "source_hash", "weave:source_hash"),
    ],
)
def test_missing_secret_is_named(tmp_path, roles, formula, key, named):
    (message,) = refusals(node_for(tmp_path, roles=roles, drop=(formula, key)))
    assert message.startswith(f"pillar key `{named}` is required on master: ")


def test_the_management_token_is_not_needed_off_the_servers(tmp_path):
    highstate = node_for(tmp_path, roles=["slave"], drop=("consul", "acl_token")).highstate()
    assert "Consul agent is configured" in highstate


def test_quorum_larger_than_the_masters(tmp_path):
    (message,) = refusals(node_for(tmp_path, extra={"cluster": {"quorum": 2}}))
    assert "`cluster:quorum` is 2 but there are 1 masters" in message


def test_unknown_role(tmp_path):
    (message,) = refusals(node_for(tmp_path, roles=["gateway"]))
    assert "unknown role `gateway`" in message


def test_master_missing_from_the_masters(tmp_path):
    (message,) = refusals(node_for(tmp_path, masters={"master9": "10.0.12.19"}))
    assert "master has the role master but is missing from the masters" in message


def test_every_problem_is_reported_at_once(tmp_path):
    node = node_for(tmp_path, os_name="centos7", drop=("consul", "encrypt"))
    messages = refusals(node)
    assert len(messages) == 2 and "CentOS" in messages[0] and "`consul:encrypt`" in messages[1]


@pytest.mark.parametrize("synced", [False, True], ids=["jinja", "platform_checks module"])
def test_a_formula_applied_alone_fails_naming_the_problem(tmp_path, synced):
    node = node_for(tmp_path, drop=("consul", "encrypt"))
    if synced:
        node.sync_modules()
    proc = node.salt_call("state.show_sls", "consul", check=False)
    assert proc.returncode != 0
    first_lines = {error.splitlines()[0] for error in json.loads(proc.stdout)["local"]}
    assert all("pillar key `consul:encrypt` is required on master" in line for line in first_lines), first_lines


CONSUL_KEYS = ("acl_policies, acl_token, agent_token, arch, check_interval, config, dns_token, encrypt, "
               "http_port, lookup, registrar_token, remove_data, services, source, source_hash, version")
KONG_KEYS = "admin_port, config, database, limit_nofile, lookup, repo, version"


@pytest.mark.parametrize(
    "extra,message",
    [
        ({"consul": {"verison": "1.21.5"}},
         f"pillar key `consul:verison` is unknown: `consul` takes {CONSUL_KEYS}."),
        ({"kong": {"databse": {"password": "x"}}},
         f"pillar key `kong:databse:password` is unknown: `kong` takes {KONG_KEYS}."),
        ({"kong": {"databse": {"password": "x", "user": "kong"}}},
         f"pillar keys `kong:databse:password`, `kong:databse:user` are unknown: `kong` takes {KONG_KEYS}."),
        ({"mesos": {"repo": {"key_fingerprnt": "0" * 40}}},
         "pillar key `mesos:repo:key_fingerprnt` is unknown: `mesos:repo` takes components, key_fingerprint, "
         "key_url, suite, url."),
        ({"consul": {"services": {"web": {"role": "master", "prot": 80}}}},
         "pillar key `consul:services:web:prot` is unknown: `consul:services:web` takes check, port, role, tags."),
        ({"kong": {"admin_port": "8001"}}, "pillar key `kong:admin_port` must be an integer, not a string."),
        ({"vulcand": {"image": {"tag": 0.9}}}, "pillar key `vulcand:image:tag` must be a string, not a number (quote it)."),
        ({"docker": {"users": "admin"}}, "pillar key `docker:users` must be a list, not a string."),
        ({"zookeeper": {"config": "tickTime=2000"}},
         "pillar key `zookeeper:config` must be a mapping, not a string."),
        ({"cluster": {"quorum": "two"}}, "pillar key `cluster:quorum` must be an integer, not a string."),
        ({"consul": {"acl_policies": {"ops": {"token": "agent_token", "rules": 1}}}},
         "pillar key `consul:acl_policies:ops:rules` must be a string, not an integer (quote it)."),
    ],
)
def test_unknown_or_mistyped_formula_key_is_named(tmp_path, extra, message):
    """Any node is refused (the pillar is the cluster's), whatever formula the key belongs to."""
    assert refusals(node_for(tmp_path, roles=["slave"], extra=extra)) == [message]


def test_a_mistyped_secret_is_named_without_its_value(tmp_path):
    (message,) = refusals(node_for(tmp_path, roles=["kong"], extra={"kong": {"database": {"password": 271828}}}))
    assert message == "pillar key `kong:database:password` must be a string, not an integer (quote it)."


def test_open_mappings_take_the_operators_keys(tmp_path):
    extra = {
        "kong": {"config": {"nginx_worker_processes": "auto", "mem_cache_size": "256m"}},
        "mesos": {"master": {"MESOS_ROLES": "ops", "MESOS_PORT": "5050"}},
        "consul": {"config": {"log_level": "warn", "telemetry": {"disable_hostname": True}},
                   "services": {"web": {"role": "master", "port": 10000, "check": {"tcp": True}}}},
        "cluster": {"quorum": 1},
        "base": {"sysctl": {"vm.max_map_count": 262144}},
    }
    highstate = node_for(tmp_path, extra=extra).highstate()
    assert "platform.refused" not in {state["__sls__"] for state in highstate.values()}
    assert '"MESOS_ROLES": "ops"' in json.dumps(highstate)


def test_a_formula_applied_alone_fails_naming_the_unknown_key(tmp_path):
    node = node_for(tmp_path, roles=["kong"], extra={"kong": {"databse": {"password": "x"}}})
    proc = node.salt_call("state.show_sls", "kong", check=False)
    assert proc.returncode != 0
    first_lines = {error.splitlines()[0] for error in json.loads(proc.stdout)["local"]}
    assert all("pillar key `kong:databse:password` is unknown" in line for line in first_lines), first_lines


def test_pillar_example_passes_the_check(tmp_path):
    """The formula sections of pillar.example, as an operator copies them, refuse no node."""
    example = salt.utils.yaml.safe_load((REPO_ROOT / "pillar.example").read_text())
    example["cluster"]["masters"] = MASTERS
    pillar_dir = tmp_path / "pillar"
    pillar_dir.mkdir()
    (pillar_dir / "local.sls").write_text(json.dumps(example))
    for roles in (["master"], ["slave"], ["kong"]):
        address = "10.0.5.10" if roles == ["kong"] else "10.0.12.10"
        node = Node(tmp_path / f"root-{roles[0]}", "master", roles, address, "debian12", pillar_dir)
        sls = {state["__sls__"] for state in node.highstate().values()}
        assert "platform.refused" not in sls and "consul.install" in sls, (roles, sorted(sls))
