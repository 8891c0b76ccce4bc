"""The lab's hosts are what the deploy makes on AWS: addresses, roles, minion configuration,
the salt-master on the private master host, packages through the relay; the machine's own
network untouched."""

import json
import subprocess

import pytest

from lab import network, system

pytestmark = pytest.mark.slow


def test_hosts_have_their_vpc_addresses_and_names(default_lab):
    expected = {"kong": "10.0.5.10", "master": "10.0.12.10", "slave0": "10.0.12.11",
                "slave1": "10.0.12.12", "slave2": "10.0.12.13"}
    for name, address in expected.items():
        host = default_lab[name]
        shown = host.run(["ip", "-4", "-o", "addr", "show", "host0"]).stdout
        assert f"inet {address}/24" in shown, (name, shown)
        assert host.run(["hostname"]).stdout.strip() == name
        # The VPC resolver answers the other hosts' names.
        assert host.run(["getent", "hosts", "kong"]).stdout.split()[0] == "10.0.5.10"


def test_minions_have_the_role_grains_and_talk_to_the_private_salt_master(default_lab):
    assert default_lab.salt_master == "master"
    roles = json.loads(default_lab.salt("*", "grains.get", "roles").stdout)
    assert roles == {"kong": ["kong"], "master": ["master"], "slave0": ["slave"],
                     "slave1": ["slave"], "slave2": ["slave"]}
    masters = json.loads(default_lab.salt("*", "config.get", "master").stdout)
    assert set(masters.values()) == {"10.0.12.10"}


def test_salt_master_serves_this_checkout_as_the_file_map_lays_it_out(default_lab, repo_root):
    listed = json.loads(default_lab.salt("kong", "cp.list_master").stdout)["kong"]
    assert "top.sls" in listed and "consul/init.sls" in listed
    served = default_lab.master.run(["cat", "/srv/showcase/salt/top.sls"]).stdout
    assert served == (repo_root / "salt" / "top.sls").read_text()


def test_packages_install_from_the_debian_archive_through_the_relay(default_lab):
    host = default_lab["slave2"]
    host.run(["apt-get", "update", "-qq"])
    policy = host.run(["apt-cache", "policy", "etcd-server"]).stdout
    assert "Candidate: 3.4" in policy, policy


def test_the_private_addresses_exist_only_in_the_lab_namespace(default_lab):
    machine = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=True).stdout
    assert "10.0." not in machine and network.LINK_LOCAL_RESOLVER not in machine
    inside = subprocess.run(system.in_netns(["ip", "-4", "-o", "addr"]), capture_output=True,
                            text=True, check=True).stdout
    assert f"{network.RESOLVER}/32" in inside
