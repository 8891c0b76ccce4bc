"""Rendered configuration checked by the real programs, from a file-only apply.

The file states of one node per role are applied into a temporary root (paths prefixed,
owners dropped, requisites on non-file states dropped), a second run in test mode must report
no changes, and the resulting files are fed to dnsmasq, systemd-analyze, ZooKeeper and etcd.
"""

import json
import os
import pathlib
import re
import shutil
import socket
import subprocess
import time

import pytest
import requests

pytestmark = pytest.mark.slow

FILE_FUNCTIONS = {"managed", "serialize"}
DROPPED_ARGS = {"user", "group", "require", "watch", "onchanges", "require_in", "watch_in"}
ZOOKEEPER_HOME = pathlib.Path("/usr/share/zookeeper")


def file_states_under(highstate, root):
    """The node's config files (file.managed/file.serialize from data or salt://), below ``root``."""
    high = {}
    for state_id, state in highstate.items():
        body = state.get("file")
        if not body or not FILE_FUNCTIONS.intersection(item for item in body if isinstance(item, str)):
            continue
        source = next((item["source"] for item in body if isinstance(item, dict) and "source" in item), "")
        if source and not source.startswith("salt://"):
            continue  # downloads stay out: tests never leave the machine
        rewritten = []
        for item in body:
            if isinstance(item, dict):
                (key, value), = item.items()
                if key in DROPPED_ARGS or key == "order":
                    continue
                if key == "name":
                    value = f"{root}{value}"
                item = {key: value}
            rewritten.append(item)
        rewritten.append({"makedirs": True})
        high[state_id] = {"file": rewritten, "__sls__": state["__sls__"], "__env__": "base"}
    return high


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def applied(rendered, cluster_nodes, tmp_path_factory):
    """{role: (node, root)} after a real apply of the file states of one node per role."""
    result = {}
    for key, node in cluster_nodes.items():
        map_name, os_name, _ = key
        role = node.roles[0]
        if map_name != "default" or os_name != "debian12" or role in result:
            continue
        root = tmp_path_factory.mktemp(f"applied-{role}")
        high = file_states_under(rendered[key], root)
        first = json.loads(node.salt_call("state.high", json.dumps(high)).stdout)["local"]
        failed = {sid: ret["comment"] for sid, ret in first.items() if ret["result"] is not True}
        assert not failed, failed
        node.high = high
        result[role] = (node, root)
    return result


def test_second_apply_reports_no_changes(applied):
    for role, (node, root) in applied.items():
        second = json.loads(node.salt_call("state.high", json.dumps(node.high), "test=True").stdout)
        changed = {sid: ret["changes"] for sid, ret in second["local"].items() if ret["changes"] or ret["result"] is not True}
        assert not changed, (role, changed)


