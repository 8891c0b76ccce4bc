"""The Consul simulator against reference §1: replies, validation, KV, sessions, blocking, ACLs.

Most tests talk to the session ``consul`` fixture (the simulator, or a real agent); tests of
profiles, ACL modes and timers start their own small simulator.
"""

import base64
import threading
import uuid

import pytest
import requests

from simulators.consul import ConsulSimulator

TEXT = "text/plain; charset=utf-8"


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


@pytest.fixture
def api(consul_clean):
    """call(method, path, body=None, **requests kwargs) with the session token."""
    session = requests.Session()
    if consul_clean.token:
        session.headers["X-Consul-Token"] = consul_clean.token

    def call(method, path, body=None, **kwargs):
        if body is not None:
            kwargs["json"] = body
        return session.request(method, f"{consul_clean.url}{path}", timeout=10, **kwargs)

    return call


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def own_sim(clock):
    """A private simulator on a fake clock, without ACLs."""
    with ConsulSimulator(clock=clock) as sim:
        yield sim


def call_sim(sim, method, path, body=None, **kwargs):
    if body is not None:
        kwargs["json"] = body
    return requests.request(method, f"{sim.url}{path}", timeout=10, **kwargs)


def register(api, **service):
    reply = api("PUT", "/v1/agent/service/register", service)
    assert (reply.status_code, reply.text) == (200, "")
    return reply


# -- agent service register: validation ----------------------------------------------------------


@pytest.mark.parametrize(
    "body, message",
    [
        ({"Port": 80}, "Missing service name"),
        ({"Name": "web", "Address": "0.0.0.0"}, "Invalid service address"),
        ({"Name": "web", "Address": "::"}, "Invalid service address"),
        ({"Name": "web", "Meta": {"bad key": "v"}}, "Invalid Service Meta: Key contains invalid characters: bad key"),
        ({"Name": "web", "Meta": {"consul-x": "v"}},
         "Invalid Service Meta: Key prefix 'consul-' is reserved for internal use: consul-x"),
        ({"Name": "web", "Weights": {"Passing": 0}}, "Invalid Weights: Passing must be greater than 0"),
        ({"Name": "web", "Check": {"HTTP": "http://127.0.0.1/", "Interval": "10s", "TTL": "10s"}},
         "Invalid check: Interval and TTL cannot both be specified"),
        ({"Name": "web", "Check": {"HTTP": "http://127.0.0.1/"}},
         "Invalid check: Interval must be > 0 for Script, HTTP, TCP or GRPC checks"),
        ({"Name": "web", "Check": {"Notes": "nothing to run"}}, "Invalid check: TTL must be > 0 for TTL checks"),
        ({"Name": "web", "Check": {"TTL": "10s", "Status": "ok"}},
         "Status for checks must 'passing', 'warning', 'critical'"),
    ],
)
def test_register_rejects_invalid_definitions(api, body, message):
    reply = api("PUT", "/v1/agent/service/register", body)
    assert (reply.status_code, reply.text) == (400, message)
    assert reply.headers["Content-Type"] == TEXT
    assert api("GET", "/v1/agent/services").json() == {}


@pytest.mark.parametrize(
    "body",
    [
        {"Name": "web", "Port": "80"},
        {"Name": "web", "Check": {"TTL": "ten seconds"}},
    ],
)
def test_register_reports_decode_failures(api, body):
    reply = api("PUT", "/v1/agent/service/register", body)
    assert reply.status_code == 400
    assert reply.text.startswith("Request decode failed: ")


def test_register_rejects_malformed_json(api):
    reply = api("PUT", "/v1/agent/service/register", data=b"{not json")
    assert reply.status_code == 400
    assert reply.text.startswith("Request decode failed: ")


# -- agent service register: semantics ------------------------------------------------------------


