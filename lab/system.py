"""The lab's footprint on the machine, and its removal: cgroups that hold every process the lab
starts, mounts under its state directory, its network namespace.

Everything the lab leaves is found from fixed places (the ``showcase-lab`` cgroups, mounts
under :data:`STATE`, the namespace :data:`NETNS`), never from a record a killed run may not
have written, so the next run removes what a killed run left behind.
"""

import errno
import os
import pathlib
import shutil
import subprocess
import time

from lab.image import CACHE

# One lab per name (SHOWCASE_LAB_NAME): the tests' lab and a developer's can run side by side.
NAME = os.environ.get("SHOWCASE_LAB_NAME", "showcase-lab")
NETNS = NAME
NETNS_PATH = pathlib.Path("/run/netns") / NETNS
STATE = CACHE / "state" / NAME
CGROUP_ROOT = pathlib.Path("/sys/fs/cgroup")
TOOL_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def cgroup_hierarchies():
    """Where the lab's cgroups live: cgroup2 (the unified hierarchy of a hybrid machine, or
    the root of a pure v2 one) and, on hybrid machines, systemd's named v1 hierarchy, which a
    container's systemd needs a cgroup of its own in too."""
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        return [CGROUP_ROOT / NAME]
    return [CGROUP_ROOT / "unified" / NAME, CGROUP_ROOT / "systemd" / NAME]


def join_cgroup(group):
    """preexec_fn: move the starting process into the lab's cgroup ``group`` (every
    hierarchy) before it executes, so all it starts is found there."""
    def join():
        for hierarchy in cgroup_hierarchies():
            directory = hierarchy / group
            directory.mkdir(parents=True, exist_ok=True)
            (directory / "cgroup.procs").write_text(str(os.getpid()))
    return join


def cgroup_pids(group):
    """Every process in the lab's cgroup ``group`` and below (the cgroup2 view)."""
    pids = []
    top = cgroup_hierarchies()[0] / group
    if not top.exists():
        return pids
    for directory, _, _ in os.walk(top):
        try:
            pids += [int(pid) for pid in (pathlib.Path(directory) / "cgroup.procs").read_text().split()]
        except FileNotFoundError:
            pass
    return pids


def kill_cgroup(group, timeout=10):
    """Kill every process of ``group`` (cgroup.kill where the kernel has it), wait for them to
    be gone and remove its cgroups, deepest first, in every hierarchy."""
    top = cgroup_hierarchies()[0] / group
    if (top / "cgroup.kill").exists():
        (top / "cgroup.kill").write_text("1")
    deadline = time.monotonic() + timeout
    while pids := cgroup_pids(group):
        for pid in pids:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes {pids} of the lab's cgroup {group} do not end")
        time.sleep(0.05)
    deadline = time.monotonic() + timeout
    for hierarchy in cgroup_hierarchies():
        root = hierarchy / group
        if not root.exists():
            continue
        for directory, _, _ in sorted(os.walk(root), key=lambda entry: -len(entry[0])):
            _remove_cgroup(directory, deadline)


def _remove_cgroup(directory, deadline):
    """rmdir a cgroup whose processes were killed: busy (EBUSY) until the kernel has released
    the last of them, a moment after cgroup.procs went empty."""
    while True:
        try:
            os.rmdir(directory)
            return
        except OSError as error:
            if error.errno != errno.EBUSY or time.monotonic() > deadline:
                raise
        time.sleep(0.05)


def lab_mounts(under=STATE):
    """Mount points under the state directory (or a directory in it), deepest first."""
    prefix = str(under) + "/"
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        for line in handle:
            point = line.split()[4].replace("\\040", " ")
            if point.startswith(prefix):
                points.append(point)
    return sorted(set(points), key=len, reverse=True)


def unmount_all(under=STATE):
    for point in lab_mounts(under):
        if subprocess.run(["umount", point], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", point], check=True)


def remove_all():
    """Remove every trace of a lab, running or killed: processes, cgroups, mounts, the
    namespace (and with it every veth and the bridge), the hosts' directories."""
    kill_cgroup("")
    unmount_all()
    if NETNS_PATH.exists():
        subprocess.run(["ip", "netns", "delete", NETNS], check=True)
    if STATE.exists():
        subprocess.run(["rm", "-rf", "--one-file-system", str(STATE)], check=True)


def in_netns(argv):
    """A command line run inside the lab's namespace (``nsenter --net``: unlike ``ip netns
    exec`` it leaves /sys alone)."""
    return ["nsenter", f"--net={NETNS_PATH}", "--", *argv]


def start(group, argv, log_name, env=None):
    """Start a long-running lab process in cgroup ``group``, detached from the caller (it
    outlives ``./run hosts up``), its output in the state directory."""
    logs = STATE / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / f"{log_name}.log", "ab") as output:
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=join_cgroup(group),
            env={"PATH": TOOL_PATH, **(env or {})},
        )


def missing_prerequisites():
    """What this machine lacks to run the lab, one phrase each (empty: it can)."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root")
    for tool in ("systemd-nspawn", "mmdebstrap", "socat", "dnsmasq", "nsenter", "ip", "gpg", "dpkg-deb"):
        if shutil.which(tool, path=TOOL_PATH) is None:
            missing.append(tool)
    return missing
