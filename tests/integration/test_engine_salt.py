"""The registrar engine configured in a real salt-master, followed through Salt events."""

import time

import pytest
import requests

from tests.conftest import REPO_ROOT, repo_config, repo_paths
from tests.fixtures.ports import listener_port

pytestmark = pytest.mark.slow

TIMEOUT = 10


@pytest.fixture(scope="module")
def engine_master(salt_factories, tmp_path_factory, consul, kong, vulcand, marathon):
    """A master whose configuration enables the engine, pointed at the test registries."""
    overrides = repo_paths(tmp_path_factory.mktemp("engine-pillar"))
    overrides["module_dirs"] = [str(REPO_ROOT / "salt")]
    overrides["engines"] = [
        {
            "marathon_registrar": {
                "marathon_url": marathon.url,
                "consul_url": consul.url,
                "consul_token": consul.token or "",
                "vulcand_url": vulcand.url,
                "vulcand_etcd_url": vulcand.etcd_url,
                "vulcand_etcd_prefix": vulcand.etcd_prefix,
                "kong_admin_url": kong.admin_url,
                "cluster": "saltengine",
                "resync_interval": 2,
            }
        }
    ]
    factory = salt_factories.salt_master_daemon(
        "engine-master", defaults=repo_config("master"), overrides=overrides
    )
    with factory.started():
        yield factory


def test_the_engine_in_a_master_registers_an_app_and_announces_it(
    engine_master, event_listener, consul_clean, kong_clean, vulcand_clean, marathon_clean
):
    # The engine resyncs on start: its first resync event shows it is running in the master.
    matched = event_listener.wait_for_events(
        [(engine_master.id, "marathon/registrar/resync")], timeout=60, after_time=0.0
    )
    assert matched.found_all_events, matched.missed

    port = listener_port()
    definition = {
        "id": "/salted",
        "cmd": "python3 -m simulators.webapp",
        "instances": 2,
        "labels": {"registry.service": "salted", "registry.port": str(port)},
    }
    reply = requests.post(f"{marathon_clean.url}/v2/apps", json=definition, timeout=TIMEOUT)
    reply.raise_for_status()

    matched = event_listener.wait_for_events(
        [(engine_master.id, "marathon/registrar/change/salted")], timeout=60
    )
    assert matched.found_all_events, matched.missed
    changes = next(iter(matched.matches)).data["changes"]
    assert "consul service salted" in changes

    # Both tasks end up registered (the first change may have seen only one running).
    deadline = time.monotonic() + 60
    while len(servers_of(vulcand_clean, "salted")) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    tasks = requests.get(f"{marathon_clean.url}/v2/apps/salted/tasks", timeout=TIMEOUT).json()
    assert servers_of(vulcand_clean, "salted") == {
        f"http://{task['host']}:{task['ports'][0]}" for task in tasks["tasks"]
    }


def servers_of(vulcand, backend):
    reply = requests.get(f"{vulcand.url}/v2/backends/{backend}/servers", timeout=TIMEOUT)
    reply.raise_for_status()
    return {server["URL"] for server in reply.json()["Servers"] or []}
