"""Every component of both maps comes from its pinned source on Debian 12, verified the way the
README's install-sources table says, and every source is one pillar key an operator can point
at a mirror."""

import fnmatch
import json
import shutil
import subprocess

import pytest

from tests.formulas.conftest import Node, state_args, write_pillar

KEYRINGS = "/etc/apt/keyrings"
AVENTER_FINGERPRINT = "BA227EBC312D2E43498A533963F8CEE149ACA59E"
KONG_KEY_ID = "B9DCD032B1696A89"
AVENTER_KEY_URL = "https://www.aventer.biz/assets/support_aventer.asc"
KONG_KEY_URL = f"https://packages.konghq.com/public/gateway-39/gpg.{KONG_KEY_ID}.key"

# Debian archive packages: (role, state id, package, version pattern or None for unpinned).
ARCHIVE_PACKAGES = [
    ("master", "ZooKeeper is installed", "zookeeper", "3.8.0-11+deb12u*"),
    ("master", "etcd is installed", "etcd-server", "3.4.23-*"),
    ("slave", "Docker is installed", "docker.io", "20.10.24+dfsg1-1+deb12u*"),
    ("kong", "PostgreSQL is installed", "postgresql-15", None),
    ("kong", "dnsmasq is installed", "dnsmasq", "2.90-4~deb12u*"),
]


def nodes_with(rendered, cluster_nodes, role):
    found = [(key, highstate) for key, highstate in rendered.items() if role in cluster_nodes[key].roles]
    assert found, role
    return found


def test_consul_is_hashicorps_release_checked_against_its_sha256sums(rendered):
    for key, highstate in rendered.items():
        archive = state_args(highstate, "Consul release is unpacked")
        assert archive["source"] == "https://releases.hashicorp.com/consul/1.21.5/consul_1.21.5_linux_amd64.zip"
        assert archive["source_hash"] == "https://releases.hashicorp.com/consul/1.21.5/consul_1.21.5_SHA256SUMS"
        assert archive["name"].endswith("/1.21.5")


@pytest.mark.parametrize(
    "role,label,name,line,package,version,fingerprint,key_url,pillar_key",
    [
        ("kong", "Kong", "kong-gateway-39",
         "https://packages.konghq.com/public/gateway-39/deb/debian bookworm main", "kong", "3.9.3", KONG_KEY_ID,
         KONG_KEY_URL, "kong:repo"),
        ("slave", "Mesos", "aventer-mesos",
         "https://rpm.aventer.biz/Debian/ bookworm main", "aventer-mesos", "1.11.0-0.9.0.debian12",
         AVENTER_FINGERPRINT, AVENTER_KEY_URL, "mesos:repo"),
        ("master", "Mesos", "aventer-mesos",
         "https://rpm.aventer.biz/Debian/ bookworm main", "aventer-mesos", "1.11.0-0.9.0.debian12",
         AVENTER_FINGERPRINT, AVENTER_KEY_URL, "mesos:repo"),
    ],
)
def test_vendor_packages_come_from_their_apt_repository_with_the_pinned_key(
    rendered, cluster_nodes, role, label, name, line, package, version, fingerprint, key_url, pillar_key
):
    keyring = f"{KEYRINGS}/{name}.asc"
    for key, highstate in nodes_with(rendered, cluster_nodes, role):
        key_state = state_args(highstate, f"{label} signing key is pinned")
        checker = "/usr/local/sbin/pinned-apt-key"
        assert key_state["name"].split() == [checker, "install", keyring, fingerprint, key_url, pillar_key], key
        assert key_state["unless"] == f"{checker} check {keyring} {fingerprint}"
        source = state_args(highstate, f"{label} repository is configured")
        assert source["name"] == f"/etc/apt/sources.list.d/{name}.list"
        assert f"deb [signed-by={keyring}] {line}" in source["contents"].splitlines()
        assert source["require"] == [{"cmd": f"{label} signing key is pinned"}]
        index = state_args(highstate, f"{label} package index is current")
        assert {"file": f"{label} repository is configured"} in index["onchanges"]
        installed = state_args(highstate, f"{label} is installed")
        assert (installed["name"], installed["version"]) == (package, version)
        assert {"cmd": f"{label} package index is current"} in installed["require"]


@pytest.mark.parametrize(
    "role,label,reference",
    [
        ("master", "Marathon", "docker.io/mesosphere/marathon:v1.11.24"),
        ("master", "vulcand", "docker.io/webhippie/vulcand:0.9"),
    ],
)
def test_images_run_under_systemd_on_the_host_network(rendered, cluster_nodes, role, label, reference):
    for key, highstate in nodes_with(rendered, cluster_nodes, role):
        pulled = state_args(highstate, f"{label} image is pulled")
        assert pulled["name"] == f"docker pull {reference}"
        assert pulled["require"] == [{"service": "Docker is running"}]
        unit = state_args(highstate, f"{label} unit is installed")
        assert unit["source"] == "salt://platform/files/container.service.jinja"
        assert unit["context"]["image"] == reference
        running = state_args(highstate, f"{label} is running")
        assert {"cmd": f"{label} image is pulled"} in running["watch"]