def test_register_defaults_id_to_name_and_lists_by_id(api):
    register(api, Name="web", Port=10000, Tags=["v1"], Meta={"owner": "salt"})
    register(api, name="web", id="web-2", port=10001)  # snake/lower case keys are accepted
    services = api("GET", "/v1/agent/services").json()
    assert sorted(services) == ["web", "web-2"]
    assert services["web"] == {
        "ID": "web", "Service": "web", "Tags": ["v1"], "Meta": {"owner": "salt"}, "Port": 10000,
        "Address": "", "Weights": {"Passing": 1, "Warning": 1}, "EnableTagOverride": False,
        "Datacenter": "dc1",
    }
    assert services["web-2"]["Port"] == 10001


def test_reregistering_the_same_id_replaces_the_definition(api):
    register(api, Name="web", Port=1, Tags=["old"], Meta={"a": "1"})
    register(api, Name="web", Port=2, Tags=["new"])
    assert api("GET", "/v1/agent/services").json()["web"] == {
        "ID": "web", "Service": "web", "Tags": ["new"], "Meta": {}, "Port": 2, "Address": "",
        "Weights": {"Passing": 1, "Warning": 1}, "EnableTagOverride": False, "Datacenter": "dc1",
    }
    instances = api("GET", "/v1/catalog/service/web").json()
    assert [(i["ServiceID"], i["ServicePort"], i["ServiceTags"]) for i in instances] == [("web", 2, ["new"])]


def test_agent_service_get_returns_definition_with_hash(api):
    register(api, Name="web", Port=80)
    reply = api("GET", "/v1/agent/service/web")
    assert reply.status_code == 200
    assert reply.json()["ContentHash"] == reply.headers["X-Consul-ContentHash"]
    assert reply.json()["Port"] == 80
    missing = api("GET", "/v1/agent/service/nope")
    assert (missing.status_code, missing.text) == (404, "unknown service ID: nope")


def test_check_ids_names_and_initial_status(api):
    register(api, Name="web", Check={"TTL": "30s"})
    register(api, Name="api", Checks=[
        {"TTL": "30s", "Status": "passing"},
        {"HTTP": "http://127.0.0.1:1/health", "Interval": "10s", "Name": "http"},
    ])
    checks = api("GET", "/v1/agent/checks").json()
    summary = {check_id: (c["Name"], c["Status"], c["ServiceID"]) for check_id, c in checks.items()}
    assert summary == {
        "service:web": ("Service 'web' check", "critical", "web"),
        "service:api:1": ("Service 'api' check", "passing", "api"),
        "service:api:2": ("http", "critical", "api"),
    }


def test_reregister_keeps_check_status_and_replace_existing_checks_drops_others(api):
    register(api, Name="web", Checks=[{"CheckID": "a", "TTL": "30s"}, {"CheckID": "b", "TTL": "30s"}])
    assert api("PUT", "/v1/agent/check/pass/a").status_code == 200
    register(api, Name="web", Checks=[{"CheckID": "a", "TTL": "30s"}])
    checks = api("GET", "/v1/agent/checks").json()
    assert {k: v["Status"] for k, v in checks.items()} == {"a": "passing", "b": "critical"}
    definition = {"Name": "web", "Check": {"CheckID": "a", "TTL": "30s"}}
    reply = api("PUT", "/v1/agent/service/register?replace-existing-checks", definition)
    assert reply.status_code == 200
    assert list(api("GET", "/v1/agent/checks").json()) == ["a"]


# -- deregister -------------------------------------------------------------------------------------


def test_deregister_removes_service_and_checks(api):
    register(api, Name="web", Check={"TTL": "30s"})
    reply = api("PUT", "/v1/agent/service/deregister/web")
    assert (reply.status_code, reply.text) == (200, "")
    assert api("GET", "/v1/agent/services").json() == {}
    assert api("GET", "/v1/agent/checks").json() == {}
    assert api("GET", "/v1/catalog/service/web").json() == []


