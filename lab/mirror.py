"""The lab's mirror: what this machine cannot fetch, as stand-ins with the real names,
versions and file layout, served inside the namespace on the resolver address (port 80).

- files: Consul's release zip and SHA256SUMS (HashiCorp's layout), Weave's launcher script;
- signed apt repositories (a lab key): Kong's gateway-39 with ``kong``, AVENTER's with
  ``aventer-mesos``;
- the Salt wheelhouse (``salt/wheels/``), and the image's Salt installed from it as a onedir
  archive (``salt/onedir/``, the layout of Salt's onedir packages), which the lab's deploy
  script installs from;
- more below as the formulas need them.

The stand-ins' payloads are in lab/standins/ (simulators/ inside). Built once per content
hash into the cache; served by ``python -m lab.mirror DIR ADDRESS PORT``.
"""

import functools
import hashlib
import os
import http.server
import pathlib
import shutil
import subprocess
import sys
import tempfile
import zipapp
import zipfile

from lab import image, network, system

PORT = 80
URL = f"http://{network.RESOLVER}"
REGISTRY = network.RESOLVER
CONSUL_VERSION = "1.21.5"
WEAVE_VERSION = "2.8.1"
SOURCES = ("lab/__init__.py", "lab/standins", "simulators")
WHEELS = "salt/wheels"
ONEDIR = f"salt/onedir/salt-{image.SALT_VERSION}-onedir-linux-x86_64.tar"
ZIPAPP_REQUIREMENTS = {"requests", "urllib3", "idna", "certifi", "charset-normalizer"}


def _sources_digest():
    digest = hashlib.sha256(pathlib.Path(__file__).read_bytes())
    for source in SOURCES:
        path = image.REPO_ROOT / source
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(str(file.relative_to(image.REPO_ROOT)).encode() + file.read_bytes())
    return digest.hexdigest()[:16]


def _zipapp(target, entry_point):
    """An executable zip of the stand-ins and the simulators (standard library only)."""
    with tempfile.TemporaryDirectory() as staging:
        for source in SOURCES:
            path = image.REPO_ROOT / source
            copy = shutil.copytree if path.is_dir() else shutil.copy
            (pathlib.Path(staging) / source).parent.mkdir(parents=True, exist_ok=True)
            copy(path, pathlib.Path(staging) / source, **({"ignore": shutil.ignore_patterns("__pycache__")} if path.is_dir() else {}))
        # simulators/etcd.py speaks to etcd with requests: it travels along, from the wheelhouse.
        for wheel in sorted(image.wheelhouse().glob("*.whl")):
            if image.project_name(wheel.name.split("-")[0]) in ZIPAPP_REQUIREMENTS:
                with zipfile.ZipFile(wheel) as archive:
                    archive.extractall(staging)
        zipapp.create_archive(staging, target, interpreter="/usr/bin/python3", main=entry_point)
    target.chmod(0o755)


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_consul(root):
    """releases/consul/<v>/consul_<v>_linux_amd64.zip (one file, ``consul``) + SHA256SUMS."""
    release = root / "consul" / CONSUL_VERSION
    release.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as staging:
        binary = pathlib.Path(staging) / "consul"
        _zipapp(binary, "lab.standins.consul:main")
        archive = release / f"consul_{CONSUL_VERSION}_linux_amd64.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
            info = zipfile.ZipInfo("consul", date_time=(2025, 9, 1, 0, 0, 0))
            info.external_attr = 0o100755 << 16
            bundle.writestr(info, binary.read_bytes(), zipfile.ZIP_DEFLATED)
    (release / f"consul_{CONSUL_VERSION}_SHA256SUMS").write_text(f"{_sha256(archive)}  {archive.name}\n")


def build_weave(root):
    """weave/v<v>/weave: the launcher script's release-download layout."""
    release = root / "weave" / f"v{WEAVE_VERSION}"
    release.mkdir(parents=True)
    _zipapp(release / "weave", "lab.standins.weave:main")


def repo_pillar(root, repo):
    """A formula's `repo` pillar for one of the mirror's apt repositories."""
    path, key_file = repo
    return {"url": f"{URL}/{path}", "suite": SUITE, "components": ["main"],
            "key_url": f"{URL}/{path}/{key_file}",
            "key_fingerprint": (root / "lab-key.fingerprint").read_text()}


