"""
Input validation for everything the registrations and the gateway read: pillar ``services`` and
``gateway``, Marathon labels, ``microservice.*`` arguments.

Every check takes the value and its key path (``services:web:instances:w1:port``) and raises
:class:`Invalid` (a :class:`~salt.exceptions.SaltInvocationError`) with a message that starts
with that path. Types are exact: a boolean is ``true``/``false``, never the string ``"false"``;
a port is an integer, never ``"80"``. Mappings refuse unknown keys, naming the allowed ones.
Front doors validate the whole input before they write anything.

The platform's own rules (:class:`PlatformRules`): service names are DNS labels and never one of
:data:`RESERVED_NAMES`; service ports (the vulcand listeners, which the security groups open to
Kong) lie in the listener range, pillar ``platform:listener_ports``. Ports and names that other
services hold anywhere in the cluster are refused by the registration core, against Consul's
catalog.
"""

import functools
import ipaddress
import re
from dataclasses import dataclass

from salt.exceptions import SaltInvocationError

# The platform's own services: what its hosts resolve as <name>.<domain> to reach Consul,
# vulcand, Kong's admin API, Mesos, Marathon, ZooKeeper, etcd, and the gateway's UIs
# (mesos, marathon). A service of that name would add itself to what they resolve.
RESERVED_NAMES = frozenset({
    "consul", "dnsmasq", "docker", "etcd", "kong", "marathon", "mesos", "postgresql", "salt",
    "vulcand", "weave", "zookeeper",
})

_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_HOST_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
# Instance ids become vulcand server ids (etcd key segments): no "/" and nothing exotic.
_IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,253}$")
_PORT_RANGE = re.compile(r"^(?P<first>\d{1,5})-(?P<last>\d{1,5})$")


class Invalid(SaltInvocationError):
    """Input refused: the message starts with the key path of the offending value."""

    def __init__(self, path, problem):
        super().__init__(f"{path}: {problem}" if path else problem)


def child(path, key):
    """The key path of ``key`` inside ``path``."""
    return f"{path}:{key}" if path else str(key)


def _shown(value):
    if isinstance(value, str):
        return f"the string {value!r}"
    return repr(value)


def boolean(value, path):
    if not isinstance(value, bool):
        raise Invalid(path, f"expected a boolean (true or false), not {_shown(value)}")
    return value


def string(value, path):
    if not isinstance(value, str) or not value:
        raise Invalid(path, f"expected a non-empty string, not {_shown(value)}")
    return value


def integer(value, path, minimum, maximum):
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        raise Invalid(path, f"expected an integer from {minimum} to {maximum}, not {_shown(value)}")
    return value


def port(value, path):
    return integer(value, path, 1, 65535)


def _matching(pattern, expected):
    """A check that ``value`` is a string matching ``pattern`` (``expected`` says what)."""
    def check(value, path):
        if not isinstance(value, str) or not pattern.match(value):
            raise Invalid(path, f"expected {expected}, not {_shown(value)}")
        return value
    return check


dns_label = _matching(_DNS_LABEL, "a DNS label (a-z, 0-9, '-', at most 63 characters)")
# An id that may become a key segment (vulcand server ids, Kong consumer names).
identifier = _matching(_IDENTIFIER, "letters, digits, '.', '_' and '-' (at most 254)")


def domain(value, path):
    if not (isinstance(value, str) and len(value) <= 253
            and all(_DNS_LABEL.match(label) for label in value.split("."))):
        raise Invalid(path, f"expected dot-separated DNS labels, not {_shown(value)}")
    return value


@functools.lru_cache(maxsize=4096)  # a resync checks every task's address: agents' repeat
def _ip_address(text):
    return ipaddress.ip_address(text)


def address(value, path):
    """An IP address (not unspecified) or a host name that can exist."""
    string(value, path)
    try:
        ip = _ip_address(value)
    except ValueError:
        labels = value[:-1].split(".") if value.endswith(".") else value.split(".")
        if (len(value) > 253 or not all(_HOST_LABEL.match(label) for label in labels)
                or labels[-1].isdigit()):
            raise Invalid(path, f"expected an IP address or a host name, not {value!r}") from None
        return value
    if ip.is_unspecified:
        raise Invalid(path, f"{value!r} is not a routable address")
    return value


def _a_mapping(value, path):
    """``value`` if it is a mapping (``None``, as YAML reads an empty key, is an empty one)."""
    value = {} if value is None else value
    if not isinstance(value, dict):
        raise Invalid(path, f"expected a mapping, not {_shown(value)}")
    return value


def mapping(value, path, checks, required=()):
    """``value`` as a dict whose keys are those of ``checks`` (``{key: check(value, path)}``),
    each checked; ``required`` keys must be present. ``None`` reads as an empty mapping."""
    value = _a_mapping(value, path)
    unknown = sorted(map(str, set(value) - set(checks)))
    if unknown:
        raise Invalid(path, f"unknown key(s) {', '.join(unknown)} "
                            f"(allowed: {', '.join(sorted(checks))})")
    missing = [key for key in required if key not in value]
    if missing:
        raise Invalid(child(path, missing[0]), "is required")
    return {key: checks[key](item, child(path, key)) for key, item in value.items()}


