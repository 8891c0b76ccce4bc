"""The hosts of a cloud map, set up as the deploy sets them up on AWS.

From ``cloud.profiles.d/showcase.conf`` and a map in ``cloud.maps.d``: each host's role
grains, its private address in its profile's subnet, the minion configuration the cloud
driver writes (``master``: the salt-master's private address), and keys pre-seeded on the
salt-master as salt-cloud does. The salt-master host (the private ``master`` host, or
``master0`` in the HA map) runs the real salt-master with this checkout's ``salt/`` and
``pillar/`` where the profile's ``file_map`` puts them, plus the lab's pillar file.
"""

import dataclasses
import json
import pathlib
import posixpath
import shutil
import time

import jinja2
import salt.crypt
import salt.utils.yaml

from lab import hosts, image, mirror, network, pillar, system
from lab import salt as salt_results

REPO_ROOT = image.REPO_ROOT
DEFAULT_MAP = "default"
FIRST_HOST_OCTET = 10
SUBNET_OF_PROFILE_SUBNET = {"showcase-public": "public", "showcase-private": "private"}
KEY_SIZE = 2048
SALT_TIMEOUT = 120


def _profiles():
    with open(REPO_ROOT / "cloud.profiles.d" / "showcase.conf", encoding="utf-8") as handle:
        raw = salt.utils.yaml.safe_load(handle)

    def resolved(name):
        profile = dict(raw[name])
        parent = profile.pop("extends", None)
        return {**(resolved(parent) if parent else {}), **profile}

    return {name: resolved(name) for name in raw}


def map_path(map_name):
    return REPO_ROOT / "cloud.maps.d" / f"{map_name}.map"


def _map_entries(map_name):
    """[(profile, host name, overrides)] of a map, rendered as salt-cloud renders it."""
    environment = jinja2.Environment()
    environment.filters["json"] = json.dumps  # as Salt's Jinja has it
    text = environment.from_string(map_path(map_name).read_text()).render(opts={"deploy": True})
    entries = []
    for profile, names in salt.utils.yaml.safe_load(text).items():
        for entry in names:
            name, overrides = (entry, {}) if isinstance(entry, str) else next(iter(entry.items()))
            entries.append((profile, name, overrides or {}))
    return entries


@dataclasses.dataclass
class Infrastructure:
    """A started lab without hosts: the image they boot, the apt relay's proxies for them,
    the mirror's directory, and how long building (or finding) the image took."""
    image: pathlib.Path
    apt_proxies: dict
    mirror: pathlib.Path
    image_seconds: float


def start_infrastructure(names):
    """Remove any earlier lab of this name, then start its network, resolver (answering
    ``names``: {host name: address}), apt relay and mirror."""
    started = time.monotonic()
    system.remove_all()
    root_image = image.image()
    image_seconds = time.monotonic() - started
    system.STATE.mkdir(parents=True)
    network.create()
    network.start_resolver(names)
    proxies = network.start_apt_relay(image.mirror_endpoints(image.debian_mirrors()))
    mirror_root = mirror.build(root_image)
    mirror.start(mirror_root)
    return Infrastructure(root_image, proxies, mirror_root, image_seconds)


def file_map_destination(source, target):
    """Where salt-cloud's ``file_map`` puts ``source``: into ``target`` when it ends with ``/``."""
    return posixpath.join(target, pathlib.PurePath(source).name) if target.endswith("/") else target


