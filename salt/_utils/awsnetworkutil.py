"""
The cluster network's inputs checked before anything is created: pillar ``aws`` as a whole
(for ``orch.network``) and the security group rules every ``aws_network.security_group_present``
receives. Pure: no AWS call, nothing written.

Every problem names its key path (``aws:security_groups:kong_sg:rules:1:port``); all of them
are reported at once, in one :class:`InvalidNetwork` error. Exact types: a string where a
string is expected (an AMI owner written as a number is refused), a boolean where a boolean is;
unknown keys are refused with the list of the allowed ones, at every level.

Import it directly (``import awsnetworkutil``); the loader puts ``salt/_utils`` on ``sys.path``.
"""

import ipaddress
import os
import re

import awsutil
from salt.exceptions import SaltInvocationError

PRIVATE_EGRESS = ("nat_gateway", "nat_instance", "seed", "none")
# What a rule source may name besides a CIDR or a security group of the plan.
SOURCE_ALIASES = ("admin", "private", "public", "self", "world")
WORLD = "0.0.0.0/0"
# tcp and udp rules need ports; icmp and every protocol ("-1") cover all of theirs.
PORT_PROTOCOLS = ("tcp", "udp")
ALL_PORT_PROTOCOLS = ("icmp", "-1")
RULE_KEYS = ("ports", "protocol", "protocols", "sources")
# AWS limits a VPC's and a subnet's IPv4 block to /16 ... /28.
PREFIX_LENGTHS = range(16, 29)
# The group orch.network adds itself for the NAT instance.
NAT_GROUP = "nat_sg"

_REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d+$")
_ZONE = re.compile(r"^[a-z0-9-]+[a-z]$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
_AMI_OWNER = re.compile(r"^(\d{12}|amazon|aws-marketplace|self)$")
_PORTS = re.compile(r"^(\d+)(?:-(\d+))?$")


class InvalidNetwork(SaltInvocationError):
    """The network's input is invalid; ``problems`` lists each as ``key path: what``."""

    def __init__(self, what, problems):
        self.problems = list(problems)
        super().__init__(f"Invalid {what} (nothing was written): " + "; ".join(self.problems))


# A required key that is absent: reported once, as "required", not again by its checker.
_MISSING = object()


class _Problems(list):
    def add(self, path, message):
        self.append(f"{path}: {message}")


def _type_name(value):
    return type(value).__name__


def _mapping(value, path, problems, required, optional=()):
    """``value`` as a dict with exactly the ``required`` keys and some of ``optional``."""
    if value is _MISSING:
        return None
    if not isinstance(value, dict):
        problems.add(path, f"expected a mapping, got {_type_name(value)} {value!r}")
        return None
    allowed = sorted({*required, *optional})
    for key in sorted(set(value) - set(allowed), key=str):
        problems.add(f"{path}:{key}", f"unknown key (allowed: {', '.join(allowed)})")
    for key in required:
        if key not in value:
            problems.add(f"{path}:{key}", "required")
    return value


def _string(value, path, problems, pattern=None, what=None, empty=False):
    if value is _MISSING:
        return None
    if not isinstance(value, str):
        problems.add(path, f"expected a string, got {_type_name(value)} {value!r}")
        return None
    if not value and empty:
        return value
    if not value or (pattern is not None and not pattern.match(value)):
        problems.add(path, f"{value!r} is not {what or 'a valid value'}")
        return None
    return value


def _boolean(value, path, problems):
    if not isinstance(value, bool):
        problems.add(path, f"expected true or false, got {_type_name(value)} {value!r}")
        return False
    return value


def _cidr(value, path, problems, prefixes=None):
    """An IPv4 network written ``a.b.c.d/n`` with no host bits set, or ``None``."""
    if _string(value, path, problems) is None:
        return None
    try:
        network = ipaddress.IPv4Network(value, strict=False)
    except ValueError:
        problems.add(path, f"{value!r} is not an IPv4 CIDR such as 10.0.0.0/16")
        return None
    if "/" not in value:
        problems.add(path, f"{value!r} has no prefix length (write {network})")
        return None
    if str(network) != value:
        problems.add(path, f"{value!r} has host bits set (the network is {network})")
        return None
    if prefixes is not None and network.prefixlen not in prefixes:
        problems.add(
            path, f"{value}: AWS allows /{prefixes[0]} to /{prefixes[-1]} here"
        )
        return None
    return network


def _named(value, path, problems):
    return _string(value, path, problems, _NAME, "a name (letters, digits, '.', '_', '-')")


def public_key_problem(public_key_path):
    """Why ``public_key_path`` (``~`` expanded) holds no OpenSSH public key; ``None`` if it does."""
    path = os.path.expanduser(public_key_path)
    try:
        with open(path, encoding="utf-8") as handle:
            key = handle.read().strip()
    except (OSError, UnicodeDecodeError) as err:
        return f"cannot read the public key file {path}: {err}"
    if not key.startswith(("ssh-", "ecdsa-")):
        return f"{path} does not hold an OpenSSH public key"
    return None


def port_range(ports):
    """``22`` / ``"22"`` / ``"10000-11000"`` -> ``(low, high)``; ``None`` for anything else."""
    if isinstance(ports, int) and not isinstance(ports, bool):
        return ports, ports
    match = _PORTS.match(ports) if isinstance(ports, str) else None
    if match is None:
        return None
    low, high = match.groups()
    return int(low), int(high or low)


def _ports(value, path, problems):
    """``value`` checked and written ``"low-high"``, the form the states receive."""
    found = port_range(value)
    if found is None:
        problems.add(path, f"expected a port or a range such as 10000-11000, got {value!r}")
        return None
    low, high = found
    if not 0 <= low <= high <= 65535:
        problems.add(path, f"{value!r} is not a range of ports from 0 to 65535, low to high")
        return None
    return f"{low}-{high}"


def _protocols(rule, path, problems):
    if "protocol" in rule and "protocols" in rule:
        problems.add(path, "protocol and protocols are exclusive")
        return []
    if "protocols" in rule:
        listed = rule["protocols"]
        if not isinstance(listed, list) or not listed:
            problems.add(f"{path}:protocols", f"expected a non-empty list, got {listed!r}")
            return []
        where = [f"{path}:protocols:{index}" for index in range(len(listed))]
    else:
        listed, where = [rule.get("protocol", "tcp")], [f"{path}:protocol"]
    protocols = []
    for protocol, protocol_path in zip(listed, where):
        if protocol not in PORT_PROTOCOLS + ALL_PORT_PROTOCOLS or isinstance(protocol, bool):
            problems.add(
                protocol_path,
                f"{protocol!r} is not one of {', '.join(PORT_PROTOCOLS + ALL_PORT_PROTOCOLS)} "
                "('-1': every protocol)",
            )
        elif protocol not in protocols:
            protocols.append(protocol)
    return protocols


def rules(value, path="rules", resolve_source=None):
    """
    Security group ingress rules, checked and normalised to
    ``[{"protocols": [...], "ports": "low-high", "sources": [...]}]`` (no ``ports`` for
    icmp and ``-1``), which this function accepts again unchanged.

    A rule is ``{ports, protocol | protocols, sources}``; ``protocol`` defaults to tcp;
    ``ports`` is required for tcp and udp and refused for icmp and ``-1`` (which cover all
    ports): a rule never opens every port by accident. ``resolve_source(source, path,
    problems)`` returns a source's list of CIDRs / group names (``None`` when invalid);
    without one, a source is a CIDR, ``self`` or a group name. Raises :class:`InvalidNetwork`.
    """
    problems = _Problems()
    normalised = _rules(value, path, problems, resolve_source or _plain_source)
    if problems:
        raise InvalidNetwork("security group rules", problems)
    return normalised


def _plain_source(source, path, problems):
    if _string(source, path, problems) is None:
        return None
    if "/" in source:
        return [str(network)] if (network := _cidr(source, path, problems)) else None
    return [source] if _named(source, path, problems) else None


def _rules(value, path, problems, resolve_source):
    if value is _MISSING:
        return []
    if not isinstance(value, list):
        problems.add(path, f"expected a list of rules, got {_type_name(value)} {value!r}")
        return []
    normalised = []
    for index, rule in enumerate(value):
        rule_path = f"{path}:{index}"
        if _mapping(rule, rule_path, problems, ("sources",), RULE_KEYS) is None:
            continue
        protocols = _protocols(rule, rule_path, problems)
        checked = {"protocols": protocols}
        if "ports" in rule:
            checked["ports"] = _ports(rule["ports"], f"{rule_path}:ports", problems)
            without_ports = [p for p in protocols if p in ALL_PORT_PROTOCOLS]
            if without_ports:
                problems.add(
                    f"{rule_path}:ports",
                    f"protocol {without_ports[0]!r} covers every port: drop ports",
                )
        elif any(protocol in PORT_PROTOCOLS for protocol in protocols) and set(rule) <= set(
            RULE_KEYS
        ):  # with an unknown key, that key (a mistyped "port") is the one message
            problems.add(
                f"{rule_path}:ports",
                "required for tcp and udp (to open every protocol and port, say "
                "protocol: '-1' explicitly)",
            )
        sources = rule.get("sources", _MISSING)
        resolved = []
        if not isinstance(sources, list) or not sources:
            if sources is not _MISSING:
                problems.add(f"{rule_path}:sources", f"expected a non-empty list, got {sources!r}")
        else:
            for source_index, source in enumerate(sources):
                found = resolve_source(source, f"{rule_path}:sources:{source_index}", problems)
                resolved.extend(item for item in found or () if item not in resolved)
        normalised.append({**checked, "sources": resolved})
    return normalised


def _group_order(groups, path, problems):
    """The group names, each after the groups its rules name (their ids are needed)."""
    order, visiting = [], []

    def visit(name):
        if name in order:
            return
        if name in visiting:
            cycle = " -> ".join(visiting[visiting.index(name):] + [name])
            problems.add(path, f"security groups refer to each other in a cycle: {cycle}")
            return
        visiting.append(name)
        for dependency in groups[name]["requires"]:
            visit(dependency)
        visiting.pop()
        order.append(name)

    for name in sorted(groups):
        visit(name)
    return order


def _security_groups(value, path, problems, source_cidrs, private_egress):
    if value is _MISSING:
        return []
    if not isinstance(value, dict) or not value:
        problems.add(path, f"expected a mapping of security groups, got {value!r}")
        return []
    names = set(value)

    def resolve(source, source_path, problems):
        if _string(source, source_path, problems) is None:
            return None
        if source in source_cidrs:
            return source_cidrs[source]
        if source == "self" or source in names:
            return [source]
        if "/" in source:
            return [str(network)] if (network := _cidr(source, source_path, problems)) else None
        problems.add(
            source_path,
            f"{source!r} is neither a CIDR, a group of {path} nor one of "
            f"{', '.join(SOURCE_ALIASES)}",
        )
        return None

    groups = {}
    for name, group in value.items():
        group_path = f"{path}:{name}"
        if _named(name, group_path, problems) is None:
            continue
        if name in SOURCE_ALIASES or name.startswith("sg-") or (
            name == NAT_GROUP and private_egress == "nat_instance"
        ):
            problems.add(group_path, f"{name!r} is a reserved name")
            continue
        if _mapping(group, group_path, problems, ("description", "rules")) is None:
            continue
        description = _string(
            group.get("description", _MISSING), f"{group_path}:description", problems,
            what="a description",
        )
        checked = _rules(group.get("rules", _MISSING), f"{group_path}:rules", problems, resolve)
        # A rule left with no source named only admin, while admin_cidr is empty.
        group_rules = [rule for rule in checked if rule["sources"]]
        requires = sorted(
            {source for rule in group_rules for source in rule["sources"] if source in names}
            - {name}
        )
        groups[name] = {
            "name": name,
            "description": description,
            "rules": group_rules,
            "requires": requires,
        }
    return [groups[name] for name in _group_order(groups, path, problems)]


def _subnets(value, vpc, problems):
    subnets = {}
    if _mapping(value, "aws:subnets", problems, ("private", "public")) is None:
        return subnets
    for role in ("private", "public"):
        path = f"aws:subnets:{role}"
        subnet = value.get(role)
        if role not in value or _mapping(subnet, path, problems, ("cidr", "name")) is None:
            continue
        _named(subnet.get("name", _MISSING), f"{path}:name", problems)
        network = _cidr(subnet.get("cidr", _MISSING), f"{path}:cidr", problems, PREFIX_LENGTHS)
        if network is None:
            continue
        if vpc is not None and not network.subnet_of(vpc):
            problems.add(f"{path}:cidr", f"{network} is outside the VPC {vpc} (aws:vpc:cidr)")
        for other, other_network in subnets.items():
            if network.overlaps(other_network):
                problems.add(
                    f"{path}:cidr", f"{network} overlaps aws:subnets:{other}:cidr {other_network}"
                )
        subnets[role] = network
    return subnets


def _admin_cidrs(aws, problems):
    """``[admin_cidr]``, or ``[]`` while it is empty; ``/0`` only with the opt-in."""
    anywhere = _boolean(
        aws.get("allow_admin_from_anywhere", False), "aws:allow_admin_from_anywhere", problems
    )
    text = aws.get("admin_cidr", _MISSING)
    if text == "":
        return []
    network = _cidr(text, "aws:admin_cidr", problems)
    if network is None:
        return []
    if network.prefixlen == 0 and not anywhere:
        problems.add(
            "aws:admin_cidr",
            f"{network} opens SSH and the Kong admin API to the whole internet; give your "
            "own address (x.x.x.x/32), or set aws:allow_admin_from_anywhere: true",
        )
        return []
    return [str(network)]


def _tags(value, problems):
    if not isinstance(value, dict):
        problems.add("aws:tags", f"expected a mapping, got {_type_name(value)} {value!r}")
        return {}
    for key, tag in value.items():
        path = f"aws:tags:{key}"
        if not isinstance(key, str) or not 0 < len(key) <= 128 or key.startswith("aws:"):
            problems.add(path, "a tag key is a string of 1 to 128 characters, not aws:...")
        elif key in ("Name", awsutil.CLUSTER_TAG):
            # Lookups and teardown find resources by these two.
            problems.add(path, "set by the network itself")
        if not isinstance(tag, str) or len(tag) > 256:
            problems.add(path, f"expected a string of at most 256 characters, got {tag!r}")
    return value


def network(aws, check_key_file=True):
    """
    Pillar ``aws`` checked as a whole and returned with ``tags`` and
    ``allow_admin_from_anywhere`` defaulted and the security groups resolved: ``groups``, a
    list of ``{name, description, rules, requires}`` in creation order (rules normalised as
    by :func:`rules`, sources as CIDRs, group names or ``self``; rules whose only source is an
    empty ``admin`` are left out). ``check_key_file``: the key pair's public key must be
    readable here (where ``orch.network`` runs). Raises :class:`InvalidNetwork`.
    """
    problems = _Problems()
    required = (
        "admin_cidr", "cluster", "key_pair", "kong_eip", "nat", "private_egress", "profile",
        "region", "security_groups", "subnets", "vpc", "zone",
    )
    if _mapping(aws, "aws", problems, required, ("allow_admin_from_anywhere", "tags")) is None:
        raise InvalidNetwork("pillar aws", problems)

    def at(path):
        """The value at the key path ``aws:a:b``; _MISSING where a mapping lacks the key."""
        value = aws
        for key in path.split(":")[1:]:
            value = value.get(key, _MISSING) if isinstance(value, dict) else _MISSING
        return value

    def text(path, pattern=None, what=None, **options):
        return _string(at(path), path, problems, pattern, what, **options)

    def name(path):
        return _named(at(path), path, problems)

    def section(path, keys):
        return _mapping(at(path), path, problems, keys) is not None

    text("aws:profile", _NAME, "a profile name", empty=True)
    region = text("aws:region", _REGION, "a region such as eu-west-1")
    zone = text("aws:zone", _ZONE, "an availability zone such as eu-west-1a")
    if region and zone and not zone.startswith(region):
        problems.add("aws:zone", f"{zone} is not a zone of aws:region {region}")
    name("aws:cluster")
    name("aws:kong_eip")
    tags = _tags(aws.get("tags", {}), problems)
    admin = _admin_cidrs(aws, problems)

    if section("aws:key_pair", ("name", "public_key_path")):
        name("aws:key_pair:name")
        path = text("aws:key_pair:public_key_path")
        if path and check_key_file and (problem := public_key_problem(path)):
            problems.add("aws:key_pair:public_key_path", problem)

    vpc_network = None
    if section("aws:vpc", ("cidr", "name")):
        name("aws:vpc:name")
        vpc_network = _cidr(at("aws:vpc:cidr"), "aws:vpc:cidr", problems, PREFIX_LENGTHS)
    subnets = _subnets(at("aws:subnets"), vpc_network, problems)

    egress = at("aws:private_egress")
    if egress is not _MISSING and egress not in PRIVATE_EGRESS:
        problems.add("aws:private_egress", f"{egress!r} is not one of {', '.join(PRIVATE_EGRESS)}")
    if section("aws:nat", ("image", "instance_type", "name")):
        name("aws:nat:name")
        text("aws:nat:instance_type", _INSTANCE_TYPE, "an instance type such as t3.nano")
        if section("aws:nat:image", ("name", "owner")):
            text("aws:nat:image:owner", _AMI_OWNER,
                 "an AWS account id (12 digits, quoted) or amazon, aws-marketplace, self")
            text("aws:nat:image:name", what="an AMI name pattern")

    source_cidrs = {
        "world": [WORLD],
        "admin": admin,
        # An invalid subnet is reported once, under its own key, not again by each rule.
        **{role: [str(subnets[role])] if role in subnets else [] for role in ("private", "public")},
    }
    groups = _security_groups(
        at("aws:security_groups"), "aws:security_groups", problems, source_cidrs, egress
    )
    if problems:
        raise InvalidNetwork("pillar aws", problems)
    return {
        **aws,
        "tags": tags,
        "allow_admin_from_anywhere": aws.get("allow_admin_from_anywhere", False),
        "groups": groups,
    }