def wheels_url():
    return f"{URL}/{WHEELS}/"


def onedir_url():
    return f"{URL}/{ONEDIR}"


def build_salt_onedir(root, host_image):
    """The image's Salt (the deploy script installed it from the wheelhouse, compiled) as one
    archive: a deploy unpacks it in seconds, where pip takes a busy host most of a minute.
    Not compressed: it travels over the lab's own network."""
    target = root / ONEDIR
    target.parent.mkdir(parents=True)
    subprocess.run(["tar", "-C", str(host_image), "-cf", str(target), image.SALT_PREFIX.lstrip("/")], check=True)


def image_name(name):
    return f"{REGISTRY}/{name}"


def weave_url():
    return f"{URL}/weave/v{WEAVE_VERSION}/weave"


def sha256_of(root, url):
    """The sha256 of a file the mirror serves at ``url``."""
    return _sha256(root / url[len(URL) + 1:])


KONG_VERSION = "3.9.3"
MESOS_VERSION = "1.11.0-0.9.0.debian12"
# Apt repositories, laid out as the vendors' (path under the mirror, suite, key file).
KONG_REPO = ("kong/gateway-39/deb/debian", "gpg.B9DCD032B1696A89.key")
MESOS_REPO = ("aventer/Debian", "support_aventer.asc")
SUITE = "bookworm"
# The stand-ins' own needs (the real packages' dependencies differ).
PACKAGES = {
    KONG_REPO: [{
        "Package": "kong", "Version": KONG_VERSION, "Depends": "python3, postgresql-client",
        "Description": "Kong Gateway (lab stand-in: the project's Kong simulator)",
        "files": {"usr/local/bin/kong": "lab.standins.kong:main"},
        "directories": ["etc/kong", "usr/local/kong"],
    }],
    MESOS_REPO: [{
        "Package": "aventer-mesos", "Version": MESOS_VERSION, "Depends": "python3",
        "Description": "Clusterd Mesos (lab stand-in: health endpoints only)",
        "files": {"usr/bin/mesos-master": "lab.standins.mesos:master",
                  "usr/bin/mesos-agent": "lab.standins.mesos:agent"},
        "directories": [],
    }],
}


def _gpg(home, *argv, **kwargs):
    return subprocess.run(["gpg", "--batch", "--quiet", "--homedir", str(home), *argv],
                          check=True, capture_output=True, **kwargs)


def _deb(package, target_dir):
    with tempfile.TemporaryDirectory() as staging:
        tree = pathlib.Path(staging)
        for directory in package["directories"]:
            (tree / directory).mkdir(parents=True)
        for path, entry_point in package["files"].items():
            (tree / path).parent.mkdir(parents=True, exist_ok=True)
            _zipapp(tree / path, entry_point)
        (tree / "DEBIAN").mkdir()
        control = {key: value for key, value in package.items() if key[0].isupper()}
        control.update({"Architecture": "amd64", "Maintainer": "Showcase lab <lab@localhost>"})
        (tree / "DEBIAN" / "control").write_text("".join(f"{key}: {value}\n" for key, value in control.items()))
        deb = target_dir / f"{package['Package']}_{package['Version']}_amd64.deb"
        subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(tree), str(deb)],
                       check=True, capture_output=True)
        return deb, control


def build_apt_repository(root, home, repo, packages):
    """A signed apt repository: pool/, dists/<suite>/main/binary-amd64/Packages, Release,
    InRelease, and the signing key where the vendor publishes it."""
    path, key_file = repo
    base = root / path
    pool = base / "pool" / "main"
    pool.mkdir(parents=True)
    stanzas = []
    for package in packages:
        deb, control = _deb(package, pool)
        stanzas.append("".join(f"{key}: {value}\n" for key, value in control.items()) + (
            f"Filename: {deb.relative_to(base)}\nSize: {deb.stat().st_size}\nSHA256: {_sha256(deb)}\n"))
    index_dir = base / "dists" / SUITE / "main" / "binary-amd64"
    index_dir.mkdir(parents=True)
    index = index_dir / "Packages"
    index.write_text("\n".join(stanzas))
    release = base / "dists" / SUITE / "Release"
    release.write_text(
        f"Origin: Showcase lab\nSuite: {SUITE}\nCodename: {SUITE}\nArchitectures: amd64\n"
        f"Components: main\nDate: Mon, 01 Dec 2025 00:00:00 UTC\nSHA256:\n"
        f" {_sha256(index)} {index.stat().st_size} main/binary-amd64/Packages\n")
    _gpg(home, "--clearsign", "--output", str(release.with_name("InRelease")), str(release))
    (base / key_file).write_bytes(_gpg(home, "--armor", "--export").stdout)


