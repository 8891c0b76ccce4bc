"""The `consul` and `vulcand` states through Salt's real loader (no daemons) against the
simulators: they create, a second run changes nothing, test mode predicts exactly what a real run
reports and writes nothing, and objects that are not ours are refused."""

import pytest

WEB_CHECK = {"HTTP": "http://127.0.0.1:10000/health", "Interval": "10s"}
URL = "http://10.0.12.223:53769"
ROUTE = 'Host("web.service.consul") && PathRegexp("/.*")'
FRONTEND = {"Type": "http", "BackendId": "web", "Route": ROUTE,
            "Settings": {"Hostname": "web.service.consul"}}
LISTENER = {"Protocol": "http", "Address": {"Network": "tcp", "Address": "0.0.0.0:10000"}}


@pytest.fixture
def states(registry_loaders, consul_clean, vulcand_clean):
    registry_loaders.context.clear()
    return registry_loaders.states


@pytest.fixture
def api(registry_loaders):
    return registry_loaders.modules


def web_service(states, **fields):
    return states.consul.service_registered("web", port=10000, **fields)


def web_objects(states, test=False):
    """The states of the vulcand objects of ``web``, run in dependency order."""
    vulcand = states.vulcand
    return [
        vulcand.object_present("web", collection="backends", fields={"Type": "http"},
                               test=test),
        vulcand.server_present("web1", backend="web", url=URL, test=test),
        vulcand.object_present("web", collection="frontends", fields=FRONTEND, test=test),
        vulcand.object_present("web.service.consul", collection="hosts", test=test),
        vulcand.object_present("web", collection="listeners", fields=LISTENER, test=test),
    ]


def test_consul_service_is_registered_once_as_test_mode_predicted(states, api):
    fields = {"tags": ["http"], "meta": {"team": "web"}, "checks": [WEB_CHECK]}
    predicted = web_service(states, test=True, **fields)
    assert predicted.result is None
    assert api.consul.list_services() == {}

    created = web_service(states, **fields)
    assert created.result is True, created.comment
    assert created.changes == predicted.changes
    assert created.changes["new"]["Checks"] == [{"CheckID": "service:web", **WEB_CHECK}]
    service = api.consul.get_service("web")
    assert (service["Port"], service["Tags"], service["Meta"]["team"]) == (10000, ["http"], "web")

    again = web_service(states, **fields)
    assert (again.result, again.changes) == (True, {}), again.comment


def test_consul_update_changes_only_what_differs(states, api):
    assert web_service(states, meta={"team": "web"}, checks=[WEB_CHECK]).result is True

    predicted = states.consul.service_registered("web", port=10001, checks=[], test=True)
    updated = states.consul.service_registered("web", port=10001, checks=[])
    assert updated.result is True, updated.comment
    assert updated.changes == predicted.changes
    assert sorted(updated.changes) == ["Checks", "Port"]
    assert updated.changes["Checks"]["new"] == []
    service = api.consul.get_service("web")
    assert (service["Port"], service["Meta"]["team"]) == (10001, "web")  # meta kept


def test_consul_service_of_someone_else_is_refused(states, api, consul_clean):
    consul_clean.request("PUT", "/v1/agent/service/register", json={"Name": "web", "Port": 1})

    for ret in (web_service(states), states.consul.service_absent("web")):
        assert ret.result is False and ret.changes == {}
        assert "exists and is not registered by Salt: refusing to" in ret.comment
    assert api.consul.get_service("web")["Port"] == 1


def test_consul_service_absent_deregisters_once(states, api):
    assert web_service(states).result is True

    predicted = states.consul.service_absent("web", test=True)
    assert predicted.result is None and "web" in api.consul.list_services()
    removed = states.consul.service_absent("web")
    assert removed.result is True and removed.changes == predicted.changes
    assert removed.changes["new"] is None and "web" not in api.consul.list_services()
    assert states.consul.service_absent("web").changes == {}


def test_vulcand_objects_are_created_once_as_test_mode_predicted(states, api):
    assert web_service(states).result is True
    # Each object needs the one before it; test mode predicts the first one exactly.
    predicted = states.vulcand.object_present("web", collection="backends",
                                              fields={"Type": "http"}, test=True)
    assert predicted.result is None and api.vulcand.list_objects("backends") == []

    created = web_objects(states)
    assert [ret.result for ret in created] == [True] * 5, [ret.comment for ret in created]
    assert created[0].changes == predicted.changes == {"old": None, "new": {"Type": "http"}}
    assert created[1].changes == {"old": None, "new": {"URL": URL}}
    assert api.vulcand.list_servers("web") == [{"Id": "web1", "URL": URL}]

    again = web_objects(states, test=True) + web_objects(states)
    assert [(ret.result, ret.changes) for ret in again] == [(True, {})] * 10


def test_vulcand_update_and_removal_report_old_and_new(states, api):
    assert web_service(states).result is True
    web_objects(states)

    moved = "http://10.0.12.224:41000"
    predicted = states.vulcand.server_present("web1", backend="web", url=moved, test=True)
    updated = states.vulcand.server_present("web1", backend="web", url=moved)
    assert updated.changes == predicted.changes == {"URL": {"old": URL, "new": moved}}

    removed = states.vulcand.object_absent("web", collection="listeners")
    assert removed.result is True and removed.changes["new"] is None
    assert [listener["Id"] for listener in api.vulcand.list_objects("listeners")] == []


def test_vulcand_objects_of_someone_else_are_refused(states, api, vulcand_clean):
    # The same names, registered by the `microservice` states (source `pillar`).
    assert states.microservice.registered("web", port=10000, gateway=False,
                                          instances={"web1": {"address": "10.0.12.223",
                                                              "port": 53769}}).result is True

    refused = [
        states.vulcand.object_present("web", collection="backends", fields={"Type": "http"}),
        states.vulcand.object_absent("web", collection="listeners"),
        states.vulcand.object_absent("web.service.consul", collection="hosts"),
        states.vulcand.server_present("web1", backend="web", url="http://10.0.12.224:41000"),
        states.consul.service_absent("web"),
    ]
    assert [(ret.result, ret.changes) for ret in refused] == [(False, {})] * 5
    assert all("registered by showcase/pillar" in ret.comment for ret in refused), refused
    assert api.vulcand.list_servers("web") == [{"Id": "web1", "URL": URL}]
    assert [listener["Id"] for listener in api.vulcand.list_objects("listeners")] == ["web"]


def test_vulcand_object_without_a_consul_service_is_refused(states, api):
    ret = states.vulcand.object_present("web", collection="backends", fields={"Type": "http"})
    assert ret.result is False
    assert ret.comment == ("vulcand backend web would belong to the owner of Consul service "
                           "web, which is not registered (register it first): refusing to "
                           "create it")
    assert api.vulcand.list_objects("backends") == []
