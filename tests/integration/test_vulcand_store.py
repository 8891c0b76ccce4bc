"""Reading vulcand from its etcd v3 store: the same facts as vulcand's API, every object in one
request however many there are (read again: what changed since), and a clear refusal when the
store is not vulcand's.

Against the vulcand simulator on a real etcd, or a real vulcand (``VULCAND_URL``) with its
store (``VULCAND_ETCD_URL``, ``VULCAND_ETCD_PREFIX``; these tests skip without it).
"""

import json

import httpclientutil
import pytest
import registrationutil as reg
import requests
from apiclientutil import VulcandStore
from salt.exceptions import CommandExecutionError

from simulators.etcd import free_port

OWNER = reg.Owner("storetest", "pillar")
TIMEOUT = 10


@pytest.fixture
def vulcand_with_store(vulcand_clean):
    if not vulcand_clean.etcd_url:
        pytest.skip("needs vulcand's etcd store (set VULCAND_ETCD_URL for a real vulcand)")
    return vulcand_clean


def registries(vulcand, consul, kong, etcd_url=None, etcd_prefix=None):
    settings = {
        "platform:consul:url": consul.url,
        "platform:consul:token": consul.token or "",
        "platform:kong:admin_url": kong.admin_url,
        **vulcand.flat_settings(),
    }
    if etcd_url is not None:
        settings["platform:vulcand:etcd_url"] = etcd_url
    if etcd_prefix is not None:
        settings["platform:vulcand:etcd_prefix"] = etcd_prefix
    return reg.Registries.from_config(lambda key, default: settings.get(key, default))


def desired(count):
    return {
        f"svc{index}": reg.ServiceSpec(
            name=f"svc{index}", port=20000 + index,
            instances={f"svc{index}-{n}": ("10.1.0.1", 31000 + n) for n in range(index % 4)},
        )
        for index in range(count)
    }


def post(vulcand, path, body):
    requests.post(f"{vulcand.url}{path}", json=body, timeout=TIMEOUT).raise_for_status()


def listed(vulcand, path, key):
    return requests.get(f"{vulcand.url}{path}", timeout=TIMEOUT).json()[key]


def test_every_object_in_one_read_and_paged_at_one_revision(vulcand_with_store, monkeypatch):
    vulcand = vulcand_with_store
    post(vulcand, "/v2/backends", {"Backend": {"Id": "empty", "Type": "http"}})
    for backend in ("b1", "b10"):  # b1 is a prefix of b10: neither may see the other's servers
        post(vulcand, "/v2/backends", {"Backend": {"Id": backend, "Type": "http"}})
        for index in range(3):
            post(vulcand, f"/v2/backends/{backend}/servers",
                 {"Server": {"Id": f"{backend}-s{index}", "URL": f"http://10.0.0.{index}:80"}})
    post(vulcand, "/v2/hosts", {"Host": {"Name": "b1.example", "Settings": {}}})
    post(vulcand, "/v2/frontends", {"Frontend": {
        "Id": "b1", "Type": "http", "BackendId": "b1", "Route": 'Host("b1.example")',
        "Settings": {"Hostname": "b1.example"}}})
    post(vulcand, "/v2/listeners", {"Listener": {
        "Id": "b1", "Protocol": "http", "Address": {"Network": "tcp", "Address": "0.0.0.0:0"}}})
    store = VulcandStore(vulcand.etcd_url, vulcand.etcd_prefix)
    httpclientutil.REQUEST_COUNTER.reset()
    stored = store.objects()
    assert httpclientutil.REQUEST_COUNTER.snapshot() == {("etcd", "POST"): 1}
    assert stored["servers"] == {
        backend: listed(vulcand, f"/v2/backends/{backend}/servers", "Servers")
        for backend in ("empty", "b1", "b10")
    }
    by_id = {collection: {entry.get("Id") or entry["Name"]: entry for entry in entries}
             for collection, entries in stored.items() if collection != "servers"}
    assert set(by_id["backends"]) == {"empty", "b1", "b10"}
    # The fields the registration core compares are those vulcand's API lists.
    host, = listed(vulcand, "/v2/hosts", "Hosts")
    assert by_id["hosts"] == {"b1.example": {**by_id["hosts"]["b1.example"], "Name": host["Name"]}}
    frontend, = listed(vulcand, "/v2/frontends", "Frontends")
    for field in ("Type", "BackendId", "Route"):
        assert by_id["frontends"]["b1"][field] == frontend[field]
    assert by_id["frontends"]["b1"]["Settings"]["Hostname"] == "b1.example"
    listener, = listed(vulcand, "/v2/listeners", "Listeners")
    assert by_id["listeners"]["b1"]["Address"] == listener["Address"]
    # Only the fields asked for are kept, a nested one by its path.
    trimmed = VulcandStore(vulcand.etcd_url, vulcand.etcd_prefix,
                           fields={"frontends": ["Route", "Settings.Hostname"]}).objects()
    assert trimmed["frontends"] == [{"Id": "b1", "Route": 'Host("b1.example")',
                                     "Settings": {"Hostname": "b1.example"}}]

    # Three keys a page: a server added between two pages is not half-seen.
    monkeypatch.setattr(VulcandStore, "PAGE_SIZE", 3)
    pages = store._range(store.backends_prefix)
    first = [next(pages) for _ in range(3)]
    # b1-z sorts after the first page's last key: read at a later revision, page two has it.
    post(vulcand, "/v2/backends/b1/servers", {"Server": {"Id": "b1-z", "URL": "http://10.0.0.9:80"}})
    keys = [key for key, _ in first + list(pages)]
    assert len(keys) == 3 + 6  # three backend keys and six servers, not b1-z
    assert not any(key.endswith("b1-z") for key in keys)
    assert "b1-z" in {server["Id"] for server in store.objects()["servers"]["b1"]}