def test_deregister_unknown_id_is_404_by_default(api):
    reply = api("PUT", "/v1/agent/service/deregister/nope")
    assert (reply.status_code, reply.text) == (
        404, 'Unknown service ID "nope". Ensure that the service ID is passed, not the service name.')


def test_deregister_unknown_id_is_200_in_the_old_profile():
    with ConsulSimulator(deregister_unknown_ok=True) as sim:
        reply = call_sim(sim, "PUT", "/v1/agent/service/deregister/nope")
    assert (reply.status_code, reply.text) == (200, "")


# -- catalog and health -----------------------------------------------------------------------------


def test_catalog_services_maps_names_to_tags_and_sets_index(api):
    register(api, Name="web", ID="web-1", Tags=["v1"])
    register(api, Name="web", ID="web-2", Tags=["v2"])
    reply = api("GET", "/v1/catalog/services")
    services = reply.json()
    assert "consul" in services
    assert sorted(services["web"]) == ["v1", "v2"]
    assert int(reply.headers["X-Consul-Index"]) >= 1
    assert reply.headers["X-Consul-KnownLeader"] == "true"


@pytest.mark.parametrize(
    "query, expected_ids",
    [
        ("", ["web-1", "web-2"]),
        ("?tag=v1", ["web-1"]),
        ("?tag=v1&tag=prod", ["web-1"]),
        ("?tag=v2&tag=prod", []),
    ],
)
def test_catalog_service_filters_by_every_tag(api, query, expected_ids):
    register(api, Name="web", ID="web-1", Tags=["v1", "prod"], Port=1)
    register(api, Name="web", ID="web-2", Tags=["v2"], Port=2)
    instances = api("GET", f"/v1/catalog/service/web{query}").json()
    assert [i["ServiceID"] for i in instances] == expected_ids


def test_catalog_service_of_unknown_name_is_empty_list(api):
    reply = api("GET", "/v1/catalog/service/nothing")
    assert (reply.status_code, reply.json()) == (200, [])
    assert "X-Consul-Index" in reply.headers


def test_catalog_entry_shape(api):
    register(api, Name="web", Port=8080, Address="10.0.0.5")
    (entry,) = api("GET", "/v1/catalog/service/web").json()
    assert {k: entry[k] for k in ("ServiceName", "ServiceAddress", "ServicePort", "ServiceTags")} == {
        "ServiceName": "web", "ServiceAddress": "10.0.0.5", "ServicePort": 8080, "ServiceTags": []}
    assert entry["Address"] and entry["Node"] and entry["ModifyIndex"] >= entry["CreateIndex"]


@pytest.mark.parametrize(
    "statuses, passing_ids",
    [
        (("passing", "passing"), ["a", "b"]),
        (("passing", "warning"), ["a"]),
        (("critical", "passing"), ["b"]),
    ],
)
def test_health_passing_keeps_instances_whose_every_check_passes(api, statuses, passing_ids):
    for service_id, status in zip("ab", statuses):
        register(api, Name="web", ID=service_id, Check={"TTL": "30s", "Status": status})
    everything = api("GET", "/v1/health/service/web").json()
    assert [e["Service"]["ID"] for e in everything] == ["a", "b"]
    # Node checks (serfHealth) come with the service's own.
    assert {c["CheckID"] for c in everything[0]["Checks"]} == {"serfHealth", "service:a"}
    for query in ("?passing", "?passing=true", "?passing=1"):
        healthy = api("GET", f"/v1/health/service/web{query}").json()
        assert [e["Service"]["ID"] for e in healthy] == passing_ids


def test_health_passing_rejects_bad_value(api):
    reply = api("GET", "/v1/health/service/web?passing=maybe")
    assert (reply.status_code, reply.text) == (400, "Invalid value for ?passing")


