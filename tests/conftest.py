"""Shared test harness.

Real Salt daemons (pytest-salt-factories) configured from the repository's own configuration
(etc/salt), with file_roots ``salt/`` and pillar_roots ``pillar/``. The minion syncs the
project's custom modules with ``saltutil.sync_all``, exactly as an operator would.

Fixture modules in tests/fixtures/ (simulators, real etcd, moto) load as plugins, so every
test directory shares them.
"""

import ipaddress
import os
import pathlib
import socket
import sys

import pytest
import salt._logging.impl
import salt.utils.yaml
from saltfactories.plugins.event_listener import EventListener

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent

# The Salt loader puts salt/_utils (and, for engines, salt/_engines) on sys.path for the
# modules it loads; unit tests import those modules the same way.
sys.path[:0] = [str(REPO_ROOT / "salt" / "_utils"), str(REPO_ROOT / "salt" / "_engines")]

pytest_plugins = sorted(
    f"tests.fixtures.{path.stem}"
    for path in (REPO_ROOT / "tests" / "fixtures").glob("*.py")
    if path.stem != "__init__"
)

# The minion that runs the registrations, as on the seed's kong host.
GATEWAY_MINION_ID = "kong"


def repo_config(name):
    """Load one of the repository's Salt config files (etc/salt/<name>)."""
    with open(REPO_ROOT / "etc" / "salt" / name, encoding="utf-8") as handle:
        config = salt.utils.yaml.safe_load(handle)
    # The factories place runtime state and sockets themselves.
    for key in ("root_dir", "interface", "master", "id"):
        config.pop(key, None)
    return config


def repo_paths(extra_pillar_dir):
    """Absolute file/pillar roots: the daemons do not run from the repository root."""
    return {
        "file_roots": {"base": [str(REPO_ROOT / "salt")]},
        "pillar_roots": {"base": [str(REPO_ROOT / "pillar"), str(extra_pillar_dir)]},
    }


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    """Bind salt-factories' log server to loopback (its default is every interface); it
    starts at session start, after every plugin is configured."""
    log_server = config.pluginmanager.get_plugin("saltfactories-log-server")
    if log_server is not None:
        log_server.log_host = "127.0.0.1"


def pytest_unconfigure(config):
    """Drop the records Salt's deferred log handler still holds: its atexit flush would write
    them to pytest's stderr capture after it closed, burying the summary in tracebacks."""
    salt._logging.impl.shutdown_temp_handler()


_LOCAL_NAMES = {"localhost", socket.gethostname(), socket.getfqdn()}


@pytest.fixture(autouse=True, scope="session")
def names_resolve_to_this_machine_only():
    """Tests talk to loopback only: a lookup of any other name (a platform default such as
    ``etcd.service.consul`` that a test forgot to override) fails at once instead of asking
    a DNS server. This covers the test process; the daemons get explicit URLs."""
    resolve = socket.getaddrinfo

    def local_only(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if name is not None and name not in _LOCAL_NAMES:
            try:
                ipaddress.ip_address(name.split("%")[0])
            except ValueError:
                raise socket.gaierror(socket.EAI_NONAME, f"tests resolve no outside names: {name}") from None
        return resolve(host, *args, **kwargs)

    socket.getaddrinfo = local_only
    yield
    socket.getaddrinfo = resolve


@pytest.fixture(scope="session")
def repo_root():
    return REPO_ROOT


@pytest.fixture(scope="session")
def salt_factories_config(tmp_path_factory):
    # A private root per test session, so concurrent runs never share daemon state.
    return {
        "root_dir": str(tmp_path_factory.mktemp("salt")),
        "code_dir": str(REPO_ROOT),
        "inject_sitecustomize": False,
        "start_timeout": 120 if os.environ.get("CI") else 60,
    }


@pytest.fixture(scope="session")
def event_listener():
    """salt-factories' event listener, bound to loopback (its default is every interface)."""
    listener = EventListener()
    listener.host = "127.0.0.1"
    listener.address = f"tcp://{listener.host}:{listener.port}"
    with listener:
        yield listener


@pytest.fixture(scope="session")
def extra_pillar_dir(tmp_path_factory):
    """Second pillar root: holds ``local.sls``, which pillar/top.sls includes if present."""
    return tmp_path_factory.mktemp("pillar")


@pytest.fixture(scope="session")
def salt_master(salt_factories, extra_pillar_dir):
    overrides = repo_paths(extra_pillar_dir)
    overrides["module_dirs"] = [str(REPO_ROOT / "salt")]
    factory = salt_factories.salt_master_daemon(
        "master", defaults=repo_config("master"), overrides=overrides
    )
    with factory.started():
        yield factory


@pytest.fixture(scope="session")
def salt_minion(salt_master, extra_pillar_dir):
    overrides = repo_paths(extra_pillar_dir)
    overrides["grains"] = {"roles": ["kong"]}
    factory = salt_master.salt_minion_daemon(
        GATEWAY_MINION_ID, defaults=repo_config("minion"), overrides=overrides
    )
    with factory.started():
        ret = factory.salt_call_cli().run("saltutil.sync_all")
        assert ret.returncode == 0, ret
        factory.synced_modules = ret.data
        yield factory


@pytest.fixture(scope="session")
def salt_cli(salt_master):
    return salt_master.salt_cli(timeout=120)


@pytest.fixture(scope="session")
def salt_run_cli(salt_master):
    return salt_master.salt_run_cli(timeout=120)


@pytest.fixture(scope="session")
def salt_call_cli(salt_minion):
    return salt_minion.salt_call_cli(timeout=120)


class LocalPillar:
    """Writes the extra pillar file ``local.sls`` and refreshes the minion's pillar."""

    def __init__(self, directory, salt_call_cli):
        self.path = pathlib.Path(directory) / "local.sls"
        self.salt_call_cli = salt_call_cli

    def write(self, data):
        self.path.write_text(salt.utils.yaml.safe_dump(data, default_flow_style=False))
        self.refresh()

    def clear(self):
        self.path.unlink(missing_ok=True)
        self.refresh()

    def refresh(self):
        ret = self.salt_call_cli.run("saltutil.refresh_pillar", wait=True)
        assert ret.returncode == 0, ret


@pytest.fixture
def local_pillar(extra_pillar_dir, salt_call_cli):
    pillar = LocalPillar(extra_pillar_dir, salt_call_cli)
    yield pillar
    pillar.clear()