def etcd_requests(read):
    httpclientutil.REQUEST_COUNTER.reset()
    result = read()
    return result, httpclientutil.REQUEST_COUNTER.snapshot().get(("etcd", "POST"), 0)


def test_a_second_read_costs_what_changed_since_the_first(vulcand_with_store):
    vulcand = vulcand_with_store
    for backend in ("b1", "b2"):
        post(vulcand, "/v2/backends", {"Backend": {"Id": backend, "Type": "http"}})
        for index in range(3):
            post(vulcand, f"/v2/backends/{backend}/servers",
                 {"Server": {"Id": f"{backend}-s{index}", "URL": f"http://10.0.0.{index}:80"}})
    store = VulcandStore(vulcand.etcd_url, vulcand.etcd_prefix)
    first, requests_made = etcd_requests(store.objects)
    assert requests_made == 1

    # Nothing changed: the store's count at its current revision is all that is read.
    again, requests_made = etcd_requests(store.objects)
    assert (again, requests_made) == (first, 1)

    # Added and updated: the keys modified since, too.
    post(vulcand, "/v2/backends/b1/servers", {"Server": {"Id": "b1-new", "URL": "http://10.0.1.1:80"}})
    post(vulcand, "/v2/backends/b2/servers", {"Server": {"Id": "b2-s0", "URL": "http://10.0.1.2:80"}})
    updated, requests_made = etcd_requests(store.objects)
    assert requests_made == 2
    assert updated == VulcandStore(vulcand.etcd_url, vulcand.etcd_prefix).objects()
    assert {server["Id"]: server["URL"] for server in updated["servers"]["b2"]}["b2-s0"] \
        == "http://10.0.1.2:80"
    assert "b1-new" in {server["Id"] for server in updated["servers"]["b1"]}

    # Deleted (and one added at the same time, so that the count alone would not tell): the
    # keys are listed, without their values.
    requests.delete(f"{vulcand.url}/v2/backends/b1/servers/b1-s1", timeout=TIMEOUT).raise_for_status()
    post(vulcand, "/v2/backends/b2/servers", {"Server": {"Id": "b2-new", "URL": "http://10.0.1.3:80"}})
    changed, requests_made = etcd_requests(store.objects)
    assert requests_made == 3
    assert changed == VulcandStore(vulcand.etcd_url, vulcand.etcd_prefix).objects()
    assert {server["Id"] for server in changed["servers"]["b1"]} == {"b1-s0", "b1-s2", "b1-new"}
    assert {server["Id"] for server in changed["servers"]["b2"]} == {"b2-s0", "b2-s1", "b2-s2",
                                                                     "b2-new"}
    assert etcd_requests(store.objects) == (changed, 1)


