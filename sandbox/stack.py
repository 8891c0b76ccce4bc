"""The sandbox's running services: moto (AWS), the simulators, a salt-master and its minion.

Everything binds 127.0.0.1 on ports picked at start, so two sandboxes, or a sandbox next to
anything else, never collide; a child that loses a port race is restarted on a new port.
"""

import json
import pathlib
import sys

import salt.utils.yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox import clients
from sandbox.ports import PortAllocator, is_listening
from sandbox.saltconfig import GATEWAY_MINION_ID, SaltConfig
from sandbox.steps import StepUnavailable
from sandbox.supervisor import ChildFailed

BIN_DIR = pathlib.Path(sys.executable).parent
START_TIMEOUT = 60.0
SALT_START_TIMEOUT = 180.0  # a busy 2-core machine can take minutes to start salt-master
START_ATTEMPTS = 3
FAKE_AWS_PROFILE = "showcase"  # the seed's profile name, which the provider uses by default
AWS_REGION = "eu-west-1"
AMI_DEFAULTS = {
    "state": "available",
    "public": True,
    "architecture": "x86_64",
    "virtualization_type": "hvm",
    "hypervisor": "xen",
    "image_type": "machine",
    "root_device_type": "ebs",
    "root_device_name": "/dev/sda1",
    "sriov": "simple",
}


def tool(name):
    """Path of a console script installed next to this Python (moto_server, salt-*)."""
    return str(BIN_DIR / name)


def simulator_available(name):
    """True when ``python -m simulators NAME`` knows ``name``."""
    import simulators  # the repository's package: on sys.path whenever the sandbox runs

    return name in simulators.REGISTRY


SIMULATORS = ("consul", "vulcand", "kong", "marathon")


def _first_json_line(line):
    return line.startswith("{") and line.rstrip().endswith("}")