def lab_key(home):
    """The lab's repository signing key (no expiry: the mirror is rebuilt with its sources)."""
    home.mkdir(mode=0o700)
    _gpg(home, "--passphrase", "", "--quick-gen-key", "Showcase lab mirror <lab@localhost>",
         "ed25519", "sign", "never")
    listing = _gpg(home, "--with-colons", "--list-keys", text=True).stdout
    return next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))


# Container images (name, tag, the stand-in's entry point in the image). vulcand's image runs
# `vulcand` (the formula's entrypoint) with the flags after the image.
IMAGES = [
    ("mesosphere/marathon", "v1.11.24", ["/usr/bin/python3", "/standin.pyz", "marathon"], None),
    ("webhippie/vulcand", "0.9", None, {"vulcand": "vulcand"}),
]
# What of the host image the stand-in images need: Python and its standard library.
PYTHON_FILES = ("usr/bin/python3", "usr/bin/python3.11", "usr/lib/python3.11")
PYTHON_SKIP = ("test", "idlelib", "tkinter", "ensurepip", "lib2to3", "pydoc_data", "__pycache__")
REGISTRY_MEDIA = {
    "manifest": "application/vnd.docker.distribution.manifest.v2+json",
    "config": "application/vnd.docker.container.image.v1+json",
    "layer": "application/vnd.docker.image.rootfs.diff.tar.gzip",
}


def _python_runtime(host_image):
    """Paths (relative to the image) of Python, its standard library and the shared libraries
    they load, as ldd in the image finds them."""
    paths = set()
    for top in PYTHON_FILES:
        path = host_image / top
        if path.is_dir():
            paths.update(
                str(item.relative_to(host_image)) for item in path.rglob("*")
                if not any(part in PYTHON_SKIP for part in item.relative_to(path).parts)
                and not item.is_dir()
            )
        else:
            paths.add(top)
    binaries = ["/usr/bin/python3.11"] + [f"/{p}" for p in paths if p.endswith(".so")]
    linked = subprocess.run(["chroot", str(host_image), "ldd", *binaries], capture_output=True, text=True).stdout
    libraries = [word for line in linked.splitlines() for word in line.split()
                 if word.startswith("/") and not word.endswith(":")]
    # /lib is a link to usr/lib (merged /usr) and sonames are links to files: the layer holds
    # the real directories, each soname link and the file it names (resolved in the image).
    resolved = subprocess.run(
        ["chroot", str(host_image), "sh", "-c",
         'for p; do echo "$(realpath -e "$(dirname "$p")")/$(basename "$p")"; realpath -e "$p"; done',
         "resolve", *sorted(set(libraries))],
        capture_output=True, text=True, check=True).stdout
    paths.update(line.lstrip("/") for line in resolved.splitlines() if line)
    return sorted(paths)


