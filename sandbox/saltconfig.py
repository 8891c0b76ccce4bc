"""The sandbox's private Salt configuration, generated from the repository's ``etc/salt``.

The daemons do not run from the repository root, so every path becomes absolute (as the test
harness does): ``file_roots`` = ``salt/``, ``pillar_roots`` = ``pillar/`` plus the sandbox's
own pillar root holding ``local.sls`` (which ``pillar/top.sls`` includes when present), custom
code from ``salt/``, providers and profiles from ``cloud.providers.d``/``cloud.profiles.d``.
Runtime state, sockets and logs go under the sandbox's directory; the master and its one minion,
``kong`` (the gateway host of the cluster, where the registrations run), talk over loopback on
ports picked for this sandbox.
"""

import getpass
import pathlib

import salt.utils.yaml

GATEWAY_MINION_ID = "kong"


def _read_yaml(path):
    with open(path, encoding="utf-8") as handle:
        return salt.utils.yaml.safe_load(handle) or {}


def write_yaml(path, data):
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(salt.utils.yaml.safe_dump(data, default_flow_style=False), encoding="utf-8")
    return path


class SaltConfig:
    """Paths and ports of the sandbox's Salt installation, and the files that describe it."""

    def __init__(self, repo_root, workdir, publish_port, ret_port):
        self.repo_root = pathlib.Path(repo_root)
        self.workdir = pathlib.Path(workdir)
        self.config_dir = self.workdir / "etc" / "salt"
        self.root_dir = self.workdir / "var"
        self.pillar_dir = self.workdir / "pillar"
        self.publish_port = publish_port
        self.ret_port = ret_port

    @property
    def local_pillar(self):
        return self.pillar_dir / "local.sls"

    def _repo_config(self, name):
        config = _read_yaml(self.repo_root / "etc" / "salt" / name)
        config.update(
            root_dir=str(self.root_dir),
            user=getpass.getuser(),
            file_roots={"base": [str(self.repo_root / "salt")]},
            pillar_roots={"base": [str(self.repo_root / "pillar"), str(self.pillar_dir)]},
        )
        return config

    # Salt 3008 keeps its Unix sockets in <cachedir>/.salt-unix, and a socket path cannot
    # exceed 107 bytes: short cache directories keep a sandbox under a deep TMPDIR working.

    def master(self, engines=None):
        config = self._repo_config("master")
        config.update(
            cachedir=str(self.root_dir / "cache-master"),
            interface="127.0.0.1",
            publish_port=self.publish_port,
            ret_port=self.ret_port,
            module_dirs=[str(self.repo_root / "salt")],
            # Only the sandbox's own minion can reach a loopback master.
            auto_accept=True,
        )
        if engines:
            config["engines"] = engines
        return config

    def minion(self):
        config = self._repo_config("minion")
        config.update(
            id=GATEWAY_MINION_ID,
            cachedir=str(self.root_dir / "cache-minion"),
            master="127.0.0.1",
            master_port=self.ret_port,
            publish_port=self.publish_port,
            grains={"roles": [GATEWAY_MINION_ID]},
        )
        return config

    def cloud(self):
        config = _read_yaml(self.repo_root / "etc" / "salt" / "cloud")
        config.update(
            providers_config=str(self.repo_root / "cloud.providers"),
            profiles_config=str(self.repo_root / "cloud.profiles"),
        )
        return config

    def write(self, engines=None, pillar=None):
        """Write master, minion and cloud configuration (and ``local.sls`` when given)."""
        write_yaml(self.config_dir / "master", self.master(engines))
        write_yaml(self.config_dir / "minion", self.minion())
        write_yaml(self.config_dir / "cloud", self.cloud())
        if pillar is not None:
            write_yaml(self.local_pillar, pillar)

    def node_config_dir(self, node, grains):
        """A ``salt-call --local`` configuration rendering the highstate of cluster node ``node``.

        Used to show what each node of the map would apply, since the sandbox has no hosts.
        """
        directory = self.workdir / "nodes" / node
        config = self._repo_config("minion")
        config.update(
            id=node,
            root_dir=str(directory / "var"),
            grains=grains,
            file_client="local",
        )
        write_yaml(directory / "minion", config)
        return directory