class Stack:
    """Starts and knows the sandbox's services; all of them are children of ``supervisor``."""

    def __init__(self, supervisor, repo_root, workdir):
        self.supervisor = supervisor
        self.repo_root = pathlib.Path(repo_root)
        self.workdir = pathlib.Path(workdir)
        self.ports = PortAllocator()
        self.urls = {}  # service -> URL (or dict of URLs from a simulator)
        self.salt = None
        self.env = {}  # what every Salt command needs: AWS endpoint and credentials
        self.simulators_path = {"PYTHONPATH": str(self.repo_root)}

    # -- AWS ---------------------------------------------------------------------------------

    def start_moto(self):
        """A real ``moto_server`` on loopback, and the AWS environment pointing at it."""
        port = self._start_on_free_port(
            "moto",
            lambda port: [tool("moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            env={"MOTO_AMIS_PATH": str(self._image_catalogue())},
        )
        self.urls["aws"] = f"http://127.0.0.1:{port}"
        self.env.update(self._aws_environment(self.urls["aws"]))
        return self.urls["aws"]

    def _aws_environment(self, endpoint):
        """Fake credentials under the seed's profile name, as ``aws configure`` would write them."""
        aws_dir = self.workdir / "aws"
        aws_dir.mkdir(parents=True, exist_ok=True)
        (aws_dir / "credentials").write_text(
            f"[{FAKE_AWS_PROFILE}]\naws_access_key_id = testing\naws_secret_access_key = testing\n"
        )
        (aws_dir / "config").write_text(f"[profile {FAKE_AWS_PROFILE}]\nregion = {AWS_REGION}\n")
        return {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_SHARED_CREDENTIALS_FILE": str(aws_dir / "credentials"),
            "AWS_CONFIG_FILE": str(aws_dir / "config"),
            "AWS_DEFAULT_REGION": AWS_REGION,
        }

    def _image_catalogue(self):
        """moto's AMIs: one per image alias of the cloud providers, found by its owner + name.

        AWS has the Debian images the providers look up; a fresh moto has not.
        """
        images = []
        for path in sorted((self.repo_root / "cloud.providers.d").glob("*.conf")):
            for provider in (salt.utils.yaml.safe_load(path.read_text()) or {}).values():
                for alias, image in (provider.get("images") or {}).items():
                    name = image["name"].replace("*", "")  # the shortest name the filter matches
                    images.append({**AMI_DEFAULTS, "ami_id": f"ami-{len(images):017x}",
                                   "name": name, "description": f"sandbox {alias} image",
                                   "owner_id": str(image["owner"])})
        catalogue = self.workdir / "aws" / "amis.json"
        catalogue.parent.mkdir(parents=True, exist_ok=True)
        catalogue.write_text(json.dumps(images))
        return catalogue

    def _start_on_free_port(self, name, argv_for_port, env=None):
        """Start a child listening on a fresh port (returned); retry on another if it cannot bind."""
        for attempt in range(1, START_ATTEMPTS + 1):
            port = self.ports.take()
            child = self.supervisor.start(name, argv_for_port(port), env=env)
            try:
                child.wait_until(lambda: is_listening(port), START_TIMEOUT, f"listening on {port}")
                return port
            except ChildFailed as failure:
                self.supervisor.stop(child)
                if not failure.exited or attempt == START_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    # -- simulators ----------------------------------------------------------------------------

    def start_simulators(self, resolve):
        """Every simulator the sandbox needs; ``resolve`` maps the gateway's upstream names.

        The ones that exist start; the missing ones are reported together afterwards.
        """
        missing = [name for name in SIMULATORS if not simulator_available(name)]
        for name in SIMULATORS:
            if name in missing:
                continue
            extra = []
            if name == "kong":
                extra = [arg for host, address in resolve.items() for arg in ("--resolve", f"{host}={address}")]
            self.start_simulator(name, *extra)
        if missing:
            raise StepUnavailable(f"no {', '.join(missing)} simulator in simulators/ yet")

    @property
    def marathon(self):
        if "marathon" not in self.urls:
            raise StepUnavailable("needs the Marathon simulator")
        return clients.Marathon(self.urls["marathon"]["url"])

    def probe_gateway(self, host, count):
        """What answers ``count`` requests for ``host`` sent to the gateway's proxy port."""
        return clients.probe(self.urls["kong"]["proxy_url"], host, count)

    def gateway_status(self, host, path, credentials):
        """Status codes of a request for ``host`` through the gateway, without and with
        basic-auth ``credentials``."""
        url = self.urls["kong"]["proxy_url"] + path
        return clients.status(url, host), clients.status(url, host, auth=credentials)

    def start_simulator(self, name, *args):
        """Run ``python -m simulators NAME``; returns the URLs it prints once listening."""
        if not simulator_available(name):
            raise StepUnavailable(f"there is no '{name}' simulator in simulators/ yet")
        child = self.supervisor.start(
            f"simulator-{name}",
            [sys.executable, "-m", "simulators", name, "--port", "0", *args],
            env=self.simulators_path,
            cwd=self.repo_root,
        )
        urls = json.loads(child.wait_for_line(_first_json_line, START_TIMEOUT))
        urls.pop("name", None)
        self.urls[name] = urls
        return urls

    # -- Salt ----------------------------------------------------------------------------------

    def start_salt(self, engines, pillar, minion=True):
        """A salt-master and (``minion``) the ``kong`` minion from the repository's configuration."""
        for attempt in range(1, START_ATTEMPTS + 1):
            self.salt = SaltConfig(self.repo_root, self.workdir, self.ports.take(), self.ports.take())
            self.salt.write(engines=engines, pillar=pillar)
            started = []
            try:
                self._start_salt_daemons(started, minion)
                return self.salt
            except ChildFailed as failure:
                for child in reversed(started):
                    self.supervisor.stop(child)
                # A daemon that exited may have lost a port race: retry on other ports.
                if not failure.exited or attempt == START_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    def _start_salt_daemons(self, started, with_minion):
        config_dir = str(self.salt.config_dir)
        master = self.supervisor.start(
            "salt-master", [tool("salt-master"), "-c", config_dir, "-l", "warning"], env=self.env
        )
        started.append(master)
        master.wait_until(
            lambda: is_listening(self.salt.ret_port) and is_listening(self.salt.publish_port),
            SALT_START_TIMEOUT,
            "master ports open",
        )
        if not with_minion:
            return
        minion = self.supervisor.start(
            "salt-minion", [tool("salt-minion"), "-c", config_dir, "-l", "warning"], env=self.env
        )
        started.append(minion)
        minion.wait_until(self._minion_answers, SALT_START_TIMEOUT, "minion kong answering test.ping")

    def _minion_answers(self):
        returncode, output = self.salt_command(
            ["salt", GATEWAY_MINION_ID, "test.ping", "--out=json", "--timeout=5"], timeout=30
        )
        try:
            return returncode == 0 and json.loads(output).get(GATEWAY_MINION_ID) is True
        except ValueError:
            return False

    def salt_command(self, argv, timeout=600):
        """Run a Salt CLI command (``salt``, ``salt-run``, ``salt-cloud``...) against the sandbox.

        ``argv`` is what an operator types from the repository root; the sandbox adds ``-c``.
        """
        program, *args = argv
        return self.supervisor.run(
            [tool(program), "-c", str(self.salt.config_dir), *args],
            env=self.env,
            cwd=self.repo_root,
            timeout=timeout,
        )

    def ssh_public_key(self):
        """The operator's SSH key pair (``ssh-keygen -f ~/.ssh/showcase``), made for the sandbox."""
        public = self.workdir / "ssh" / "showcase.pub"
        if not public.exists():
            public.parent.mkdir(parents=True, exist_ok=True)
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            private = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.OpenSSH,
                serialization.NoEncryption(),
            )
            (public.parent / "showcase").write_bytes(private)
            (public.parent / "showcase").chmod(0o600)
            openssh = key.public_key().public_bytes(
                serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
            )
            public.write_bytes(openssh + b" showcase\n")
        return public