def mapping_of(value, path, check_key, check_value):
    """``value`` as a dict of any keys passing ``check_key(key, path)``, each value checked."""
    value = _a_mapping(value, path)
    return {check_key(key, child(path, key)): check_value(item, child(path, key))
            for key, item in value.items()}


def one_of(*choices):
    def check(value, path):
        if not any(value is choice or (type(value) is type(choice) and value == choice)
                   for choice in choices):
            raise Invalid(path, f"expected one of {', '.join(map(repr, choices))}, "
                                f"not {_shown(value)}")
        return value
    return check


# -- the platform's rules ---------------------------------------------------------------------


@dataclass(frozen=True)
class PortRange:
    first: int
    last: int

    @classmethod
    def parse(cls, value, path="platform:listener_ports"):
        """``10000-11000`` (the notation of the security-group rules) or a single port."""
        if isinstance(value, int) and not isinstance(value, bool):
            return cls(port(value, path), value)
        match = _PORT_RANGE.match(value) if isinstance(value, str) else None
        if not match or not 1 <= int(match["first"]) <= int(match["last"]) <= 65535:
            raise Invalid(path, f"expected a port range such as 10000-11000, not {_shown(value)}")
        return cls(int(match["first"]), int(match["last"]))

    @property
    def ports(self):
        return range(self.first, self.last + 1)

    def __contains__(self, number):
        return number in self.ports

    def __str__(self):
        return f"{self.first}-{self.last}"


@dataclass(frozen=True)
class PlatformRules:
    """What a service may be on this platform: its name and its port."""

    listener_ports: PortRange

    def service_name(self, value, path):
        dns_label(value, path)
        if value in RESERVED_NAMES:
            raise Invalid(path, f"{value!r} is reserved for the platform's own services "
                                f"(reserved: {', '.join(sorted(RESERVED_NAMES))})")
        return value

    def service_port(self, value, path):
        port(value, path)
        if value not in self.listener_ports:
            raise Invalid(path, f"{value} is outside the platform's listener ports "
                                f"{self.listener_ports} (platform:listener_ports)")
        return value


# -- pillar services --------------------------------------------------------------------------


def _instance(value, path):
    checked = mapping(value, path, {"address": address, "port": port},
                      required=("address", "port"))
    return checked["address"], checked["port"]


def _marathon_app(value, path):
    if not isinstance(value, str) or not value.strip("/"):
        raise Invalid(path, f"expected a Marathon app id such as /web, not {_shown(value)}")
    return value


def pillar_services(services, rules, path="services"):
    """The pillar ``services`` mapping, checked whole: ``{name: entry}`` where an entry is
    ``{"absent": True}`` or has ``port``, ``instances`` ({id: (address, port)}), ``gateway``
    and optionally ``marathon_app``. A reserved name may only be ``absent`` (which removes
    nothing but what this cluster registered)."""
    checks = {
        "port": rules.service_port,
        "instances": lambda value, item_path: mapping_of(value, item_path, identifier,
                                                         _instance),
        "marathon_app": _marathon_app,
        "gateway": boolean,
        "absent": boolean,
    }

    def entry(name, value, entry_path):
        if isinstance(value, dict) and value.get("absent") is True:
            mapping(value, entry_path, {**checks, "port": port})
            return {"absent": True}
        rules.service_name(name, entry_path)
        checked = mapping(value, entry_path, checks, required=("port",))
        checked.pop("absent", None)
        return {"instances": {}, "gateway": True, **checked}

    services = _a_mapping(services, path)
    return {dns_label(name, child(path, name)): entry(name, value, child(path, name))
            for name, value in services.items()}


# -- pillar gateway ---------------------------------------------------------------------------

GATEWAY_AUTH = {"basic-auth": "password", "key-auth": "key"}
GATEWAY_UIS = {"mesos": 5050, "marathon": 8080}


def pillar_gateway(gateway, path="gateway"):
    """The pillar ``gateway`` mapping, checked, with its defaults: ``auth`` (basic-auth,
    key-auth or false), ``consumers`` ({name: {password} or {key}}, required unless auth is
    false) and ``uis`` ({name: port}, default Mesos 5050 and Marathon 8080)."""
    auth = _a_mapping(gateway, path).get("auth", "basic-auth")
    one_of("basic-auth", "key-auth", False)(auth, child(path, "auth"))
    secret = GATEWAY_AUTH.get(auth)

    def consumer(value, consumer_path):
        if secret is None:  # no authentication: the consumers are not used
            return mapping(value, consumer_path, dict.fromkeys(GATEWAY_AUTH.values(), string))
        return mapping(value, consumer_path, {secret: string}, required=(secret,))

    checked = mapping(gateway, path, {
        "auth": lambda value, _: value,
        "consumers": lambda value, consumers_path: mapping_of(value, consumers_path,
                                                              identifier, consumer),
        "uis": lambda value, uis_path: mapping_of(value, uis_path, dns_label, port),
    })
    checked["auth"] = auth
    checked.setdefault("consumers", {})
    checked.setdefault("uis", dict(GATEWAY_UIS))
    if auth and not checked["consumers"]:
        raise Invalid(child(path, "consumers"),
                      "is empty: the Mesos and Marathon UIs would be open to anyone. Add "
                      "consumers with credentials, or set gateway:auth: false explicitly.")
    return checked
