"""A lab killed mid-way leaves namespace, mounts, cgroups and processes behind; the next run
(here `./run hosts down`, which `up` and the fixture also start with) removes them all."""

import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from lab import image
from tests.realhosts.conftest import require_lab

pytestmark = pytest.mark.slow

LEFTOVER_LAB = "showcase-lab-killed"


def lab_command(*argv):
    environment = {**os.environ, "SHOWCASE_LAB_NAME": LEFTOVER_LAB}
    return subprocess.Popen([sys.executable, "-m", "lab", *argv], cwd=image.REPO_ROOT, env=environment,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def traces():
    """What of the killed lab exists on the machine."""
    state = image.CACHE / "state" / LEFTOVER_LAB
    root = pathlib.Path("/sys/fs/cgroup")
    cgroups = [path for path in [root / LEFTOVER_LAB, *root.glob(f"*/{LEFTOVER_LAB}")] if path.is_dir()]
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        mounts = [line.split()[4] for line in handle if f"/{LEFTOVER_LAB}/" in line.split()[4]]
    processes = [pid for cgroup in cgroups for procs in cgroup.rglob("cgroup.procs")
                 for pid in procs.read_text().split()]
    return {
        "namespace": pathlib.Path(f"/run/netns/{LEFTOVER_LAB}").exists(),
        "mounts": mounts, "cgroups": cgroups, "processes": processes, "state": state.exists(),
    }


def test_the_next_run_removes_what_a_killed_run_left():
    require_lab()
    starting = lab_command("up")
    deadline = time.monotonic() + 300
    # Killed once a host is booting: its overlay mounted, its systemd-nspawn running.
    while not (traces()["mounts"] and traces()["processes"]):
        assert starting.poll() is None, "the lab exited before it was killed"
        assert time.monotonic() < deadline, "the lab's first host never started"
        time.sleep(0.2)
    os.killpg(starting.pid, signal.SIGKILL)
    starting.wait()
    left = traces()
    assert left["namespace"] and left["mounts"] and left["processes"], left
    assert lab_command("down").wait(timeout=120) == 0
    assert traces() == {"namespace": False, "mounts": [], "cgroups": [], "processes": [], "state": False}
