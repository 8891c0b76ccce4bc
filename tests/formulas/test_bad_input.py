"""A node that cannot run the platform is refused before any state runs: its highstate is only
`platform.refused`, one failing state per problem whose name is one sentence naming the OS,
the pillar key or the topology at fault (no traceback, nothing else rendered)."""

import json

import pytest

from tests.formulas.conftest import TEST_SECRETS, Node, write_pillar

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


def test_a_formula_applied_alone_fails_naming_the_problem(tmp_path):
    node = node_for(tmp_path, drop=("consul", "encrypt"))
    proc = node.salt_call("state.show_sls", "consul", check=False)
    assert proc.returncode != 0
    first_lines = {error.splitlines()[0] for error in json.loads(proc.stdout)["local"]}
    assert all("pillar key `consul:encrypt` is required on master" in line for line in first_lines), first_lines
