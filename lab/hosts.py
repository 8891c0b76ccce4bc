"""One lab host: a Debian 12 system booted by systemd-nspawn (systemd as PID 1) on a volatile
overlay of the image, attached to the lab's bridge, in cgroups of its own.

``machinectl`` and ``systemd-run -M`` need a machine booted with systemd; the lab does
without: a host is entered with ``nsenter`` into its systemd's namespaces, found through
its cgroup, so any process (a test, ``./run hosts shell``) can reach a running host.
"""

import os
import pathlib
import stat
import subprocess
import time
import uuid

from lab import network, system

HOSTS_DIR = system.STATE / "hosts"
BOOT_TIMEOUT = 60
CLEAN_ENV = ["env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
             "LANG=C.UTF-8", "HOME=/root", "TERM=xterm"]


class HostError(RuntimeError):
    pass


class Host:
    def __init__(self, name, address, subnet):
        self.name, self.address, self.subnet = name, address, subnet
        self.directory = HOSTS_DIR / name
        self.root = self.directory / "root"
        self.group = f"host-{name}"

    def __repr__(self):
        return f"Host({self.name}, {self.address})"

    # --- creation -------------------------------------------------------------------------
    def mount(self, image, hidden=()):
        """The host's root: an overlay of ``image`` without the paths ``hidden``."""
        for part in ("upper", "work", "root", "docker"):
            (self.directory / part).mkdir(parents=True, exist_ok=True)
        for path in hidden:
            # An overlay whiteout, made in the upper layer before mounting: the path is gone
            # at once, however many files the image has under it.
            whiteout = self.directory / "upper" / path.lstrip("/")
            whiteout.parent.mkdir(parents=True, exist_ok=True)
            os.mknod(whiteout, stat.S_IFCHR | 0o000, os.makedev(0, 0))
        # volatile: nothing is synced, so unmounting is instant (the upper dir is disposable).
        subprocess.run(
            ["mount", "-t", "overlay", "overlay", "-o",
             f"lowerdir={image},upperdir={self.directory / 'upper'},"
             f"workdir={self.directory / 'work'},volatile", str(self.root)],
            check=True,
        )

    def write(self, path, text, mode=0o644, owner=None):
        """Write a file of the (not yet booted) host; ``owner``: a user of the host's image."""
        target = self.root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(mode)
        if owner is not None:  # the file and the directories made for it in the user's home
            uid, gid = self.user_ids(owner)
            home = self.root / "home" / owner
            for path in [target, *target.parents]:
                if path == home or home not in path.parents:
                    break
                os.chown(path, uid, gid)

    def user_ids(self, user):
        for line in (self.root / "etc" / "passwd").read_text().splitlines():
            name, _, uid, gid = line.split(":")[:4]
            if name == user:
                return int(uid), int(gid)
        raise HostError(f"{self.name}: no user {user} in the image")

    def enable(self, unit, target="multi-user.target"):
        """``systemctl enable`` before boot: the symlink the unit's [Install] section makes."""
        wants = self.root / "etc" / "systemd" / "system" / f"{target}.wants"
        wants.mkdir(parents=True, exist_ok=True)
        link = wants / unit
        if not link.is_symlink():
            link.symlink_to(f"/etc/systemd/system/{unit}")

    def configure(self, apt_proxies):
        """Identity, address and resolver as the VPC gives them, apt through the relay."""
        self.write("/etc/hostname", f"{self.name}\n")
        self.write("/etc/machine-id", uuid.uuid4().hex + "\n", 0o444)
        self.write("/etc/hosts", "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n")
        self.write("/etc/systemd/network/10-host0.network", (
            "[Match]\nName=host0\n\n[Network]\n"
            f"Address={self.address}/24\nGateway={network.router(self.subnet)}\n"
            "LinkLocalAddressing=no\nIPv6AcceptRA=no\n"
        ))
        self.write("/etc/resolv.conf", network.resolv_conf())
        self.write("/etc/apt/apt.conf.d/80lab-relay", "".join(
            f'Acquire::http::Proxy::{host} "{url}";\n' for host, url in apt_proxies.items()
        ))

    def boot(self):
        """Start the host's systemd (not waiting for it: see :meth:`wait_running`)."""
        argv = [
            "systemd-nspawn", "--boot", "--quiet", f"--directory={self.root}",
            f"--machine={self.name}", "--register=no", "--keep-unit", "--resolv-conf=off",
            "--timezone=off", "--link-journal=no", "--console=passive",
            f"--network-bridge={network.BRIDGE}",
            # Docker's layers on the machine's file system (overlay2 cannot stack on overlay).
            f"--bind={self.directory / 'docker'}:/var/lib/docker",
            # Docker inside: runc gives each container a session keyring and its device rules
            # as a cgroup BPF program.
            "--system-call-filter=@keyring bpf", "--capability=CAP_BPF",
        ]
        # The host sees cgroup v2 alone: its v1 controllers would be read-only (a hybrid
        # machine's), and Docker inside could not create its cgroups.
        system.start(self.group, system.in_netns(argv), self.name,
                     env={"SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1"})

    def remove(self):
        """Stop the host and remove it: its processes, mounts and directory."""
        system.kill_cgroup(self.group)
        system.unmount_all(under=self.directory)
        subprocess.run(["rm", "-rf", "--one-file-system", str(self.directory)], check=True)

    def restart(self, timeout=BOOT_TIMEOUT):
        """Reboot the host as an operator does, ``systemctl reboot`` on it: its systemd stops
        every service and systemd-nspawn ends; then boot it again on the same file system (the
        overlay keeps what the host wrote, as its disk would) and wait for it to be running."""
        self.run(["systemctl", "reboot"])
        deadline = time.monotonic() + timeout
        while system.cgroup_pids(self.group):
            if time.monotonic() > deadline:
                raise HostError(f"{self.name}: still shutting down {timeout} s after its reboot began")
            time.sleep(0.1)
        self.boot()
        self.wait_running(timeout)

    # --- running --------------------------------------------------------------------------
    def leader(self):
        """PID (machine's view) of the host's systemd: the process of its cgroup that is PID 1
        in its own PID namespace."""
        for pid in system.cgroup_pids(self.group):
            try:
                status = pathlib.Path(f"/proc/{pid}/status").read_text()
            except FileNotFoundError:
                continue
            nspids = next(line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:"))
            if len(nspids) > 1 and nspids[-1] == "1":
                return pid
        return None

    def command(self, argv):
        pid = self.leader()
        if pid is None:
            raise HostError(f"{self.name} is not running")
        return ["nsenter", "-t", str(pid), "-m", "-u", "-i", "-n", "-p", "-C", "-r", "-w",
                "--", *CLEAN_ENV, *argv]

    def run(self, argv, check=True, timeout=600, input=None):
        """Run a command on the host; returns the CompletedProcess (text). With ``check``, a
        failure raises HostError naming the host, the command and its output."""
        if isinstance(argv, str):
            argv = ["sh", "-c", argv]
        done = subprocess.run(self.command(argv), capture_output=True, text=True,
                              timeout=timeout, input=input)
        if check and done.returncode != 0:
            raise HostError(
                f"{self.name}: {' '.join(argv)} exited {done.returncode}\n{done.stdout}{done.stderr}"
            )
        return done

    def wait_running(self, timeout=BOOT_TIMEOUT):
        deadline = time.monotonic() + timeout
        while self.leader() is None:
            if time.monotonic() > deadline:
                raise HostError(f"{self.name}: systemd-nspawn did not start its systemd "
                                f"(see {system.STATE / 'logs' / self.name}.log)")
            time.sleep(0.05)
        while True:
            # "offline" until the host's systemd has its bus socket up.
            state = self.run(["timeout", str(timeout), "systemctl", "is-system-running", "--wait"],
                             check=False).stdout.strip()
            if state not in ("offline", "") or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if state != "running":
            failed = self.run(["systemctl", "--failed", "--no-legend"], check=False).stdout
            raise HostError(f"{self.name}: boot ended {state!r}; failed units:\n{failed}")