def test_ttl_updates_change_health(api):
    register(api, Name="web", Check={"TTL": "30s"})
    assert api("GET", "/v1/health/service/web?passing").json() == []
    assert api("PUT", "/v1/agent/check/pass/service:web?note=ok").status_code == 200
    (entry,) = api("GET", "/v1/health/service/web?passing").json()
    assert entry["Checks"][-1]["Output"] == "ok"
    update = api("PUT", "/v1/agent/check/update/service:web", {"Status": "warning", "Output": "slow"})
    assert update.status_code == 200
    assert api("GET", "/v1/health/service/web?passing").json() == []
    assert api("GET", "/v1/health/state/warning").json()[0]["Output"] == "slow"


def test_ttl_update_of_unknown_check_is_404(api):
    assert api("PUT", "/v1/agent/check/pass/nope").status_code == 404


def test_ttl_check_expires_to_critical(own_sim, clock):
    call_sim(own_sim, "PUT", "/v1/agent/service/register", {"Name": "web", "Check": {"TTL": "15s"}})
    call_sim(own_sim, "PUT", "/v1/agent/check/pass/service:web")
    assert len(call_sim(own_sim, "GET", "/v1/health/service/web?passing").json()) == 1
    clock.advance(16)
    (check,) = [c for c in call_sim(own_sim, "GET", "/v1/agent/checks").json().values()]
    assert (check["Status"], check["Output"]) == ("critical", "TTL expired")


def test_critical_service_is_reaped_after_deregister_critical_service_after(own_sim, clock):
    check = {"TTL": "15s", "DeregisterCriticalServiceAfter": "1m"}
    call_sim(own_sim, "PUT", "/v1/agent/service/register", {"Name": "web", "Check": check})
    clock.advance(59)
    assert list(call_sim(own_sim, "GET", "/v1/agent/services").json()) == ["web"]
    clock.advance(2)
    assert call_sim(own_sim, "GET", "/v1/agent/services").json() == {}


def test_initial_check_status_option():
    with ConsulSimulator(initial_check_status="passing") as sim:
        call_sim(sim, "PUT", "/v1/agent/service/register",
                 {"Name": "web", "Check": {"HTTP": "http://127.0.0.1:1/", "Interval": "10s"}})
        assert len(call_sim(sim, "GET", "/v1/health/service/web?passing").json()) == 1


def test_catalog_register_and_deregister_external_node(api):
    body = {"Node": "ext", "Address": "192.0.2.10", "Service": {"Service": "db", "Port": 5432},
            "Check": {"CheckID": "db-alive", "Status": "passing", "ServiceID": "db"}}
    reply = api("PUT", "/v1/catalog/register", body)
    assert (reply.status_code, reply.json()) == (200, True)
    (entry,) = api("GET", "/v1/health/service/db?passing").json()
    assert (entry["Node"]["Node"], entry["Service"]["ID"]) == ("ext", "db")
    assert api("PUT", "/v1/catalog/deregister", {"Node": "ext"}).json() is True
    assert api("GET", "/v1/catalog/service/db").json() == []


@pytest.mark.parametrize(
    "body, message",
    [
        ({"Address": "192.0.2.1"}, "Must provide node"),
        ({"Node": "ext"}, "Must provide address if SkipNodeUpdate is not set"),
    ],
)
def test_catalog_register_validation_is_500(api, body, message):
    reply = api("PUT", "/v1/catalog/register", body)
    assert (reply.status_code, reply.text) == (500, message)


# -- KV ---------------------------------------------------------------------------------------------


def test_kv_put_get_and_missing_key(api):
    assert api("PUT", "/v1/kv/app/config", data=b"hello").json() is True
    reply = api("GET", "/v1/kv/app/config")
    (entry,) = reply.json()
    assert (entry["Key"], base64.b64decode(entry["Value"]), entry["Flags"]) == ("app/config", b"hello", 0)
    assert reply.headers["X-Consul-Index"] == str(entry["ModifyIndex"])
    assert api("GET", "/v1/kv/app/config?raw").content == b"hello"
    missing = api("GET", "/v1/kv/app/missing")
    assert (missing.status_code, missing.content) == (404, b"")
    assert "X-Consul-Index" in missing.headers


