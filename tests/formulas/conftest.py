"""Render the platform's formulas for every node of the cloud maps, without live hosts.

Each node is rendered with ``salt-call --local`` and a minion config of its own: the node's
minion id, the roles grain from the map, Debian 12 grains (the platform's OS; CentOS 7 and
Rocky 9 for the refusals), and a private address. Topology and secrets come from a test pillar root (``local.sls``), exactly as an
operator supplies them; the Salt mine is not needed because ``cluster:masters`` is set.
"""

import concurrent.futures
import ipaddress
import json
import pathlib
import subprocess
import sys

import pytest
import salt.config
import salt.utils.templates
import salt.utils.yaml

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
SALT_CALL = pathlib.Path(sys.executable).with_name("salt-call")
MAPS = ("default", "ha")
MAPS_ROOT = REPO_ROOT

OS_GRAINS = {
    "debian12": {"os_family": "Debian", "os": "Debian", "osrelease": "12", "osmajorrelease": 12,
                 "oscodename": "bookworm"},
    "centos7": {"os_family": "RedHat", "os": "CentOS", "osrelease": "7.9.2009", "osmajorrelease": 7},
    "el9": {"os_family": "RedHat", "os": "Rocky", "osrelease": "9.4", "osmajorrelease": 9},
}
# The OS every map is rendered for; the others are refused (test_bad_input).
PLATFORM_OS = ("debian12",)

# Secrets the operator must supply; test values only.
TEST_SECRETS = {
    "consul": {
        "encrypt": "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s=",
        "acl_token": "3f6c1a52-4a53-4bd3-a0f5-7d2b8c1e9a10",
        "dns_token": "8d2e4f10-6b7a-4c3d-9e8f-0a1b2c3d4e5f",
        "agent_token": "1c9b7e22-3d4f-4a5b-8c6d-7e8f9a0b1c2d",
        "registrar_token": "6e5d4c3b-2a19-4876-9543-210fedcba987",
    },
    "kong": {"database": {"password": "kong-test-password"}},
    "weave": {"source_hash": "sha256=" + "b" * 64},
}


def load_map(name):
    """Nodes of cloud.maps.d/<name>.map as {node: roles}, roles from the node or its profile."""
    path = MAPS_ROOT / "cloud.maps.d" / f"{name}.map"
    if not path.exists():
        pytest.skip(f"{path.name} is not written yet (cloud maps belong to the AWS work)")
    profiles = {}
    for conf in sorted((MAPS_ROOT / "cloud.profiles.d").glob("*.conf")):
        profiles.update(salt.utils.yaml.safe_load(conf.read_text()) or {})
    # salt-cloud renders maps with Jinja (they may read `opts`) before parsing the YAML.
    text = salt.utils.templates.render_jinja_tmpl(
        path.read_text(), {"opts": salt.config.DEFAULT_MINION_OPTS.copy(), "saltenv": "base"}
    )
    nodes = {}
    for profile, entries in salt.utils.yaml.safe_load(text).items():
        profile_roles = (profiles.get(profile) or {}).get("grains", {}).get("roles")
        for entry in entries:
            node, settings = next(iter(entry.items())) if isinstance(entry, dict) else (entry, {})
            roles = (settings or {}).get("grains", {}).get("roles") or profile_roles
            assert roles, f"{name}.map: node {node} has no roles grain (node or profile {profile})"
            nodes[node] = roles if isinstance(roles, list) else [roles]
    return nodes


def addresses_for(nodes):
    """Private addresses as the VPC would hand them out: kong public, the rest private."""
    public = ipaddress.ip_network("10.0.5.0/24").hosts()
    private = ipaddress.ip_network("10.0.12.0/24").hosts()
    for _ in range(9):
        next(public), next(private)
    return {
        node: str(next(public) if "kong" in roles else next(private))
        for node, roles in sorted(nodes.items())
    }


class Node:
    """One rendered node: its config dir, and salt-call against it."""

    def __init__(self, root, node, roles, address, os_name, pillar_dir):
        self.name, self.roles, self.address, self.os_name = node, roles, address, os_name
        self.pillar_dir = pillar_dir
        self.config_dir = root / "conf"
        self.config_dir.mkdir(parents=True)
        config = {
            "id": node,
            "root_dir": str(root),
            "file_client": "local",
            "file_roots": {"base": [str(REPO_ROOT / "salt")]},
            "pillar_roots": {"base": [str(REPO_ROOT / "pillar"), str(pillar_dir)]},
            "grains": dict(OS_GRAINS[os_name], roles=roles, ipv4=["127.0.0.1", address]),
        }
        (self.config_dir / "minion").write_text(salt.utils.yaml.safe_dump(config))

    def salt_call(self, *args, check=True):
        proc = subprocess.run(
            [str(SALT_CALL), "-c", str(self.config_dir), "--local", "--out=json", *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check:
            assert proc.returncode == 0, f"salt-call {args[0]} on {self.name}: {proc.stdout}{proc.stderr}"
        return proc

    def highstate(self):
        return json.loads(self.salt_call("state.show_highstate").stdout)["local"]

    def sync_modules(self):
        """The custom execution modules synced, as a highstate syncs them before its SLS files
        render (renders before that take the formulas' jinja path alone)."""
        synced = json.loads(self.salt_call("saltutil.sync_modules").stdout)["local"]
        assert "modules.platform_checks" in synced, synced


def write_pillar(directory, masters, extra=None):
    data = salt.utils.yaml.safe_load(salt.utils.yaml.safe_dump(TEST_SECRETS))
    data["cluster"] = {"masters": masters}
    for key, value in (extra or {}).items():
        data.setdefault(key, {}).update(value)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "local.sls").write_text(salt.utils.yaml.safe_dump(data))
    return directory


@pytest.fixture(scope="session")
def cluster_nodes(tmp_path_factory):
    """{(map, os, node): Node} for every node of both maps on the platform's OS."""
    nodes = {}
    for map_name in MAPS:
        roles_by_node = load_map(map_name)
        addresses = addresses_for(roles_by_node)
        masters = {n: addresses[n] for n, roles in roles_by_node.items() if "master" in roles}
        pillar_dir = write_pillar(tmp_path_factory.mktemp(f"pillar-{map_name}"), masters)
        for os_name in PLATFORM_OS:
            for node, roles in roles_by_node.items():
                root = tmp_path_factory.mktemp(f"{map_name}-{os_name}-{node}")
                nodes[(map_name, os_name, node)] = Node(
                    root, node, roles, addresses[node], os_name, pillar_dir
                )
    return nodes


@pytest.fixture(scope="session")
def rendered(cluster_nodes):
    """{(map, os, node): highstate} rendered in parallel (each salt-call is a process)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        futures = {key: pool.submit(node.highstate) for key, node in cluster_nodes.items()}
        return {key: future.result() for key, future in futures.items()}


def state_args(highstate, state_id):
    """The arguments of a rendered state as one dict (module and function dropped)."""
    args = {}
    for module, body in highstate[state_id].items():
        if module.startswith("__"):
            continue
        for item in body:
            if isinstance(item, dict):
                args.update(item)
    return args
