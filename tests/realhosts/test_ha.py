"""The HA map's seven hosts (three masters): the highstate applied for real, the masters
forming one ZooKeeper ensemble with one leader, one etcd cluster and one set of Consul
servers. Its lab replaces the default map's (same namespace): this module's hosts are gone
before the default lab's modules start."""

import json
import os

import pytest

from lab import salt as salt_results
from tests.realhosts.conftest import start

# Seven more hosts and a second highstate: about as long again as the default map's tests.
# SHOWCASE_LAB_MAPS=default leaves them out of a quick run.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif("ha" not in os.environ.get("SHOWCASE_LAB_MAPS", "default,ha").split(","),
                       reason="SHOWCASE_LAB_MAPS leaves the HA map's real hosts out"),
]


@pytest.fixture(scope="module")
def ha_lab():
    lab = start("ha")
    yield lab
    lab.down()


@pytest.fixture(scope="module")
def ha_applied(ha_lab):
    first = ha_lab.apply()
    failed = salt_results.failures(first)
    assert not failed, "states failed on real hosts:\n" + "\n".join(failed)
    assert set(first) == set(ha_lab.hosts)
    return first


def test_the_masters_form_one_zookeeper_ensemble_with_one_leader(ha_lab, ha_applied):
    modes = []
    for master in ha_lab.by_role("master"):
        answer = ha_lab["slave0"].run(f"echo srvr | nc -q 2 {master.address} 2181").stdout
        modes += [line.split(":", 1)[1].strip() for line in answer.splitlines() if line.startswith("Mode:")]
    assert sorted(modes) == ["follower", "follower", "leader"], modes


def test_etcd_is_one_healthy_cluster_of_every_master(ha_lab, ha_applied):
    masters = ha_lab.by_role("master")
    for master in masters:
        assert json.loads(master.run(["curl", "-sf", "http://127.0.0.1:2379/health"]).stdout)["health"] == "true"
    # The membership as the members themselves publish it (the peer API).
    members = json.loads(masters[0].run(["curl", "-sf", f"http://{masters[0].address}:2380/members"]).stdout)
    assert sorted(member["name"] for member in members) == sorted(master.name for master in masters)


def test_every_host_finds_the_three_consul_servers(ha_lab, ha_applied):
    servers = sorted(master.address for master in ha_lab.by_role("master"))
    for host in ha_lab.hosts.values():
        assert sorted(host.run(["dig", "+short", "consul.service.consul"]).stdout.split()) == servers, host.name


def test_a_second_apply_changes_nothing(ha_lab, ha_applied):
    second = ha_lab.apply()
    assert not salt_results.failures(second), salt_results.failures(second)
    assert not salt_results.changed(second), "a second apply changed:\n" + "\n".join(salt_results.changed(second))