def test_weave_is_the_pinned_script_with_the_operators_sha256(rendered, cluster_nodes):
    for key, highstate in rendered.items():
        if "kong" in cluster_nodes[key].roles:
            assert "Weave script is installed" not in highstate
            continue
        script = state_args(highstate, "Weave script is installed")
        assert script["source"] == "https://github.com/weaveworks/weave/releases/download/v2.8.1/weave"
        assert script["source_hash"] == "sha256=" + "b" * 64
        environment = state_args(highstate, "Weave peers are configured")["context"]["environment"]
        assert environment["DOCKERHUB_USER"] == "weaveworks"


def test_debian_archive_packages(rendered, cluster_nodes):
    for role, state_id, package, version in ARCHIVE_PACKAGES:
        for key, highstate in nodes_with(rendered, cluster_nodes, role):
            installed = state_args(highstate, state_id)
            assert installed["name"] == package, key
            assert installed.get("version") == version, key


def candidate_version(package):
    """apt's candidate for ``package`` on this machine (Debian 12), or None."""
    if not shutil.which("apt-cache"):
        return None
    policy = subprocess.run(["apt-cache", "policy", package], capture_output=True, text=True, check=False).stdout
    for line in policy.splitlines():
        if line.strip().startswith("Candidate:"):
            candidate = line.split(":", 1)[1].strip()
            return None if candidate == "(none)" else candidate
    return None


@pytest.mark.parametrize("package,pattern", [(p, v) for _, _, p, v in ARCHIVE_PACKAGES if v])
def test_pins_match_debians_version_the_way_salt_matches(package, pattern):
    """Salt's pkg.installed accepts a wildcard version by fnmatch against apt's versions."""
    candidate = candidate_version(package)
    if candidate is None:
        pytest.skip(f"apt on this machine does not know {package}")
    assert fnmatch.fnmatch(candidate, pattern), (package, candidate, pattern)


def test_every_source_is_one_pillar_key(tmp_path):
    """Mirrors: each source moved by one key, and an image pinned by digest when one is set."""
    digest = "sha256:" + "c" * 64
    mirror = {
        "consul": {"source": "https://mirror.example.com/consul/{version}/consul_{version}_linux_{arch}.zip",
                   "source_hash": "https://mirror.example.com/consul/{version}/consul_{version}_SHA256SUMS"},
        "mesos": {"repo": {"url": "https://apt.example.com/aventer", "key_url": "https://apt.example.com/aventer.asc"}},
        "marathon": {"image": {"name": "registry.example.com/mesosphere/marathon", "digest": digest}},
        "vulcand": {"image": {"name": "registry.example.com/vulcand", "tag": "v0.9.2"}},
        "weave": {"source": "https://mirror.example.com/weave/{version}/weave",
                  "image_repository": "registry.example.com/weaveworks"},
    }
    pillar_dir = write_pillar(tmp_path / "pillar", {"master": "10.0.12.10"}, mirror)
    highstate = Node(tmp_path / "root", "master", ["master"], "10.0.12.10", "debian12", pillar_dir).highstate()
    assert state_args(highstate, "Consul release is unpacked")["source"] == \
        "https://mirror.example.com/consul/1.21.5/consul_1.21.5_linux_amd64.zip"
    source = state_args(highstate, "Mesos repository is configured")["contents"]
    assert "https://apt.example.com/aventer bookworm main" in source
    assert state_args(highstate, "Mesos signing key is pinned")["name"].endswith(" https://apt.example.com/aventer.asc mesos:repo")
    assert state_args(highstate, "Marathon image is pulled")["name"] == \
        f"docker pull registry.example.com/mesosphere/marathon:v1.11.24@{digest}"
    assert state_args(highstate, "vulcand image is pulled")["name"] == "docker pull registry.example.com/vulcand:v0.9.2"
    assert state_args(highstate, "Weave script is installed")["source"] == "https://mirror.example.com/weave/2.8.1/weave"
    environment = state_args(highstate, "Weave peers are configured")["context"]["environment"]
    assert environment["DOCKERHUB_USER"] == "registry.example.com/weaveworks"


def test_secrets_never_show_in_state_output(rendered, cluster_nodes):
    secrets = ("kong-test-password",)
    for key, highstate in rendered.items():
        for state_id, state in highstate.items():
            args = state_args(highstate, state_id)
            text = json.dumps(args)
            holds_secret = any(secret in text for secret in secrets) or '"encrypt"' in text
            module = next(m for m in state if not m.startswith("__"))
            if holds_secret and module == "file":
                assert args.get("show_changes") is False, (key, state_id)
            assert not any(secret in state_id for secret in secrets)


# What would turn a check off: apt's signature check, Salt's hash check.
UNVERIFIED = ("trusted=yes", "allow-insecure", "allow-unauthenticated", "--force-yes", "skip_verify")


def test_no_download_goes_unverified(rendered):
    """Every remote source comes with its hash, and no state turns apt's or Salt's check off."""
    for key, highstate in rendered.items():
        for state_id in highstate:
            args = state_args(highstate, state_id)
            source = args.get("source")
            if isinstance(source, str) and source.startswith(("http://", "https://")):
                assert args.get("source_hash"), (key, state_id)
            text = json.dumps(args)
            assert not [flag for flag in UNVERIFIED if flag in text], (key, state_id)
