"""validationutil: every input the registrations and the gateway read, checked whole, with
messages that name the key path."""

import pytest
import salt.utils.yaml
from salt.exceptions import SaltInvocationError

import validationutil as check

RULES = check.PlatformRules(check.PortRange(10000, 11000))
INSTANCE = {"address": "10.0.12.223", "port": 53769}


@pytest.mark.parametrize(
    "services, message",
    [
        # Exact types: a string is never taken for a boolean or a number.
        ({"web": {"absent": "false", "port": 10000}},
         "services:web:absent: expected a boolean (true or false), not the string 'false'"),
        ({"web": {"port": 10000, "gateway": "no"}},
         "services:web:gateway: expected a boolean (true or false), not the string 'no'"),
        ({"web": {"port": "10000"}},
         "services:web:port: expected an integer from 1 to 65535, not the string '10000'"),
        ({"web": {"port": True}}, "services:web:port: expected an integer from 1 to 65535, "
                                  "not True"),
        ({"web": {"port": 10000, "instances": {"w1": {"address": "10.0.0.1", "port": "80"}}}},
         "services:web:instances:w1:port: expected an integer from 1 to 65535, not the string "
         "'80'"),
        # Wrong container types.
        (["web"], "services: expected a mapping, not ['web']"),
        ({"web": [10000]}, "services:web: expected a mapping, not [10000]"),
        ({"web": {"port": 10000, "instances": ["w1"]}},
         "services:web:instances: expected a mapping, not ['w1']"),
        ({"web": {"port": 10000, "instances": {"w1": "10.0.0.1:80"}}},
         "services:web:instances:w1: expected a mapping, not the string '10.0.0.1:80'"),
        # Unknown keys, at every level, with the allowed ones.
        ({"web": {"port": 10000, "prot": 1}}, "services:web: unknown key(s) prot (allowed: "
                                              "absent, gateway, instances, marathon_app, port)"),
        ({"web": {"port": 10000, "instances": {"w1": {**INSTANCE, "weight": 2}}}},
         "services:web:instances:w1: unknown key(s) weight (allowed: address, port)"),
        ({"web": {"absent": True, "gateway": "yes"}},
         "services:web:gateway: expected a boolean (true or false), not the string 'yes'"),
        # Required keys.
        ({"web": {}}, "services:web:port: is required"),
        ({"web": {"port": 10000, "instances": {"w1": {"port": 80}}}},
         "services:web:instances:w1:address: is required"),
        # Names, ids and addresses that can exist.
        ({"Web": {"port": 10000}}, "services:Web: expected a DNS label"),
        ({"web": {"port": 10000, "instances": {"w/1": INSTANCE}}},
         "services:web:instances:w/1: expected letters, digits, '.', '_' and '-'"),
        ({"web": {"port": 10000, "instances": {7: INSTANCE}}},
         "services:web:instances:7: expected letters, digits, '.', '_' and '-' (at most 254), "
         "not 7"),
        ({"web": {"port": 10000, "instances": {"w1": {"address": "10.0.0.256", "port": 80}}}},
         "services:web:instances:w1:address: expected an IP address or a host name, "
         "not '10.0.0.256'"),
        ({"web": {"port": 10000, "instances": {"w1": {"address": "web_1.local", "port": 80}}}},
         "services:web:instances:w1:address: expected an IP address or a host name"),
        ({"web": {"port": 10000, "instances": {"w1": {"address": "::", "port": 80}}}},
         "services:web:instances:w1:address: '::' is not a routable address"),
        ({"web": {"port": 10000, "marathon_app": ""}},
         "services:web:marathon_app: expected a Marathon app id such as /web"),
        # The platform's rules.
        ({"web": {"port": 8080}}, "services:web:port: 8080 is outside the platform's listener "
                                  "ports 10000-11000 (platform:listener_ports)"),
        ({"web": {"port": 2379}}, "services:web:port: 2379 is outside the platform's listener "
                                  "ports 10000-11000"),
        ({"kong": {"port": 10000}}, "services:kong: 'kong' is reserved for the platform's own "
                                    "services (reserved: consul, dnsmasq, docker, etcd, kong, "
                                    "marathon, mesos, postgresql, salt, vulcand, weave, "
                                    "zookeeper)"),
        ({"consul": {"port": 10000}}, "services:consul: 'consul' is reserved"),
    ],
)
def test_pillar_services_are_refused_with_the_key_path(services, message):
    with pytest.raises(SaltInvocationError) as err:
        check.pillar_services(services, RULES)
    assert str(err.value).startswith(message)