def test_dnsmasq_accepts_its_config(applied):
    for role, (node, root) in applied.items():
        config = root / "etc/dnsmasq.d/10-platform.conf"
        assert "server=/consul/127.0.0.1#8600" in config.read_text().splitlines()
        proc = subprocess.run(["dnsmasq", "--test", "-C", str(config)], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr


def test_systemd_accepts_the_units(applied, tmp_path):
    """systemd-analyze verify on every unit; executables and foreign units are stubbed."""
    stub = tmp_path / "stub"
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    for role, (node, root) in applied.items():
        unit_dir = tmp_path / role
        unit_dir.mkdir()
        units = sorted((root / "etc/systemd/system").glob("*.service"))
        assert units, role
        for unit in units:
            text = re.sub(r"^(Exec\w+=)(\S+)", rf"\g<1>{stub}", unit.read_text(), flags=re.M)
            text = re.sub(r"^(EnvironmentFile|ConditionFileNotEmpty)=", rf"\g<1>={root}", text, flags=re.M)
            (unit_dir / unit.name).write_text(text)
        for name in ("docker.service", "postgresql.service", "etcd.service", "zookeeper.service",
                     "mesos-master.service", "weave.service"):
            if not (unit_dir / name).exists():
                (unit_dir / name).write_text(f"[Service]\nExecStart={stub}\n")
        proc = subprocess.run(
            ["systemd-analyze", "verify", *[str(unit_dir / u.name) for u in units]],
            capture_output=True, text=True, check=False,
            env=dict(os.environ, SYSTEMD_UNIT_PATH=f"{unit_dir}:"),
        )
        assert proc.returncode == 0 and not proc.stderr.strip(), (role, proc.stderr)


def wait_until(probe, what, process):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, f"{what} exited: {process.stdout.read()}"
        try:
            if probe():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{what} did not come up")


@pytest.mark.skipif(not (ZOOKEEPER_HOME / "bin/zkServer.sh").exists(), reason="Debian zookeeper missing")
def test_zookeeper_starts_from_the_rendered_config(applied, tmp_path):
    node, root = applied["master"]
    config = dict(
        line.split("=", 1) for line in (root / "etc/zookeeper/ensemble/zoo.cfg").read_text().splitlines()
        if line and not line.startswith("#")
    )
    client, peer, election = free_port(), free_port(), free_port()
    data_dir = tmp_path / "zookeeper"
    shutil.copytree(root / config["dataDir"].lstrip("/"), data_dir)
    myid = (data_dir / "myid").read_text().strip()
    assert config[f"server.{myid}"] == f"{node.address}:2888:3888"
    config.update({
        "dataDir": str(data_dir), "clientPort": str(client), "clientPortAddress": "127.0.0.1",
        f"server.{myid}": f"127.0.0.1:{peer}:{election}",
    })
    local_cfg = tmp_path / "zoo.cfg"
    local_cfg.write_text("".join(f"{k}={v}\n" for k, v in config.items()))
    env = dict(os.environ, ZOO_LOG_DIR=str(tmp_path), ZOO_LOG4J_PROP="WARN,CONSOLE")
    process = subprocess.Popen(
        [str(ZOOKEEPER_HOME / "bin/zkServer.sh"), "start-foreground", str(local_cfg)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )

    def serving():
        with socket.create_connection(("127.0.0.1", client), timeout=2) as sock:
            sock.sendall(b"srvr")
            return b"Mode:" in sock.recv(4096)

    try:
        wait_until(serving, "ZooKeeper", process)
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd missing")
def test_etcd_starts_from_the_rendered_config(applied, tmp_path):
    import salt.utils.yaml

    node, root = applied["master"]
    config = salt.utils.yaml.safe_load((root / "etc/etcd/etcd.conf.yml").read_text())
    assert config["listen-client-urls"] == f"http://{node.address}:2379,http://127.0.0.1:2379"
    client, peer = free_port(), free_port()
    rendered_text = json.dumps(config)
    local = json.loads(rendered_text.replace(f"{node.address}:2379", f"127.0.0.1:{client}")
                       .replace(f"{node.address}:2380", f"127.0.0.1:{peer}")
                       .replace("127.0.0.1:2379", f"127.0.0.1:{client}"))
    local["data-dir"] = str(tmp_path / "etcd")
    local_cfg = tmp_path / "etcd.yml"
    local_cfg.write_text(salt.utils.yaml.safe_dump(local))
    process = subprocess.Popen(
        ["etcd", "--config-file", str(local_cfg)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )

    def healthy():
        return requests.get(f"http://127.0.0.1:{client}/health", timeout=2).json()["health"] == "true"

    try:
        wait_until(healthy, "etcd", process)
    finally:
        process.terminate()
        process.wait(timeout=30)


KEY_CHECKER = pathlib.Path(__file__).resolve().parents[2] / "salt/platform/files/pinned-apt-key.sh"


def make_key(home, expire):
    """A throw-away signing key in ``home``: (armored public key, fingerprint)."""
    home.mkdir(mode=0o700)
    env = dict(os.environ, GNUPGHOME=str(home))
    subprocess.run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", "Platform test <t@example.com>",
                    "ed25519", "sign", expire], env=env, check=True, capture_output=True)
    listing = subprocess.run(["gpg", "--batch", "--with-colons", "--list-keys"], env=env, check=True,
                             capture_output=True, text=True).stdout
    fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
    armored = subprocess.run(["gpg", "--batch", "--armor", "--export", fingerprint], env=env, check=True,
                             capture_output=True).stdout
    return armored, fingerprint


@pytest.fixture(scope="module")
def key_server(tmp_path_factory):
    """A local HTTP server (127.0.0.1) serving a valid key, an expired one and a 404."""
    import http.server
    import threading

    root = tmp_path_factory.mktemp("keys")
    keys = {}
    for name, expire in (("valid", "1y"), ("expired", "seconds=1")):
        armored, fingerprint = make_key(root / f"home-{name}", expire)
        (root / f"{name}.asc").write_bytes(armored)
        keys[name] = fingerprint
    handler = lambda *args: http.server.SimpleHTTPRequestHandler(*args, directory=str(root))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    time.sleep(1.5)  # the short-lived key is past its expiry
    yield f"http://127.0.0.1:{server.server_address[1]}", keys
    server.shutdown()
    for name in keys:  # key generation started a gpg-agent per home
        subprocess.run(["gpgconf", "--kill", "all"], env=dict(os.environ, GNUPGHOME=str(root / f"home-{name}")),
                       check=False, capture_output=True)


def run_checker(*args):
    return subprocess.run(["sh", str(KEY_CHECKER), *args], capture_output=True, text=True, check=False)


@pytest.mark.skipif(shutil.which("gpg") is None, reason="gpg missing")
def test_signing_key_is_installed_only_when_it_is_the_pinned_one(key_server, tmp_path):
    url, keys = key_server
    keyring = tmp_path / "keyrings/vendor.asc"
    wrong = run_checker("install", str(keyring), "0" * 40, f"{url}/valid.asc", "vendor:repo")
    assert wrong.returncode == 1
    assert f"pillar `vendor:repo:key_fingerprint` pins {'0' * 40}: nothing written" in wrong.stderr
    assert not keyring.exists()
    missing = run_checker("install", str(keyring), keys["valid"], f"{url}/absent.asc", "vendor:repo")
    assert f"cannot download the signing key from {url}/absent.asc" in missing.stderr
    assert run_checker("install", str(keyring), keys["valid"], f"{url}/valid.asc").returncode == 2
    assert run_checker("check", str(keyring), keys["valid"]).returncode == 1
    installed = run_checker("install", str(keyring), keys["valid"], f"{url}/valid.asc", "vendor:repo")
    assert installed.returncode == 0, installed.stderr
    assert installed.stdout.strip() == f"installed the key {keys['valid']} from {url}/valid.asc as {keyring}"
    assert run_checker("check", str(keyring), keys["valid"]).returncode == 0
    assert run_checker("check", str(keyring), keys["valid"][-16:]).returncode == 0  # long key ID
    assert run_checker("check", str(keyring), keys["expired"]).returncode == 1


@pytest.mark.skipif(shutil.which("gpg") is None, reason="gpg missing")
def test_an_expired_key_is_refused_naming_its_expiry_and_the_pillar_key(key_server, tmp_path):
    """As AVENTER's pinned key since 2026-09-28: the Mesos install fails with one sentence."""
    url, keys = key_server
    keyring = tmp_path / "keyrings/aventer-mesos.asc"
    expired = run_checker("install", str(keyring), keys["expired"], f"{url}/expired.asc", "mesos:repo")
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert expired.returncode == 1 and not keyring.exists()
    assert expired.stderr.strip() == (
        f"the key {keys['expired']} from {url}/expired.asc expired on {today}: set pillar "
        "`mesos:repo:key_fingerprint` (and `mesos:repo:key_url`) to the vendor's current key: nothing written")


@pytest.mark.skipif(shutil.which("gpg") is None, reason="gpg missing")
def test_a_key_pinned_by_long_id_shows_its_full_fingerprint(key_server, tmp_path):
    """As Kong's key, published by long key ID only: the operator is shown what to pin."""
    url, keys = key_server
    keyring = tmp_path / "keyrings/kong.asc"
    installed = run_checker("install", str(keyring), keys["valid"][-16:], f"{url}/valid.asc", "kong:repo")
    assert installed.returncode == 0, installed.stderr
    assert installed.stdout.strip() == (
        f"installed the key {keys['valid'][-16:]} (fingerprint {keys['valid']}) from {url}/valid.asc as "
        f"{keyring}; pin that full fingerprint in pillar `kong:repo:key_fingerprint` once checked with the vendor")