def test_kv_cas(api):
    assert api("PUT", "/v1/kv/k?cas=0", data=b"first").json() is True
    assert api("PUT", "/v1/kv/k?cas=0", data=b"second").json() is False
    index = api("GET", "/v1/kv/k").json()[0]["ModifyIndex"]
    assert api("PUT", f"/v1/kv/k?cas={index + 100}", data=b"x").json() is False
    assert api("PUT", f"/v1/kv/k?cas={index}", data=b"third").json() is True
    assert api("GET", "/v1/kv/k?raw").content == b"third"
    assert api("DELETE", f"/v1/kv/k?cas={index}").json() is False
    assert api("GET", "/v1/kv/k").status_code == 200


def test_kv_recurse_keys_and_delete(api):
    for key in ("svc/a", "svc/b/x", "svc/b/y", "other"):
        api("PUT", f"/v1/kv/{key}", data=b"1")
    assert [e["Key"] for e in api("GET", "/v1/kv/svc?recurse").json()] == ["svc/a", "svc/b/x", "svc/b/y"]
    assert api("GET", "/v1/kv/svc/?keys").json() == ["svc/a", "svc/b/x", "svc/b/y"]
    assert api("GET", "/v1/kv/svc/?keys&separator=/").json() == ["svc/a", "svc/b/"]
    assert api("DELETE", "/v1/kv/svc?recurse").json() is True
    assert [e["Key"] for e in api("GET", "/v1/kv/?recurse").json()] == ["other"]


def test_kv_value_over_512k_is_413(api):
    reply = api("PUT", "/v1/kv/big", data=b"x" * (512 * 1024 + 1))
    assert reply.status_code == 413


# -- sessions and locks -----------------------------------------------------------------------------


def create_session(call, **body):
    reply = call("PUT", "/v1/session/create", {"LockDelay": "0s", **body})
    assert reply.status_code == 200
    return reply.json()["ID"]


def test_lock_acquire_release_between_sessions(api):
    first, second = create_session(api, TTL="30s"), create_session(api)
    assert api("PUT", f"/v1/kv/leader?acquire={first}", data=b"one").json() is True
    assert api("PUT", f"/v1/kv/leader?acquire={second}", data=b"two").json() is False
    (entry,) = api("GET", "/v1/kv/leader").json()
    assert (entry["Session"], entry["LockIndex"], base64.b64decode(entry["Value"])) == (first, 1, b"one")
    assert api("PUT", f"/v1/kv/leader?release={second}").json() is False
    assert api("PUT", f"/v1/kv/leader?release={first}").json() is True
    assert api("PUT", f"/v1/kv/leader?acquire={second}", data=b"two").json() is True
    assert api("GET", "/v1/kv/leader").json()[0]["LockIndex"] == 2


def test_destroying_a_session_releases_its_locks(api):
    holder = create_session(api)
    api("PUT", f"/v1/kv/leader?acquire={holder}")
    assert api("PUT", f"/v1/session/destroy/{holder}").json() is True
    assert "Session" not in api("GET", "/v1/kv/leader").json()[0]
    assert api("GET", f"/v1/session/info/{holder}").json() == []


def test_acquire_with_unknown_session_fails(api):
    reply = api("PUT", "/v1/kv/leader?acquire=00000000-0000-0000-0000-000000000000")
    assert reply.status_code == 500
    assert "invalid session" in reply.text


@pytest.mark.parametrize(
    "body, message",
    [
        ({"TTL": "5s"}, "Invalid Session TTL '5s', must be between [10s=24h0m0s]"),
        ({"Behavior": "explode"}, "Invalid Behavior setting 'explode'"),
    ],
)
def test_session_create_validation(api, body, message):
    reply = api("PUT", "/v1/session/create", body)
    assert (reply.status_code, reply.text) == (400, message)


