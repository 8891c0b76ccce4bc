"""What the benchmarks share: the registries' simulators, each in a process of its own (as the
real servers are, so that the code measured does not share an interpreter lock with them), the
CPU time of those processes, and the summary of the HTTP requests a run sent."""

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
    """``python -m simulators NAME --port 0 ARGS`` running; yields the URLs it printed, and its
    process id as ``pid``."""
    child = subprocess.Popen(  # pylint: disable=consider-using-with
        [sys.executable, "-m", "simulators", name, "--port", "0", *args],
        stdout=subprocess.PIPE, cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        line = child.stdout.readline()
        if not line:
            raise SystemExit(f"the {name} simulator did not start (exit status {child.wait()})")
        yield {**json.loads(line), "pid": child.pid}
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

    def pids(self):
        """``{system: process id}`` of the simulators (etcd is the vulcand simulator's child)."""
        return {system: urls["pid"] for system, urls in
                (("consul", self.consul), ("kong", self.kong), ("vulcand", self.vulcand))}

    def settings(self):
        """The ``platform`` settings that point the registration core at them."""
        return {
            "platform:consul:url": self.consul["url"],
            "platform:vulcand:url": self.vulcand["url"],
            "platform:vulcand:etcd_url": self.vulcand["etcd"],
            "platform:kong:admin_url": self.kong["admin_url"],
        }


def proc_stat(path):
    """(command name, the fields after it) of a ``/proc/.../stat`` file."""
    with open(path, encoding="ascii") as stat:
        name, fields = stat.read().split(" (", 1)[1].rsplit(") ", 1)
    return name, fields.split()


def stat_cpu_seconds(fields):
    """User + system CPU seconds of :func:`proc_stat`'s fields."""
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(processes):
    """``{label: CPU seconds}`` used so far (user + system, every thread) by each process of
    ``processes`` (``{label: pid}``), and by their descendants under their command's name (the
    vulcand simulator's ``etcd``)."""
    parents, stats = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            name, fields = proc_stat(f"/proc/{entry}/stat")
        except OSError:  # ended meanwhile
            continue
        parents[int(entry)] = int(fields[1])
        stats[int(entry)] = name, stat_cpu_seconds(fields)
    labels = {pid: label for label, pid in processes.items()}
    found = dict.fromkeys(processes, 0.0)
    for process, (name, seconds) in stats.items():
        ancestor = process
        while ancestor not in labels and ancestor in parents:
            ancestor = parents[ancestor]
        if ancestor in labels:
            label = labels[ancestor] if ancestor == process else name
            found[label] = found.get(label, 0.0) + seconds
    return found


def cpu_summary(before, after):
    """The CPU seconds between two :func:`cpu_seconds`, largest first, e.g.
    ``CPU: vulcand 20.1 s, etcd 15.2 s, engine 9.3 s (44.6 s in all)``."""
    used = {label: after[label] - before.get(label, 0.0) for label in after}
    parts = ", ".join(f"{label} {seconds:.1f} s" for label, seconds in
                      sorted(used.items(), key=lambda item: -item[1]) if seconds >= 0.05)
    return f"CPU: {parts} ({sum(used.values()):.1f} s in all)"


def request_summary(counts):
    """``{(system, method): n}`` as "<system> <n>" per system and the number of writes (etcd is
    only read, through POSTs)."""
    writes = sum(n for (system, method), n in counts.items() if method != "GET" and system != "etcd")
    per_system = "  ".join(
        f"{system} {sum(n for (name, _), n in counts.items() if name == system)}"
        for system in SYSTEMS if any(name == system for name, _ in counts)
    )
    return f"requests: {per_system} (writes {writes})"
