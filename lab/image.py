"""The hosts' root image and the Salt wheelhouse, built once and cached by content hash.

The cache lives outside the checkout (``$SHOWCASE_LAB_CACHE``, default
``~/.cache/showcase-lab``), so a fresh clone on the same machine reuses it. Packages come from
the Debian mirror the machine's apt already uses, read from its sources at run time.
"""

import hashlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time
import urllib.parse

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
CACHE = pathlib.Path(os.environ.get("SHOWCASE_LAB_CACHE", "~/.cache/showcase-lab")).expanduser()
SUITE = "bookworm"
# A cache entry unused this long goes when a new one of its kind is built.
UNUSED_DAYS = 7
SALT_VERSION = "3008.4"
# Installs Salt from a wheelhouse as the deploy does (salt-cloud's deploy script in the lab):
# the image gets Salt the same way, for the hosts the lab lays out itself.
DEPLOY_SCRIPTS = REPO_ROOT / "lab" / "deploy.d"
SALT_DEPLOY_SCRIPT = DEPLOY_SCRIPTS / "salt-wheelhouse.sh"
# Where that script puts Salt (as the onedir packages lay it out), and what it adds to a host.
SALT_PREFIX = "/opt/saltstack/salt"
SALT_FILES = (SALT_PREFIX, *(f"/usr/bin/{tool}" for tool in (
    "salt", "salt-call", "salt-key", "salt-master", "salt-minion", "salt-run")),
    "/etc/systemd/system/salt-master.service", "/etc/systemd/system/salt-minion.service")
# What every host has before Salt touches it: a booted systemd, Python for Salt, and the tools
# an operator's checks use (ss, dig, curl, nc); as on Debian's AMIs, sshd and sudo for the
# deploy (nc too: salt-cloud's SSH gateway command on the bastion).
IMAGE_PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "iproute2", "procps", "python3",
    "python3-venv", "ca-certificates", "curl", "bind9-dnsutils", "netcat-openbsd", "gnupg",
    "less", "unzip", "openssh-server", "sudo",
    # As on Debian's AMIs: the interface's lease comes from dhclient, which rewrites resolv.conf.
    "isc-dhcp-client",
)
CUSTOMIZE_HOOKS = (
    # Each host gets its own identity (its SSH host keys too); addresses come from
    # systemd-networkd; apt's timers would race the states for the dpkg lock.
    'rm -f "$1"/etc/machine-id "$1"/etc/hostname "$1"/etc/ssh/ssh_host_*',
    'chroot "$1" systemctl enable -q systemd-networkd',
    'chroot "$1" systemctl mask -q apt-daily.timer apt-daily-upgrade.timer',
    # Throwaway hosts: dpkg's fsync after every file (seconds a package on the lab's overlays)
    # protects nothing a lab host keeps; Docker's Debian images skip it the same way.
    'echo force-unsafe-io > "$1"/etc/dpkg/dpkg.cfg.d/lab-unsafe-io',
    # sshd starts on the hosts the deploy logs in to (lab/provider.py): an AMI's host keys and
    # authorized key come from its first boot, which a host laid out by the lab has not.
    'chroot "$1" systemctl disable -q ssh.service',
    # Debian's AMIs' login user, with sudo without a password (as cloud-init sets it up).
    'chroot "$1" useradd --create-home --shell /bin/bash admin',
    'echo "admin ALL=(ALL) NOPASSWD:ALL" > "$1"/etc/sudoers.d/90-cloud-init-users',
)
CHRONY_DROP_IN = """[Unit]
ConditionCapability=

[Service]
ExecStart=
ExecStart=!/usr/sbin/chronyd $DAEMON_OPTS -x
"""
SOURCES_DIRS = ("/etc/apt/sources.list.d",)


def log(message):
    print(f"==> {message}", file=sys.stderr, flush=True)


def debian_mirrors():
    """The machine's Debian archive URIs by suite, from its deb822 apt sources (the only
    place the mirror's host name is known; never written into the repository)."""
    mirrors = {}
    for directory in SOURCES_DIRS:
        for path in sorted(pathlib.Path(directory).glob("*.sources")):
            for stanza in re.split(r"\n\s*\n", path.read_text()):
                fields = dict(re.findall(r"^(\S+):\s*(.*)$", stanza, re.M))
                if "debian-archive-keyring" not in fields.get("Signed-By", ""):
                    continue
                for suite in fields.get("Suites", "").split():
                    mirrors.setdefault(suite, fields["URIs"].split()[0])
    if SUITE not in mirrors:
        raise RuntimeError(
            f"no Debian {SUITE} source in {', '.join(SOURCES_DIRS)} (deb822 *.sources signed "
            "by debian-archive-keyring): the lab installs its packages from that mirror"
        )
    return mirrors


def apt_sources(mirrors):
    """sources.list lines for the hosts: the main suite, its updates and security."""
    lines = []
    for suite in (SUITE, f"{SUITE}-updates", f"{SUITE}-security"):
        if suite in mirrors:
            lines.append(f"deb {mirrors[suite]} {suite} main")
    return lines


def mirror_endpoints(mirrors):
    """(host, port) of every mirror, for the apt relay."""
    endpoints = set()
    for uri in mirrors.values():
        parsed = urllib.parse.urlsplit(uri)
        if parsed.scheme != "http":
            raise RuntimeError(f"the lab's apt relay speaks plain HTTP; the mirror {uri} does not")
        endpoints.add((parsed.hostname, parsed.port or 80))
    return sorted(endpoints)


def _digest(*parts):
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def _publish(build_dir, final):
    """Move a finished build into place atomically: a killed build leaves only a .tmp."""
    build_dir.rename(final)
    return final


