"""
Debian's decK (the `deck` package, installed by ./run) against the Kong stand-in: it reads a
whole Kong configuration, so every Kong 3.x entity collection must answer (an empty,
paginated list where nothing is stored), and ping, dump, diff and sync must work as against
Kong. Runs unchanged against a real Kong when KONG_ADMIN_URL points at one.
"""

import shutil
import subprocess

import pytest
import requests
import salt.utils.yaml

from simulators.kong import UNSTORED_COLLECTIONS

TIMEOUT = 10
STATE = {
    "_format_version": "1.1",
    "services": [
        {
            "name": "web",
            "host": "vulcand.service.consul",
            "port": 10000,
            "protocol": "http",
            "routes": [{"name": "web", "hosts": ["web.service.consul"], "preserve_host": True}],
        }
    ],
    "upstreams": [{"name": "web-upstream", "targets": [{"target": "10.0.12.5:31000"}]}],
    "consumers": [{"username": "ops"}],
    "plugins": [{"name": "key-auth"}],
}


def _deck(kong, *args):
    binary = shutil.which("deck")
    assert binary, "decK is missing: ./run setup installs Debian's deck package"
    result = subprocess.run(
        [binary, *args, "--kong-addr", kong.admin_url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result
    return result.stdout


def _list(kong, path):
    reply = requests.get(f"{kong.admin_url}{path}", timeout=TIMEOUT)
    assert reply.status_code == 200, reply.text
    return reply.json()


@pytest.mark.parametrize("collection", UNSTORED_COLLECTIONS)
def test_every_entity_collection_answers_an_empty_paginated_list(kong_clean, collection):
    assert _list(kong_clean, f"/{collection}") == {"data": [], "next": None}
    assert _list(kong_clean, f"/{collection}?size=1") == {"data": [], "next": None}
    reply = requests.get(f"{kong_clean.admin_url}/{collection}?size=0", timeout=TIMEOUT)
    assert reply.status_code == 400, reply.text


def test_consumer_credentials_of_unmanaged_plugins_list_empty_for_known_consumers(kong_clean):
    requests.post(
        f"{kong_clean.admin_url}/consumers", json={"username": "ops"}, timeout=TIMEOUT
    ).raise_for_status()
    for collection in ("acls", "hmac-auth", "jwt", "oauth2"):
        assert _list(kong_clean, f"/consumers/ops/{collection}") == {"data": [], "next": None}
    reply = requests.get(f"{kong_clean.admin_url}/consumers/nobody/acls", timeout=TIMEOUT)
    assert reply.status_code == 404


def test_the_simulator_refuses_to_store_what_it_only_lists(kong_sim):
    reply = requests.post(
        f"{kong_sim.admin_url}/certificates", json={"cert": "x", "key": "y"}, timeout=TIMEOUT
    )
    assert reply.status_code == 405
    assert reply.json() == {
        "message": "The Kong simulator lists certificates (always empty) but stores none"
    }


def test_deck_pings_dumps_syncs_and_diffs(kong_clean, tmp_path):
    kong = kong_clean
    assert "Successfully connected to Kong!" in _deck(kong, "ping")

    empty = tmp_path / "empty.yaml"
    _deck(kong, "dump", "-o", str(empty))
    assert salt.utils.yaml.safe_load(empty.read_text()) == {"_format_version": "1.1"}

    state = tmp_path / "kong.yaml"
    state.write_text(salt.utils.yaml.safe_dump(STATE))
    planned = _deck(kong, "diff", "-s", str(state))
    assert "Created: 6" in planned
    assert _list(kong, "/services")["data"] == [], "diff writes nothing"

    assert "Created: 6" in _deck(kong, "sync", "-s", str(state))
    (service,) = _list(kong, "/services")["data"]
    assert (service["name"], service["host"], service["port"]) == (
        "web", "vulcand.service.consul", 10000
    )
    (route,) = _list(kong, f"/services/{service['id']}/routes")["data"]
    assert (route["hosts"], route["preserve_host"]) == (["web.service.consul"], True)
    (upstream,) = _list(kong, "/upstreams")["data"]
    (target,) = _list(kong, f"/upstreams/{upstream['id']}/targets")["data"]
    assert target["target"] == "10.0.12.5:31000"
    assert [c["username"] for c in _list(kong, "/consumers")["data"]] == ["ops"]
    assert [p["name"] for p in _list(kong, "/plugins")["data"]] == ["key-auth"]

    dumped = tmp_path / "dumped.yaml"
    _deck(kong, "dump", "-o", str(dumped))
    dump = salt.utils.yaml.safe_load(dumped.read_text())
    assert [s["name"] for s in dump["services"]] == ["web"]
    assert [r["name"] for r in dump["services"][0]["routes"]] == ["web"]
    assert dump["upstreams"][0]["targets"][0]["target"] == "10.0.12.5:31000"
    assert [c["username"] for c in dump["consumers"]] == ["ops"]
    assert [p["name"] for p in dump["plugins"]] == ["key-auth"]
    # decK 1.4 (Debian's) predates some Kong 3 fields, so its diff after a sync may still
    # list defaults it does not know; it must plan no creation and no deletion.
    again = _deck(kong, "diff", "-s", str(dumped))
    assert "Created: 0" in again and "Deleted: 0" in again

    # What the file no longer declares, sync deletes (the upstream with its target).
    state.write_text(salt.utils.yaml.safe_dump({**STATE, "consumers": [], "upstreams": []}))
    assert "Deleted: 3" in _deck(kong, "sync", "-s", str(state))
    assert _list(kong, "/consumers")["data"] == [] and _list(kong, "/upstreams")["data"] == []