class Cluster:
    """The hosts of one map (not started: see :meth:`up`)."""

    def __init__(self, map_name=DEFAULT_MAP):
        self.map_name = map_name
        profiles = _profiles()
        next_octet = {}
        self.hosts, self.profiles, salt_masters = {}, {}, []
        for profile_name, name, overrides in _map_entries(map_name):
            profile = {**profiles[profile_name], **overrides}
            subnet = SUBNET_OF_PROFILE_SUBNET[profile["subnet"]]
            octet = next_octet.setdefault(subnet, FIRST_HOST_OCTET)
            next_octet[subnet] = octet + 1
            self.hosts[name] = hosts.Host(name, f"{network.SUBNETS[subnet]}.{octet}", subnet)
            self.profiles[name] = profile
            if profile.get("make_master"):  # as salt-cloud decides which node it is
                salt_masters.append(name)
        if len(salt_masters) != 1:
            raise ValueError(f"{map_path(map_name)}: expected one node with make_master, "
                             f"found {salt_masters or 'none'}")
        self.salt_master = salt_masters[0]
        # Its profile says how the salt-master is laid out (file_map, master config).
        self.master_profile = self.profiles[self.salt_master]

    def __getitem__(self, name):
        return self.hosts[name]

    @property
    def master(self):
        return self.hosts[self.salt_master]

    def by_role(self, role):
        return [host for name, host in self.hosts.items()
                if role in self.profiles[name].get("grains", {}).get("roles", [])]

    # --- lifecycle ------------------------------------------------------------------------
    def up(self, progress=print):
        """Remove any earlier lab, then build (or reuse) the image and start every host with
        Salt running and every key accepted. Returns the timings in seconds."""
        timings = {}
        started = time.monotonic()
        lab = start_infrastructure({name: host.address for name, host in self.hosts.items()})
        timings["image"] = lab.image_seconds
        for host in self.hosts.values():
            host.mount(lab.image)
            host.configure(lab.apt_proxies)
        self._lay_out_salt(lab.mirror)
        for host in self.hosts.values():
            host.boot()
        for host in self.hosts.values():
            host.wait_running()
            progress(f"{host.name} up at {host.address}")
        timings["boot"] = time.monotonic() - started - lab.image_seconds
        started = time.monotonic()
        self.wait_minions()
        timings["salt"] = time.monotonic() - started
        return timings

    def down(self):
        system.remove_all()

    # --- Salt -----------------------------------------------------------------------------
    def _lay_out_salt(self, mirror_root):
        master = self.master
        for name, host in self.hosts.items():
            # salt-cloud generates each minion's key pair and pre-seeds the public key.
            private, public = salt.crypt.gen_keys(KEY_SIZE)
            host.write("/etc/salt/pki/minion/minion.pem", private, 0o400)
            host.write("/etc/salt/pki/minion/minion.pub", public)
            master.write(f"/etc/salt/pki/master/minions/{name}", public)
            host.write("/etc/salt/minion.d/cloud.conf", salt.utils.yaml.safe_dump(
                self.minion_config(name), default_flow_style=False))
            host.write("/etc/salt/grains", salt.utils.yaml.safe_dump(
                self.profiles[name].get("grains", {}), default_flow_style=False))
            host.enable("salt-minion.service")
        for source, target in self.master_profile["file_map"].items():
            shutil.copytree(REPO_ROOT / source, master.root / file_map_destination(source, target).lstrip("/"),
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "local.sls"))
        self.write_pillar(pillar.lab_pillar(mirror_root))
        master.write("/etc/salt/master.d/cloud.conf", salt.utils.yaml.safe_dump(
            pillar.master_config(self.master_profile["master"]), default_flow_style=False))
        master.enable("salt-master.service")

    def minion_config(self, name):
        """What the cloud driver writes: the id, the salt-master's private address (its own
        for the master host), and the profile's minion settings."""
        return {"id": name, "master": self.master.address, **self.profiles[name].get("minion", {})}

    def salt(self, *argv, timeout=SALT_TIMEOUT, check=True):
        """`salt ARGV` on the salt-master (JSON output)."""
        return self.master.run(["salt", "--out=json", "--static", f"--timeout={timeout}", *argv],
                               check=check, timeout=timeout + 60)

    def wait_minions(self, timeout=SALT_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            done = self.salt("*", "test.ping", timeout=5, check=False)
            try:
                answered = {name for name, value in json.loads(done.stdout or "{}").items() if value is True}
            except ValueError:
                answered = set()
            if answered == set(self.hosts):
                break
            if time.monotonic() > deadline:
                raise hosts.HostError(f"minions {sorted(set(self.hosts) - answered)} never answered "
                                      f"the salt-master on {self.salt_master}")
            time.sleep(1)
        self.salt("*", "saltutil.sync_all")

    @property
    def pillar_file(self):
        """The lab's pillar on the salt-master: local.sls of its pillar root."""
        return f"{self.master_profile['master']['pillar_roots']['base'][0]}/local.sls"

    def pillar(self):
        """The lab's pillar as the salt-master serves it (local.sls)."""
        return salt.utils.yaml.safe_load(self.master.run(["cat", self.pillar_file]).stdout)

    def write_pillar(self, data):
        """Replace the lab's pillar, as an operator edits local.sls on the salt-master."""
        self.master.write(self.pillar_file, salt.utils.yaml.safe_dump(data, default_flow_style=False))

    def apply(self, target="*", sls=None, arguments=(), timeout=900):
        """``salt TARGET state.apply [SLS] [ARGUMENTS]`` (such as ``test=True``) on the
        salt-master: the results by host (see lab.salt for reading them)."""
        argv = [target, "state.apply"] + ([",".join(sls)] if sls else []) + list(arguments)
        return salt_results.results(self.salt(*argv, timeout=timeout, check=False).stdout)