def test_session_renew(api):
    session = create_session(api, TTL="15s")
    (renewed,) = api("PUT", f"/v1/session/renew/{session}").json()
    assert (renewed["ID"], renewed["TTL"]) == (session, "15s")
    assert api("PUT", "/v1/session/renew/00000000-0000-0000-0000-000000000000").status_code == 404


def test_expired_session_frees_lock_after_lock_delay(own_sim, clock):
    def call(method, path, body=None, **kwargs):
        return call_sim(own_sim, method, path, body, **kwargs)

    holder = create_session(call, TTL="10s", LockDelay="5s")
    other = create_session(call)
    assert call("PUT", f"/v1/kv/leader?acquire={holder}").json() is True
    clock.advance(19)  # Consul invalidates after twice the TTL
    assert call("PUT", f"/v1/kv/leader?acquire={other}").json() is False
    clock.advance(2)
    assert call("GET", f"/v1/session/info/{holder}").json() == []
    assert call("PUT", f"/v1/kv/leader?acquire={other}").json() is False  # lock delay
    clock.advance(5)
    assert call("PUT", f"/v1/kv/leader?acquire={other}").json() is True


def test_delete_behavior_removes_held_keys(api):
    holder = create_session(api, Behavior="delete")
    api("PUT", f"/v1/kv/ephemeral?acquire={holder}", data=b"x")
    api("PUT", f"/v1/session/destroy/{holder}")
    assert api("GET", "/v1/kv/ephemeral").status_code == 404


# -- blocking queries -------------------------------------------------------------------------------


def test_blocking_query_returns_after_a_change(api):
    api("PUT", "/v1/kv/watched", data=b"before")
    index = int(api("GET", "/v1/kv/watched").headers["X-Consul-Index"])
    writer = threading.Timer(0.05, lambda: api("PUT", "/v1/kv/watched", data=b"after"))
    writer.start()
    reply = api("GET", f"/v1/kv/watched?index={index}&wait=10s")
    writer.join()
    assert base64.b64decode(reply.json()[0]["Value"]) == b"after"
    assert int(reply.headers["X-Consul-Index"]) > index


def test_blocking_query_times_out_with_same_index(api):
    register(api, Name="web")
    index = api("GET", "/v1/catalog/services").headers["X-Consul-Index"]
    reply = api("GET", f"/v1/catalog/services?index={index}&wait=50ms")
    assert reply.status_code == 200
    assert reply.headers["X-Consul-Index"] == index


def test_blocking_catalog_wakes_on_registration(api):
    index = int(api("GET", "/v1/catalog/service/late").headers["X-Consul-Index"])
    writer = threading.Timer(0.05, lambda: register(api, Name="late"))
    writer.start()
    reply = api("GET", f"/v1/catalog/service/late?index={index}&wait=10s")
    writer.join()
    assert [e["ServiceID"] for e in reply.json()] == ["late"]


@pytest.mark.parametrize(
    "query, message",
    [("?index=abc", "Invalid index"), ("?index=1&wait=soon", "Invalid wait time")],
)
def test_blocking_parameters_are_validated(api, query, message):
    reply = api("GET", f"/v1/catalog/services{query}")
    assert (reply.status_code, reply.text) == (400, message)


# -- HTTP conventions -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path, allow",
    [
        ("GET", "/v1/agent/service/register", "OPTIONS,PUT"),
        ("POST", "/v1/agent/service/deregister/web", "OPTIONS,PUT"),
        ("PUT", "/v1/catalog/services", "OPTIONS,GET"),
        ("POST", "/v1/kv/key", "OPTIONS,GET,PUT,DELETE"),
    ],
)
def test_wrong_method_is_405_with_allow(api, method, path, allow):
    reply = api(method, path)
    assert (reply.status_code, reply.text) == (405, f"method {method} not allowed")
    assert reply.headers["Allow"] == allow


