"""What runs on a lab host of each role after the highstate, and which of it is real.

The real components come from Debian's archive; the stand-ins from the lab's mirror (the real
names, versions and layout, the project's simulators inside; see lab/mirror.py). Each service's
version is read on the host, as an operator reads it.
"""

REAL, STAND_IN = "real", "stand-in"
# service -> (real or stand-in, shell command printing its version on the host)
PROBES = {
    "salt-minion": (REAL, "salt-call --version | cut -d' ' -f2"),
    "salt-master": (REAL, "salt-master --version | cut -d' ' -f2"),
    "sshd": (REAL, "dpkg-query -W -f='${Version}' openssh-server"),
    "chrony": (REAL, "dpkg-query -W -f='${Version}' chrony"),
    "dnsmasq": (REAL, "dpkg-query -W -f='${Version}' dnsmasq"),
    "postgresql": (REAL, "dpkg-query -W -f='${Version}' postgresql-15"),
    "zookeeper": (REAL, "dpkg-query -W -f='${Version}' zookeeper"),
    "etcd": (REAL, "dpkg-query -W -f='${Version}' etcd-server"),
    "docker": (REAL, "dpkg-query -W -f='${Version}' docker.io"),
    "consul": (STAND_IN, "consul version | head -1 | cut -d' ' -f2 | tr -d v"),
    "kong": (STAND_IN, "dpkg-query -W -f='${Version}' kong"),
    "mesos-master": (STAND_IN, "dpkg-query -W -f='${Version}' aventer-mesos"),
    "mesos-agent": (STAND_IN, "dpkg-query -W -f='${Version}' aventer-mesos"),
    "marathon": (STAND_IN, "docker ps --format '{{.Image}}' | grep -m1 marathon | sed 's/.*://'"),
    "vulcand": (STAND_IN, "docker ps --format '{{.Image}}' | grep -m1 vulcand | sed 's/.*://'"),
    "weave": (STAND_IN, "weave version | cut -d' ' -f3"),
}
UNITS = {"sshd": "ssh"}
SERVICES = {
    "kong": ["sshd", "salt-minion", "chrony", "dnsmasq", "consul", "postgresql", "kong"],
    "master": ["sshd", "salt-master", "salt-minion", "chrony", "dnsmasq", "consul", "docker", "weave",
               "zookeeper", "mesos-master", "marathon", "etcd", "vulcand"],
    "slave": ["sshd", "salt-minion", "chrony", "dnsmasq", "consul", "docker", "weave", "mesos-agent"],
}


def running(host, role):
    """[(service, systemd state, version, real or stand-in)] of a host of ``role``."""
    found = []
    for service in SERVICES[role]:
        kind, probe = PROBES[service]
        state = host.run(["systemctl", "is-active", UNITS.get(service, service)], check=False).stdout.strip()
        version = host.run(["sh", "-c", probe], check=False).stdout.strip() or "?"
        found.append((service, state, version, kind))
    return found
