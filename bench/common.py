"""What the benchmarks share: the registries' simulators, each in a process of its own (as the
real servers are, so that the code measured does not share an interpreter lock with them), and
the summary of the HTTP requests a run sent."""

import contextlib
import json
import os
import subprocess
import sys

from bench import REPO_ROOT

SYSTEMS = ("marathon", "consul", "vulcand", "etcd", "kong")
START_TIMEOUT = 60


@contextlib.contextmanager
def simulator_process(name, *args):
    """``python -m simulators NAME --port 0 ARGS`` running; yields the URLs it printed."""
    child = subprocess.Popen(  # pylint: disable=consider-using-with
        [sys.executable, "-m", "simulators", name, "--port", "0", *args],
        stdout=subprocess.PIPE, cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        line = child.stdout.readline()
        if not line:
            raise SystemExit(f"the {name} simulator did not start (exit status {child.wait()})")
        yield json.loads(line)
    finally:
        child.terminate()
        child.wait(START_TIMEOUT)


class RegistryProcesses:
    """The Consul, Kong and vulcand (on its own real etcd) simulators, in their processes."""

    def __init__(self, stack):
        self.consul = stack.enter_context(simulator_process("consul"))
        self.kong = stack.enter_context(
            simulator_process("kong", "--resolve", "*.service.consul=127.0.0.1"))
        self.vulcand = stack.enter_context(simulator_process("vulcand"))

    def settings(self):
        """The ``platform`` settings that point the registration core at them."""
        return {
            "platform:consul:url": self.consul["url"],
            "platform:vulcand:url": self.vulcand["url"],
            "platform:vulcand:etcd_url": self.vulcand["etcd"],
            "platform:kong:admin_url": self.kong["admin_url"],
        }


def request_summary(counts):
    """``{(system, method): n}`` as "<system> <n>" per system and the number of writes (etcd is
    only read, through POSTs)."""
    writes = sum(n for (system, method), n in counts.items() if method != "GET" and system != "etcd")
    per_system = "  ".join(
        f"{system} {sum(n for (name, _), n in counts.items() if name == system)}"
        for system in SYSTEMS if any(name == system for name, _ in counts)
    )
    return f"requests: {per_system} (writes {writes})"