def test_unknown_v1_path_is_404_text(api):
    reply = api("GET", "/v1/agent/nothing-here")
    assert (reply.status_code, reply.text) == (404, "Invalid URL path: not a recognized HTTP API endpoint")


def test_unknown_datacenter(api):
    reply = api("GET", "/v1/catalog/services?dc=elsewhere")
    assert (reply.status_code, reply.text) == (500, "No path to datacenter")


# -- ACLs -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def acl_sim():
    with ConsulSimulator(master_token="root-token") as sim:
        yield sim


@pytest.mark.parametrize(
    "headers, status, text",
    [
        ({}, 403, "Permission denied"),
        ({"X-Consul-Token": "wrong"}, 403, "ACL not found"),
        ({"X-Consul-Token": "root-token"}, 200, ""),
        ({"Authorization": "Bearer root-token"}, 200, ""),
    ],
)
def test_acl_tokens_on_writes(acl_sim, headers, status, text):
    reply = call_sim(acl_sim, "PUT", "/v1/agent/service/register", {"Name": "web"}, headers=headers)
    assert (reply.status_code, reply.text) == (status, text)
    assert reply.headers["X-Consul-Default-ACL-Policy"] == "deny"


def test_acl_legacy_token_query_parameter(acl_sim):
    assert call_sim(acl_sim, "PUT", "/v1/kv/x?token=root-token", data=b"1").json() is True


def test_anonymous_list_reads_are_filtered_not_refused(acl_sim):
    call_sim(acl_sim, "PUT", "/v1/agent/service/register", {"Name": "web"},
             headers={"X-Consul-Token": "root-token"})
    assert call_sim(acl_sim, "GET", "/v1/catalog/services").json() == {}
    assert call_sim(acl_sim, "GET", "/v1/kv/x").status_code == 403


def test_acl_policy_header_without_acls(own_sim):
    reply = call_sim(own_sim, "GET", "/v1/agent/services")
    assert reply.headers["X-Consul-Default-ACL-Policy"] == "allow"


# -- simulator controls -----------------------------------------------------------------------------


def test_fault_injection_answers_plain_text_errors(consul_sim, api):
    consul_sim.faults.fail(1, status=503, path="^/v1/catalog/")
    failed = api("GET", "/v1/catalog/services")
    assert (failed.status_code, failed.headers["Content-Type"]) == (503, TEXT)
    assert api("GET", "/v1/catalog/services").status_code == 200


def test_request_counts_per_handler(consul_sim, api):
    before = consul_sim.request_counts[("PUT", "agent_service_register")]
    register(api, Name="web")
    assert consul_sim.request_counts[("PUT", "agent_service_register")] == before + 1


def test_reset_forgets_everything_but_the_consul_service(consul_sim, api):
    register(api, Name="web")
    api("PUT", "/v1/kv/k", data=b"v")
    consul_sim.reset()
    assert api("GET", "/v1/agent/services").json() == {}
    assert list(api("GET", "/v1/catalog/services").json()) == ["consul"]
    assert api("GET", "/v1/kv/k").status_code == 404


# -- ACL policies and tokens -------------------------------------------------------------------


def test_acl_policies_are_created_listed_without_rules_and_updated(api):
    name = f"dns-read-{uuid.uuid4().hex[:8]}"
    created = api("PUT", "/v1/acl/policy", {"Name": name, "Rules": 'node_prefix "" { policy = "read" }'})
    assert created.status_code == 200
    policy = created.json()
    listed = {stub["Name"]: stub for stub in api("GET", "/v1/acl/policies").json()}
    assert "Rules" not in listed[name] and listed[name]["ID"] == policy["ID"]
    assert "global-management" in listed
    duplicate = api("PUT", "/v1/acl/policy", {"Name": name})
    assert (duplicate.status_code, duplicate.text) == (500, f'Invalid Policy: A Policy with Name "{name}" already exists')
    updated = api("PUT", f"/v1/acl/policy/{policy['ID']}", {"Name": name, "Description": "DNS", "Rules": ""}).json()
    assert (updated["ID"], updated["Description"], updated["Rules"]) == (policy["ID"], "DNS", "")
    assert api("GET", f"/v1/acl/policy/{policy['ID']}").json()["Description"] == "DNS"