def test_snapshot_from_the_store_equals_the_one_from_the_api_with_a_few_requests(
    vulcand_with_store, consul_clean, kong_clean
):
    through_store = registries(vulcand_with_store, consul_clean, kong_clean)
    through_api = registries(vulcand_with_store, consul_clean, kong_clean, etcd_url="")
    assert through_api.vulcand_store is None
    outcome = reg.converge(through_store, OWNER, desired(12))
    assert outcome.result is True, outcome.comment()

    httpclientutil.REQUEST_COUNTER.reset()
    from_store = reg.read_snapshot(through_store, OWNER)
    store_requests = httpclientutil.REQUEST_COUNTER.by_system()
    httpclientutil.REQUEST_COUNTER.reset()
    from_api = reg.read_snapshot(through_api, OWNER)
    api_requests = httpclientutil.REQUEST_COUNTER.by_system()

    assert from_store.objects == from_api.objects
    assert from_store.claims == from_api.claims
    instances = sum(len(spec.instances) for spec in desired(12).values())
    assert sum(ref.kind == reg.VULCAND_SERVER for ref in from_store.objects) == instances == 18
    # Consul: the agent's services, the catalog's names, and the one service no agent listing
    # shows (Consul's own, "consul"), whose port others may not take.
    assert store_requests == {"consul": 3, "kong": 2, "etcd": 1}
    assert api_requests == {"consul": 3, "kong": 2, "vulcand": 4 + 12}
    assert not reg.plan(desired(12), from_store, OWNER)


def test_a_server_whose_stored_value_is_damaged_is_rewritten(
    vulcand_with_store, consul_clean, kong_clean, etcd
):
    if vulcand_with_store.sim is None:
        pytest.skip("writes vulcand's etcd keys behind its back: simulator only")
    registry = registries(vulcand_with_store, consul_clean, kong_clean)
    wanted = desired(2)
    assert reg.converge(registry, OWNER, wanted).result is True
    key = f"{vulcand_with_store.etcd_prefix}/backends/svc1/servers/svc1-0"
    etcd.client.put(key, "{not json")
    snapshot = reg.read_snapshot(registry, OWNER)
    assert snapshot.objects[reg.Ref(reg.VULCAND_SERVER, "svc1", "svc1-0")] == {"URL": None}
    outcome = reg.converge(registry, OWNER, wanted)
    assert outcome.result is True
    assert [str(step) for step in outcome.plan.steps] == ["update vulcand server svc1/svc1-0"]
    assert json.loads(etcd.client.get(key))["URL"] == "http://10.1.0.1:31000"


def test_a_store_that_is_not_vulcands_is_refused_with_what_to_set(
    vulcand_with_store, consul_clean, kong_clean
):
    registry = registries(vulcand_with_store, consul_clean, kong_clean)
    assert reg.converge(registry, OWNER, desired(2)).result is True
    wrong = registries(vulcand_with_store, consul_clean, kong_clean, etcd_prefix="/elsewhere")
    with pytest.raises(CommandExecutionError) as err:
        reg.read_snapshot(wrong, OWNER)
    message = str(err.value)
    assert "holds none of the 2 backends vulcand lists (looked under /elsewhere/backends/)" in message
    assert "platform:vulcand:etcd_prefix" in message and "-etcdApiVer=3" in message
    # One service alone is read by name through the API: the store plays no part.
    assert reg.read_snapshot(wrong, OWNER, names={"svc1"}).spec("svc1").instances


def test_an_unreachable_store_falls_back_to_vulcands_api(vulcand_with_store, consul_clean, kong_clean, caplog):
    registry = registries(vulcand_with_store, consul_clean, kong_clean)
    assert reg.converge(registry, OWNER, desired(4)).result is True
    unreachable = registries(vulcand_with_store, consul_clean, kong_clean,
                             etcd_url=f"http://127.0.0.1:{free_port()}")
    snapshot = reg.read_snapshot(unreachable, OWNER)
    assert snapshot.objects == reg.read_snapshot(registry, OWNER).objects
    assert not reg.plan(desired(4), snapshot, OWNER)
    assert "reading vulcand's objects through its API instead: etcd: POST" in caplog.text
