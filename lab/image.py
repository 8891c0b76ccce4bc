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
SALT_VERSION = "3008.4"
# Salt runs from a virtual environment, as the onedir packages lay it out.
SALT_PREFIX = "/opt/saltstack/salt"
# What every host has before Salt touches it: a booted systemd, Python for Salt, and the tools
# an operator's checks use (ss, dig, curl, nc).
IMAGE_PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "iproute2", "procps", "python3",
    "python3-venv", "ca-certificates", "curl", "bind9-dnsutils", "netcat-openbsd", "gnupg",
    "less", "unzip",
    # As on Debian's AMIs: the interface's lease comes from dhclient, which rewrites resolv.conf.
    "isc-dhcp-client",
)
CUSTOMIZE_HOOKS = (
    # Each host gets its own identity; addresses come from systemd-networkd; apt's timers
    # would race the states for the dpkg lock.
    'rm -f "$1"/etc/machine-id "$1"/etc/hostname',
    'chroot "$1" systemctl enable -q systemd-networkd',
    'chroot "$1" systemctl mask -q apt-daily.timer apt-daily-upgrade.timer',
    # Debian's AMIs' login user.
    'chroot "$1" useradd --create-home --shell /bin/bash admin',
)
# Salt's own units, as its packages install them (Type=simple: the wheel has no sd_notify).
SALT_UNIT = """[Unit]
Description=The Salt {daemon}
After=network-online.target
Wants=network-online.target

[Service]
KillMode=process
LimitNOFILE=100000
ExecStart=/usr/bin/{daemon}
Restart=on-failure

[Install]
WantedBy=multi-user.target
"""
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
    leaves only its .tmp directory, which the next one replaces)."""
    final = CACHE / f"{kind}-{key}"
    if final.exists():
        return final
    started = time.monotonic()
    log(f"building {what}")
    directory = _fresh_dir(CACHE / f"{kind}-{key}.tmp")
    build(directory)
    log(f"{what} built in {time.monotonic() - started:.0f} s")
    return _publish(directory, final)


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


def _salt_install_script(wheels):
    return (
        f"python3 -m venv {SALT_PREFIX} && "
        f"{SALT_PREFIX}/bin/pip install -q --no-index --find-links {wheels} salt=={SALT_VERSION} && "
        f"for tool in salt salt-call salt-key salt-master salt-minion salt-run; do "
        f"ln -sf {SALT_PREFIX}/bin/$tool /usr/bin/$tool; done"
    )


def image():
    """The unpacked Debian 12 root image with Salt installed (not enabled): every host boots
    an overlay of it."""
    mirrors = debian_mirrors()
    wheels = wheelhouse()
    sources = apt_sources(mirrors)
    key = _digest(IMAGE_PACKAGES, CUSTOMIZE_HOOKS, SALT_UNIT, CHRONY_DROP_IN,
                  _salt_install_script("W"), [line.split()[2:] for line in sources], wheels.name)
    return cached("image", key, f"the Debian {SUITE} host image",
                  lambda build: _build_image(build, sources, wheels))


def _build_image(build, sources, wheels):
    subprocess.run(
        ["mmdebstrap", "--quiet", "--variant=minbase", f"--include={','.join(IMAGE_PACKAGES)}",
         *(f"--customize-hook={hook}" for hook in CUSTOMIZE_HOOKS), SUITE, str(build), *sources],
        check=True,
    )
    # Salt from the wheelhouse, inside the image's own Python (chroot: the same interpreter the
    # hosts run).
    mount_point = build / "mnt" / "wheels"
    mount_point.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "--bind", str(wheels), str(mount_point)], check=True)
    try:
        subprocess.run(["chroot", str(build), "sh", "-ec", _salt_install_script("/mnt/wheels")],
                       check=True, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)
    (build / "etc" / "apt" / "sources.list").write_text("\n".join(sources) + "\n")
    # A host may not set the machine's clock (no CAP_SYS_TIME, as on any container host):
    # chrony runs but leaves the clock alone (-x).
    chrony = build / "etc" / "systemd" / "system" / "chrony.service.d"
    chrony.mkdir(parents=True)
    (chrony / "lab-clock.conf").write_text(CHRONY_DROP_IN)
    for daemon in ("salt-master", "salt-minion"):
        (build / "etc" / "systemd" / "system" / f"{daemon}.service").write_text(SALT_UNIT.format(daemon=daemon))
