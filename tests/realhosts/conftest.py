"""Real Debian 12 hosts (lab/): the hosts of a cloud map booted with systemd-nspawn inside a
network namespace, Salt installed as the deploy installs it, the salt-master on its private
host.

Needs root and systemd-nspawn, mmdebstrap, socat, dnsmasq (./run installs them). Under CI
(CI=true) a missing prerequisite fails the tests; elsewhere they skip with one line saying
what is missing.
"""

import os
import pathlib
import sys
import time

import pytest

# The tests' own lab, apart from one a developer keeps up with ./run hosts.
os.environ.setdefault("SHOWCASE_LAB_NAME", "showcase-lab-tests")

from lab import cluster, system  # noqa: E402 - reads the lab's name on import
from lab import salt as salt_results  # noqa: E402

# Which components run real and which run as the lab's stand-ins (lab/standins, served by
# the lab's mirror with the real names, versions and file layout).
REAL = ["chrony", "dnsmasq", "postgresql", "zookeeper", "etcd", "docker"]
STAND_INS = ["consul", "kong", "mesos-master", "mesos-agent", "marathon", "vulcand", "weave"]

UNDER_CI = os.environ.get("CI", "").lower() == "true"
# A first highstate of seven hosts is one test's setup; on a loaded 2-core machine it outlasts
# the suite's 600 s limit per test. The lab's own waits bound every step inside it.
REAL_HOST_TEST_TIMEOUT = 1800
HERE = pathlib.Path(__file__).parent


def pytest_collection_modifyitems(items):
    for item in items:
        if HERE in item.path.parents and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(REAL_HOST_TEST_TIMEOUT))


def require_lab():
    missing = system.missing_prerequisites()
    if missing:
        message = f"real hosts need {', '.join(missing)}"
        if UNDER_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


def start(map_name):
    require_lab()
    lab = cluster.Cluster(map_name)
    timings = lab.up(progress=lambda line: print(f"lab: {line}", file=sys.stderr))
    print(f"lab {map_name}: " + ", ".join(f"{what} {seconds:.1f} s" for what, seconds in timings.items()),
          file=sys.stderr)
    return lab


@pytest.fixture(scope="session")
def default_lab():
    """The default map's five hosts, Salt up, every key accepted, modules synced."""
    lab = start("default")
    yield lab
    lab.down()


@pytest.fixture(scope="session")
def applied(default_lab):
    """The highstate applied for real to the default map's hosts, once for every module."""
    print(f"\nreal: {', '.join(REAL)}; lab stand-ins: {', '.join(STAND_INS)}")
    first = default_lab.apply()
    failed = salt_results.failures(first)
    assert not failed, "states failed on real hosts:\n" + "\n".join(failed)
    assert set(first) == set(default_lab.hosts)
    return first
