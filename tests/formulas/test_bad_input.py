"""A pillar that misses a secret or contradicts itself fails the render, naming the key."""

import json

import pytest

from tests.formulas.conftest import TEST_SECRETS, Node, write_pillar

MASTERS = {"master": "10.0.12.10"}


def render_error(tmp_path, roles=("master",), masters=MASTERS, drop=None, extra=None):
    pillar_dir = write_pillar(tmp_path / "pillar", masters, extra)
    if drop:
        formula, key = drop
        local = pillar_dir / "local.sls"
        data = json.loads(json.dumps(TEST_SECRETS))
        data["cluster"] = {"masters": masters}
        data[formula].pop(key)
        local.write_text(json.dumps(data))
    node = Node(tmp_path / "root", "master", list(roles), "10.0.12.10", "el9", pillar_dir)
    proc = node.salt_call("state.show_highstate", check=False)
    assert proc.returncode != 0
    return json.loads(proc.stdout)["local"][0].splitlines()[0]


@pytest.mark.parametrize(
    "formula,key,named",
    [
        ("consul", "acl_token", "consul:acl_token"),
        ("consul", "encrypt", "consul:encrypt"),
        ("kong", "database", "kong:database:password"),
        ("vulcand", "source_hash", "vulcand:source_hash"),
    ],
)
def test_missing_secret_is_named(tmp_path, formula, key, named):
    roles = ["kong"] if formula == "kong" else ["master"]
    assert f"`{named}` is required" in render_error(tmp_path, roles=roles, drop=(formula, key))


def test_quorum_larger_than_the_masters(tmp_path):
    message = render_error(tmp_path, extra={"cluster": {"quorum": 2}})
    assert "`cluster:quorum` is 2 but there are 1 masters" in message


def test_unknown_role(tmp_path):
    assert "unknown role `gateway`" in render_error(tmp_path, roles=["gateway"])


def test_master_missing_from_the_masters(tmp_path):
    message = render_error(tmp_path, masters={"master9": "10.0.12.19"})
    assert "master has the role master but is missing from the masters" in message
