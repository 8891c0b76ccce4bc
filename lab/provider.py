"""The lab's host provider: every instance of a cluster in an EC2 API (moto_server in the
sandbox) gets a real lab host, as AWS gives an instance a machine.

The host has the instance's private address (and its public one, an elastic IP, routed to it
in the lab's namespace), runs sshd with the instance's key pair authorised for the image's
login user (``admin``, as on Debian's AMIs; cloud-init does that on AWS) and has no Salt:
salt-cloud's deploy installs it. A terminated instance's host is removed.

The provider watches the API from a thread of the caller (the sandbox, a test) until
:meth:`HostProvider.stop`; the hosts are lab processes (lab/system.py), removed with the lab.
"""

import ipaddress
import subprocess
import threading
import time

from lab import hosts, image, network, system

POLL_SECONDS = 0.5
CLUSTER_TAG = "showcase:cluster"  # the tags salt-cloud's driver (salt/_clouds) puts on instances
PROFILE_TAG = "salt-cloud:profile"
LIVE_STATES = ("pending", "running")
LOGIN_USER = "admin"


def _subnet_of(address):
    for subnet, prefix in network.SUBNETS.items():
        if ipaddress.ip_address(address) in ipaddress.ip_network(f"{prefix}.0/24"):
            return subnet
    raise hosts.HostError(f"{address} is in none of the lab's subnets "
                          f"({', '.join(f'{prefix}.0/24' for prefix in network.SUBNETS.values())})")


class HostProvider:
    """Hosts for the instances of ``cluster`` that ``ec2`` (a boto3 EC2 client) lists."""

    def __init__(self, ec2, cluster, infrastructure, progress=print):
        self.ec2, self.cluster, self.lab, self.progress = ec2, cluster, infrastructure, progress
        self.hosts = {}  # name -> Host, running
        self.public = {}  # name -> its public address as routed
        self.failures = {}  # name -> why its host could not start
        self._starting = {}  # name -> thread
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._watcher = None
        self._public_keys = {}

    # --- the watch ------------------------------------------------------------------------
    def start(self):
        self._watcher = threading.Thread(target=self._watch, name="lab host provider", daemon=True)
        self._watcher.start()
        return self

    def stop(self):
        """Stop watching (the hosts keep running: salt-cloud -d, or the lab's removal, ends them)."""
        self._stopped.set()
        if self._watcher is not None:
            self._watcher.join()
        for thread in list(self._starting.values()):
            thread.join()

    def _watch(self):
        while not self._stopped.is_set():
            try:
                self.reconcile(self._instances())
            except Exception as error:  # the API or a host: said, then retried on the next round
                self.progress(f"host provider: {type(error).__name__}: {error}")
            self._stopped.wait(POLL_SECONDS)

    def _instances(self):
        filters = [{"Name": f"tag:{CLUSTER_TAG}", "Values": [self.cluster]},
                   {"Name": "tag-key", "Values": [PROFILE_TAG]}]
        pages = self.ec2.get_paginator("describe_instances").paginate(Filters=filters)
        return [instance for page in pages for reservation in page["Reservations"]
                for instance in reservation["Instances"]]

    def reconcile(self, instances):
        """Start a host for each live instance without one, remove the hosts of instances gone,
        move public addresses where the instances' are."""
        live = {}
        for instance in instances:
            if instance["State"]["Name"] in LIVE_STATES and instance.get("PrivateIpAddress"):
                name = {tag["Key"]: tag["Value"] for tag in instance.get("Tags", [])}.get("Name")
                live[name or instance["InstanceId"]] = instance
        with self._lock:
            for name, instance in live.items():
                if name not in self.hosts and name not in self._starting and name not in self.failures:
                    thread = threading.Thread(target=self._start_host, args=(name, instance),
                                              name=f"lab host {name}", daemon=True)
                    self._starting[name] = thread
                    thread.start()
            gone = [name for name in self.hosts if name not in live]
        for name in gone:
            self._remove_host(name)
        for name, instance in live.items():
            if name in self.hosts:
                self._place_public_address(name, instance.get("PublicIpAddress"))

    # --- one host -------------------------------------------------------------------------
    def _public_key(self, key_name):
        if key_name not in self._public_keys:
            pairs = self.ec2.describe_key_pairs(KeyNames=[key_name], IncludePublicKey=True)["KeyPairs"]
            self._public_keys[key_name] = pairs[0]["PublicKey"].strip() + "\n"
        return self._public_keys[key_name]

    def _start_host(self, name, instance):
        started = time.monotonic()
        address = instance["PrivateIpAddress"]
        try:
            host = hosts.Host(name, address, _subnet_of(address))
            host.mount(self.lab.image, hidden=image.SALT_FILES)
            host.configure(self.lab.apt_proxies)
            # What an AMI's first boot does: host keys of its own, the key pair authorised.
            subprocess.run(["ssh-keygen", "-q", "-A", "-f", str(host.root)], check=True, capture_output=True)
            if instance.get("KeyName"):
                host.write(f"/home/{LOGIN_USER}/.ssh/authorized_keys",
                           self._public_key(instance["KeyName"]), 0o600, owner=LOGIN_USER)
            host.enable("ssh.service")
            host.boot()
            host.wait_running()
        except Exception as error:
            with self._lock:
                self.failures[name] = f"{type(error).__name__}: {error}"
                del self._starting[name]
            self.progress(f"{name}: its host did not start: {self.failures[name]}")
            return
        with self._lock:
            self.hosts[name] = host
            del self._starting[name]
            self._update_resolver()
        self.progress(f"{name}: host up at {address} for {instance['InstanceId']} "
                      f"({time.monotonic() - started:.1f} s)")

    def _place_public_address(self, name, public):
        current = self.public.get(name)
        if public == current:
            return
        if current:
            network.unroute_public_address(current)
        if public:
            if ipaddress.ip_address(public).is_loopback:
                self.hosts[name].run(["sysctl", "-q", "-w", *network.HOST_LOCALNET_SYSCTLS])
            network.route_public_address(public, self.hosts[name].address)
            self.progress(f"{name}: public address {public}")
        self.public[name] = public

    def _remove_host(self, name):
        started = time.monotonic()
        with self._lock:
            host = self.hosts.pop(name)
            self._update_resolver()
        if self.public.get(name):
            network.unroute_public_address(self.public.pop(name))
        host.remove()
        self.progress(f"{name}: instance terminated, host removed ({time.monotonic() - started:.1f} s)")

    def _update_resolver(self):
        network.update_resolver({name: host.address for name, host in self.hosts.items()})

    # --- waiting --------------------------------------------------------------------------
    def wait_for(self, predicate, what, timeout):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise hosts.HostError(f"timed out waiting for {what}")
            time.sleep(POLL_SECONDS)

    def wait_until_removed(self, timeout=120):
        """Every host is gone (each instance terminated)."""
        self.wait_for(lambda: not self.hosts and not self._starting, "every host's removal", timeout)