def test_acl_tokens_are_read_with_their_own_secret(api, consul_clean):
    name = f"dns-read-{uuid.uuid4().hex[:8]}"
    api("PUT", "/v1/acl/policy", {"Name": name})
    secret = str(uuid.uuid4())
    token = api("PUT", "/v1/acl/token", {"SecretID": secret, "Description": "DNS", "Policies": [{"Name": name}]}).json()
    assert token["SecretID"] == secret and [link["Name"] for link in token["Policies"]] == [name]
    read = requests.get(f"{consul_clean.url}/v1/acl/token/self", headers={"X-Consul-Token": secret}, timeout=10)
    assert read.json()["AccessorID"] == token["AccessorID"]
    unknown = requests.get(f"{consul_clean.url}/v1/acl/token/self", headers={"X-Consul-Token": str(uuid.uuid4())}, timeout=10)
    assert (unknown.status_code, unknown.text) == (403, "ACL not found")
    again = api("PUT", "/v1/acl/token", {"SecretID": secret})
    assert (again.status_code, again.text) == (500, "Invalid Token: SecretID is already in use")
    updated = api("PUT", f"/v1/acl/token/{token['AccessorID']}", {"Description": "DNS lookups", "Policies": []})
    assert updated.json()["Policies"] == [] and updated.json()["SecretID"] == secret
    missing = api("PUT", "/v1/acl/token", {"Policies": [{"Name": "no-such-policy"}]})
    assert missing.status_code == 400


def test_acl_tokens_carry_roles_and_identities_which_are_left_out_when_empty(api):
    name = f"ops-{uuid.uuid4().hex[:8]}"
    role = api("PUT", "/v1/acl/role", {"Name": name, "Policies": [{"Name": "global-management"}]})
    assert role.status_code == 200, role.text
    assert role.json()["Policies"] == [{"ID": "00000000-0000-0000-0000-000000000001",
                                        "Name": "global-management"}]
    duplicate = api("PUT", "/v1/acl/role", {"Name": name})
    assert (duplicate.status_code, duplicate.text) == (500, f'Invalid Role: A Role with Name "{name}" already exists')
    token = api("PUT", "/v1/acl/token", {
        "Roles": [{"Name": name}], "ServiceIdentities": [{"ServiceName": "web"}],
        "NodeIdentities": [{"NodeName": "kong", "Datacenter": "dc1"}]}).json()
    assert token["Roles"] == [{"ID": role.json()["ID"], "Name": name}]
    assert token["ServiceIdentities"] == [{"ServiceName": "web"}]
    assert token["NodeIdentities"] == [{"NodeName": "kong", "Datacenter": "dc1"}]
    cleared = api("PUT", f"/v1/acl/token/{token['AccessorID']}", {"Roles": [], "NodeIdentities": []}).json()
    assert not {"Roles", "ServiceIdentities", "NodeIdentities"} & set(cleared)
    assert api("PUT", "/v1/acl/token", {"Roles": [{"Name": "no-such-role"}]}).status_code == 400
    no_datacenter = api("PUT", "/v1/acl/token", {"NodeIdentities": [{"NodeName": "kong"}]})
    assert no_datacenter.status_code == 400


def test_acl_objects_need_the_management_token(consul_sim):
    if consul_sim.token is None:
        pytest.skip("needs ACLs")
    assert requests.get(f"{consul_sim.url}/v1/acl/policies", timeout=10).status_code == 403
    with ConsulSimulator() as open_agent:
        reply = requests.get(f"{open_agent.url}/v1/acl/policies", timeout=10)
        assert (reply.status_code, reply.text) == (401, "ACL support disabled")