def test_pillar_services_are_normalised():
    assert check.pillar_services({
        "web": {"port": 10000, "instances": {"w1": INSTANCE, "w2": {"address": "fd00::1",
                                                                   "port": 81}}},
        "api": {"port": 11000, "gateway": False, "marathon_app": "/api", "absent": False},
        "old": {"absent": True, "port": 80},
        "etcd": {"absent": True},
    }, RULES) == {
        "web": {"port": 10000, "gateway": True,
                "instances": {"w1": ("10.0.12.223", 53769), "w2": ("fd00::1", 81)}},
        "api": {"port": 11000, "gateway": False, "instances": {}, "marathon_app": "/api"},
        "old": {"absent": True},
        "etcd": {"absent": True},
    }
    assert check.pillar_services(None, RULES) == {}


@pytest.mark.parametrize(
    "gateway, message",
    [
        ({"auth": "none"}, "gateway:auth: expected one of 'basic-auth', 'key-auth', False, "
                           "not the string 'none'"),
        ({"auth": "false"}, "gateway:auth: expected one of 'basic-auth', 'key-auth', False, "
                            "not the string 'false'"),
        ({}, "gateway:consumers: is empty: the Mesos and Marathon UIs would be open to anyone"),
        ({"consumers": {"ops": {"key": "k"}}},
         "gateway:consumers:ops: unknown key(s) key (allowed: password)"),
        ({"consumers": {"ops": {}}}, "gateway:consumers:ops:password: is required"),
        ({"consumers": {"ops": {"password": 1234}}},
         "gateway:consumers:ops:password: expected a non-empty string, not 1234"),
        ({"auth": "key-auth", "consumers": {"ops": {"password": "p"}}},
         "gateway:consumers:ops: unknown key(s) password (allowed: key)"),
        ({"consumers": ["ops"]}, "gateway:consumers: expected a mapping, not ['ops']"),
        ({"auth": False, "uis": {"mesos": "5050"}},
         "gateway:uis:mesos: expected an integer from 1 to 65535, not the string '5050'"),
        ({"auth": False, "ui": {}}, "gateway: unknown key(s) ui (allowed: auth, consumers, uis)"),
        ("basic-auth", "gateway: expected a mapping, not the string 'basic-auth'"),
    ],
)
def test_the_gateway_pillar_is_refused_with_the_key_path(gateway, message):
    with pytest.raises(SaltInvocationError) as err:
        check.pillar_gateway(gateway)
    assert str(err.value).startswith(message)


def test_the_gateway_pillar_gets_its_defaults():
    assert check.pillar_gateway({"consumers": {"ops": {"password": "p"}}}) == {
        "auth": "basic-auth", "consumers": {"ops": {"password": "p"}},
        "uis": {"mesos": 5050, "marathon": 8080}}
    assert check.pillar_gateway({"auth": False})["consumers"] == {}


@pytest.mark.parametrize(
    "value, expected",
    [("10000-11000", check.PortRange(10000, 11000)), (10500, check.PortRange(10500, 10500))],
)
def test_listener_ports_read_as_in_the_security_group_rules(value, expected):
    assert check.PortRange.parse(value) == expected


@pytest.mark.parametrize("value", ["11000-10000", "0-10", "10000-70000", "10000", True, None])
def test_a_wrong_listener_range_is_refused(value):
    with pytest.raises(SaltInvocationError, match="^platform:listener_ports: expected a port "
                                                  "range such as 10000-11000"):
        check.PortRange.parse(value)


def test_every_platform_service_is_a_reserved_name(repo_root):
    """The consul formula registers the platform's daemons as Consul services, and the gateway
    publishes the UIs: none of these names may be taken by a registration."""
    consul = salt.utils.yaml.safe_load(
        (repo_root / "salt" / "consul" / "parameters" / "defaults.yaml").read_text())
    assert set(consul["services"]) | {"consul"} | set(check.GATEWAY_UIS) <= check.RESERVED_NAMES