def _blob(blobs, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return {"size": len(data), "digest": digest}


def build_images(root, host_image):
    """Images in a registry layout the mirror serves (Docker Registry HTTP API v2, read only):
    v2/<name>/manifests/<tag> and blobs/<digest>. One layer: Python, the stand-ins."""
    import gzip
    import io
    import json
    import tarfile

    blobs = root / "registry" / "blobs"
    blobs.mkdir(parents=True)
    runtime = _python_runtime(host_image)
    with tempfile.TemporaryDirectory() as staging:
        standin = pathlib.Path(staging) / "standin.pyz"
        _zipapp(standin, "lab.standins.containers:main")
        for name, tag, entrypoint, links in IMAGES:
            raw = io.BytesIO()
            with tarfile.open(fileobj=raw, mode="w") as layer:
                for link, target in (("bin", "usr/bin"), ("lib", "usr/lib"), ("lib64", "usr/lib64")):
                    info = tarfile.TarInfo(link)
                    info.type, info.linkname = tarfile.SYMTYPE, target
                    layer.addfile(info)
                for path in runtime:
                    layer.add(host_image / path, arcname=path, recursive=False)
                layer.add(standin, arcname="standin.pyz")
                for program, command in (links or {}).items():
                    script = f"#!/bin/sh\nexec /usr/bin/python3 /standin.pyz {command} \"$@\"\n".encode()
                    info = tarfile.TarInfo(f"usr/local/bin/{program}")
                    info.size, info.mode = len(script), 0o755
                    layer.addfile(info, io.BytesIO(script))
                for program in ("sh",):
                    layer.add(host_image / "usr/bin/dash", arcname=f"usr/bin/{program}")
            diff_id = "sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()
            layer_blob = _blob(blobs, gzip.compress(raw.getvalue(), mtime=0))
            config = {
                "architecture": "amd64", "os": "linux",
                "config": {"Env": ["PATH=/usr/local/bin:/usr/bin"], "Entrypoint": entrypoint},
                "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                "history": [{"created_by": "lab stand-in (showcase lab mirror)"}],
            }
            config_blob = _blob(blobs, json.dumps(config).encode())
            manifest = json.dumps({
                "schemaVersion": 2, "mediaType": REGISTRY_MEDIA["manifest"],
                "config": {"mediaType": REGISTRY_MEDIA["config"], **config_blob},
                "layers": [{"mediaType": REGISTRY_MEDIA["layer"], **layer_blob}],
            }).encode()
            manifests = root / "registry" / "v2" / name / "manifests"
            manifests.mkdir(parents=True)
            (manifests / tag).write_bytes(manifest)
            (manifests / ("sha256:" + hashlib.sha256(manifest).hexdigest())).write_bytes(manifest)


def build(host_image):
    return image.cached("mirror", f"{_sources_digest()}-{host_image.name}", "the lab's mirror",
                        lambda root: _build(root, host_image))


def _build(root, host_image):
    # Hard links: the wheelhouse is in the same cache (the host image's key includes its name).
    shutil.copytree(image.wheelhouse(), root / WHEELS, copy_function=os.link)
    build_salt_onedir(root, host_image)
    build_consul(root)
    build_weave(root)
    with tempfile.TemporaryDirectory() as staging:
        home = pathlib.Path(staging) / "gnupg"
        (root / "lab-key.fingerprint").write_text(lab_key(home))
        for repo, packages in PACKAGES.items():
            build_apt_repository(root, home, repo, packages)
    build_images(root, host_image)


def start(root):
    system.start("infra", system.in_netns([sys.executable, "-m", "lab.mirror", str(root),
                                           network.RESOLVER, str(PORT)]), "mirror",
                 env={"PYTHONPATH": str(image.REPO_ROOT)})


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Files as they are; /v2/ as a read-only registry (``docker pull``)."""

    def send_head(self):
        path = self.path.split("?", 1)[0]
        if not path.startswith("/v2/"):
            return super().send_head()
        root = pathlib.Path(self.directory) / "registry"
        if path == "/v2/":
            return self._send(b"{}", "application/json")
        name, kind, reference = path[4:].rsplit("/", 2)
        if kind == "manifests":
            file = root / "v2" / name / "manifests" / reference
            media = REGISTRY_MEDIA["manifest"]
        elif kind == "blobs":
            file = root / "blobs" / reference
            media = "application/octet-stream"
        else:
            file = None
        if file is None or not file.is_file() or ".." in path:
            self.send_error(404)
            return None
        data = file.read_bytes()
        return self._send(data, media, digest="sha256:" + hashlib.sha256(data).hexdigest())

    def _send(self, data, media, digest=None):
        import io

        self.send_response(200)
        self.send_header("Content-Type", media)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        if digest:
            self.send_header("Docker-Content-Digest", digest)
        self.end_headers()
        return io.BytesIO(data)

    def log_message(self, format, *args):  # noqa: A002 - the base class names it so
        sys.stderr.write("%s %s\n" % (self.address_string(), format % args))


def main(argv):
    root, address, port = argv
    handler = functools.partial(_Handler, directory=root)
    http.server.ThreadingHTTPServer((address, int(port)), handler).serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