def _fresh_dir(directory):
    if directory.exists():
        subprocess.run(["rm", "-rf", "--one-file-system", str(directory)], check=True)
    directory.mkdir(parents=True)
    return directory


def salt_requirements():
    """Salt and every dependency pinned as in requirements.txt (the test environment's
    lock): the hosts run exactly the Salt the tests run."""
    # setuptools (a Salt dependency) is one `pip freeze` leaves out of the lock: the version
    # Python 3.11's venv bundles, as in the test environment.
    return [f"salt=={SALT_VERSION}", "setuptools==65.5.0"], REPO_ROOT / "requirements.txt"


def project_name(name):
    """A distribution's normalized name (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def cached(kind, key, what, build):
    """CACHE/<kind>-<key>, made by ``build(directory)`` unless it exists (a killed build
    leaves only its .tmp directory, which the next one replaces). Each use marks the entry
    used; a new build removes the entries of its kind unused for ``UNUSED_DAYS`` (an image is
    some 600 MB, and every change of its packages or of Salt's pin makes a new one)."""
    final = CACHE / f"{kind}-{key}"
    if final.exists():
        os.utime(final)
        return final
    started = time.monotonic()
    log(f"building {what}")
    directory = _fresh_dir(CACHE / f"{kind}-{key}.tmp")
    build(directory)
    log(f"{what} built in {time.monotonic() - started:.0f} s")
    prune(kind)
    return _publish(directory, final)


def prune(kind, now=None):
    """Remove the cache entries of ``kind`` unused for ``UNUSED_DAYS``; returns their names."""
    cutoff = (now or time.time()) - UNUSED_DAYS * 86400
    removed = []
    for entry in sorted(CACHE.glob(f"{kind}-*")):
        if entry.suffix != ".tmp" and entry.is_dir() and entry.stat().st_mtime < cutoff:
            subprocess.run(["rm", "-rf", "--one-file-system", str(entry)], check=True)
            removed.append(entry.name)
    if removed:
        log(f"removed {len(removed)} {kind} cache entr{'y' if len(removed) == 1 else 'ies'} unused "
            f"for {UNUSED_DAYS} days: {', '.join(removed)}")
    return removed


def wheelhouse():
    """The Salt wheelhouse for the hosts (pip wheel on the machine: hosts have no index)."""
    requirements, constraints = salt_requirements()
    key = _digest(requirements, constraints.read_text(), sys.version_info[:2])
    return cached("wheelhouse", key, f"the Salt {SALT_VERSION} wheelhouse",
                  lambda build: _build_wheelhouse(build, requirements, constraints))


def _build_wheelhouse(build, requirements, constraints):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check",
         "-w", str(build), "-c", str(constraints), *requirements],
        check=True,
    )
    pinned = {project_name(requirement.split("==")[0]) for requirement in requirements} | {
        project_name(line.split("==")[0]) for line in constraints.read_text().splitlines() if "==" in line
    }
    for wheel in build.glob("*.whl"):
        if project_name(wheel.name.split("-")[0]) not in pinned:
            raise RuntimeError(f"{wheel.name} is not pinned in {constraints.name}")


def salt_deploy_arguments(wheels):
    """The deploy script's options installing this Salt from the wheelhouse at ``wheels``."""
    return ["-w", wheels, "-V", SALT_VERSION]


def salt_onedir_arguments(url):
    """The deploy script's options installing this Salt from the onedir archive at ``url``
    (the image's Salt, as lab/mirror.py archives it)."""
    return ["-O", url, "-V", SALT_VERSION]


def image():
    """The unpacked Debian 12 root image with Salt installed (not enabled): every host boots
    an overlay of it."""
    mirrors = debian_mirrors()
    wheels = wheelhouse()
    sources = apt_sources(mirrors)
    key = _digest(IMAGE_PACKAGES, CUSTOMIZE_HOOKS, CHRONY_DROP_IN, SALT_DEPLOY_SCRIPT.read_text(),
                  salt_deploy_arguments("W"), [line.split()[2:] for line in sources], wheels.name)
    return cached("image", key, f"the Debian {SUITE} host image",
                  lambda build: _build_image(build, sources, wheels))


def _build_image(build, sources, wheels):
    subprocess.run(
        ["mmdebstrap", "--quiet", "--variant=minbase", f"--include={','.join(IMAGE_PACKAGES)}",
         *(f"--customize-hook={hook}" for hook in CUSTOMIZE_HOOKS), SUITE, str(build), *sources],
        check=True,
    )
    # Salt from the wheelhouse, inside the image's own Python (chroot: the same interpreter the
    # hosts run), installed by the deploy script without starting anything.
    mount_point = build / "mnt" / "wheels"
    mount_point.mkdir(parents=True, exist_ok=True)
    script = build / "mnt" / SALT_DEPLOY_SCRIPT.name
    shutil.copy(SALT_DEPLOY_SCRIPT, script)
    subprocess.run(["mount", "--bind", str(wheels), str(mount_point)], check=True)
    try:
        subprocess.run(["chroot", str(build), "sh", "-ec",
                        f"sh /mnt/{script.name} {' '.join(salt_deploy_arguments('/mnt/wheels'))} -X; "
                        # Compiled once here, for every host booting the image.
                        f"{SALT_PREFIX}/bin/python3 -m compileall -q {SALT_PREFIX}/lib"],
                       check=True, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)
        script.unlink()
    (build / "etc" / "apt" / "sources.list").write_text("\n".join(sources) + "\n")
    # A host may not set the machine's clock (no CAP_SYS_TIME, as on any container host):
    # chrony runs but leaves the clock alone (-x).
    chrony = build / "etc" / "systemd" / "system" / "chrony.service.d"
    chrony.mkdir(parents=True)
    (chrony / "lab-clock.conf").write_text(CHRONY_DROP_IN)
