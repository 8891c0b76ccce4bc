"""registrationutil: specs, snapshot, plan and apply, without any server."""

import concurrent.futures
import threading

import pytest
import salt.utils.yaml
from salt.exceptions import CommandExecutionError, SaltInvocationError


import registrationutil as reg
import validationutil

OWNER = reg.Owner("showcase", "pillar")
ENGINE = reg.Owner("showcase", "marathon")
WEB = reg.ServiceSpec("web", 10000, instances={"web1": ("10.0.12.223", 53769)})
WEB2 = reg.ServiceSpec(
    "web", 10000, instances={"web1": ("10.0.12.223", 53769), "web2": ("10.0.12.224", 41000)}
)
API = reg.ServiceSpec("api", 10001, gateway=False)


def registered(*specs):
    """A snapshot in which ``specs`` are registered by OWNER."""
    snapshot = reg.Snapshot(OWNER)
    for spec in specs:
        snapshot.objects.update(reg.desired_objects(spec, OWNER))
    return snapshot


def claimed(*specs):
    """A snapshot in which ``specs`` are registered by the Marathon engine."""
    snapshot = reg.Snapshot(OWNER)
    for spec in specs:
        for ref in reg.desired_objects(spec, ENGINE):
            snapshot.claims[(ref.kind, ref.key)] = "registered by showcase/marathon"
    return snapshot


def steps(plan):
    return [str(step) for step in plan.steps]


# -- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": "Web", "port": 1}, "service name: expected a DNS label"),
        ({"name": "web_1", "port": 1}, "service name: expected a DNS label"),
        ({"name": "-web", "port": 1}, "service name: expected a DNS label"),
        ({"name": "web", "port": 0}, "service web:port: expected an integer from 1 to 65535, not 0"),
        ({"name": "web", "port": 65536}, "service web:port: expected an integer from 1 to 65535"),
        ({"name": "web", "port": "80"}, "service web:port: expected an integer from 1 to 65535, "
                                        "not the string '80'"),
        ({"name": "web", "port": True}, "service web:port: expected an integer from 1 to 65535, "
                                        "not True"),
        ({"name": "web", "port": 1, "domain": "a..b"}, "service web:domain: expected dot-separated"),
        ({"name": "web", "port": 1, "gateway": "yes"},
         "service web:gateway: expected a boolean (true or false), not the string 'yes'"),
        ({"name": "web", "port": 1, "instances": {"a/b": ("10.0.0.1", 80)}},
         "service web:instances:a/b: expected letters, digits"),
        ({"name": "web", "port": 1, "instances": {"w1": ("0.0.0.0", 80)}},
         "service web:instances:w1:address: '0.0.0.0' is not a routable address"),
        ({"name": "web", "port": 1, "instances": {"w1": ("bad host!", 80)}},
         "expected an IP address or a host name"),
        ({"name": "web", "port": 1, "instances": {"w1": ("10.0.0.1", 0)}},
         "service web:instances:w1:port: expected an integer from 1 to 65535, not 0"),
        ({"name": "web", "port": 1, "instances": {"w1": "10.0.0.1"}},
         "service web:instances:w1: expected (address, port)"),
    ],
)
def test_invalid_specs_are_refused_with_a_message_naming_the_problem(kwargs, message):
    with pytest.raises(SaltInvocationError) as err:
        reg.ServiceSpec(**kwargs)
    assert message in str(err.value)


def test_a_spec_accepts_ipv6_and_host_names_and_builds_server_urls():
    spec = reg.ServiceSpec("web", 80, instances={"a": ("fd00::1", 81), "b": ("slave0.local", 82)})
    assert spec.instances["a"].url == "http://[fd00::1]:81"
    assert spec.instances["b"].url == "http://slave0.local:82"
    assert spec.fqdn == "web.service.consul"


# -- desired objects --------------------------------------------------------------------------


def test_desired_objects_are_the_seed_registrations_on_todays_apis():
    objects = {str(ref): body for ref, body in reg.desired_objects(WEB, OWNER).items()}
    assert objects == {
        "consul service web": {
            "Name": "web", "Port": 10000, "Tags": [],
            "Meta": {"managed-by": "salt", "cluster": "showcase", "source": "pillar"},
        },
        "vulcand host web.service.consul": {"Name": "web.service.consul"},
        "vulcand backend web": {"Type": "http"},
        "vulcand server web/web1": {"URL": "http://10.0.12.223:53769"},
        "vulcand frontend web": {
            "Type": "http", "BackendId": "web", "Hostname": "web.service.consul",
            "Route": 'Host("web.service.consul") && PathRegexp("/.*")',
        },
        "vulcand listener web": {"Protocol": "http", "Address": "tcp://0.0.0.0:10000"},
        "kong service web": {
            "protocol": "http", "host": "vulcand.service.consul", "port": 10000, "path": None,
            "tags": ["cluster:showcase", "managed-by:salt", "source:pillar"],
        },
        "kong route web": {
            "service": "web", "hosts": ["web.service.consul"], "paths": None,
            "preserve_host": True, "strip_path": False,
            "tags": ["cluster:showcase", "managed-by:salt", "source:pillar"],
        },
    }


# -- plan -------------------------------------------------------------------------------------

CREATE_WEB = [
    "create consul service web",
    "create vulcand backend web",
    "create vulcand server web/web1",
    "create vulcand frontend web",
    "create vulcand host web.service.consul",
    "create vulcand listener web",
    "create kong service web",
    "create kong route web",
]
DELETE_WEB = [
    "delete kong route web",
    "delete kong service web",
    "delete vulcand listener web",
    "delete vulcand host web.service.consul",
    "delete vulcand frontend web",
    "delete vulcand server web/web1",
    "delete vulcand backend web",
    "delete consul service web",
]


@pytest.mark.parametrize(
    "snapshot, desired, prune, expected",
    [
        pytest.param(registered(), {"web": WEB}, True, CREATE_WEB, id="create"),
        pytest.param(registered(WEB), {"web": WEB}, True, [], id="no-op"),
        pytest.param(registered(WEB), {"web": None}, True, DELETE_WEB, id="delete"),
        pytest.param(registered(), {"web": None}, True, [], id="already-absent"),
        pytest.param(registered(WEB), {"web": WEB2}, True,
                     ["create vulcand server web/web2"], id="add-instance"),
        pytest.param(registered(WEB2), {"web": WEB}, True,
                     ["delete vulcand server web/web2"], id="remove-instance"),
        pytest.param(registered(WEB2), {"web": WEB}, False, [], id="remove-instance-no-prune"),
        pytest.param(registered(WEB), {"web": reg.ServiceSpec("web", 10000, instances={
            "web1": ("10.0.12.223", 1)})}, True, ["update vulcand server web/web1"],
                     id="move-instance"),
        pytest.param(registered(WEB), {"web": reg.ServiceSpec("web", 10002, instances={
            "web1": ("10.0.12.223", 53769)})}, True,
                     ["update consul service web", "update vulcand listener web",
                      "update kong service web"], id="change-port"),
        pytest.param(registered(WEB), {"web": reg.ServiceSpec("web", 10000, gateway=False,
                                                              instances=WEB.instances)}, True,
                     ["delete kong route web", "delete kong service web"], id="hide-from-gateway"),
        pytest.param(registered(WEB, API), {"api": None}, True,
                     ["delete vulcand listener api", "delete vulcand host api.service.consul",
                      "delete vulcand frontend api", "delete vulcand backend api",
                      "delete consul service api"], id="other-services-untouched"),
        pytest.param(claimed(WEB), {"web": None}, True, [],
                     id="objects-of-another-source-are-not-deleted"),
    ],
)
def test_plan(snapshot, desired, prune, expected):
    result = reg.plan(desired, snapshot, OWNER, prune_instances=prune)
    assert steps(result) == expected
    assert result.conflicts == []


def test_plan_refuses_to_take_over_another_sources_service():
    result = reg.plan({"web": WEB}, claimed(WEB), OWNER)
    assert result.steps == []
    assert result.conflicts[0].startswith(
        "service 'web': refusing to take over objects that are not ours: "
        "consul service web exists and is registered by showcase/marathon; "
    )


def test_plan_refuses_a_name_someone_else_holds_and_plans_the_rest():
    snapshot = registered()
    snapshot.claims[(reg.KONG_ROUTE, "web")] = "not registered by Salt"
    snapshot.claims[(reg.VULCAND_BACKEND, "web")] = "not registered by showcase/pillar"
    result = reg.plan({"web": WEB, "api": API}, snapshot, OWNER)
    assert [str(step.ref.service) for step in result.steps] == ["api"] * 5
    assert result.conflicts == [
        "service 'web': refusing to take over objects that are not ours: "
        "kong route web exists and is not registered by Salt; "
        "vulcand backend web exists and is not registered by showcase/pillar"
    ]


def test_plan_changes_are_old_new_per_service_and_object():
    result = reg.plan({"web": WEB}, registered(WEB2), OWNER)
    assert result.changes() == {
        "web": {"vulcand server web/web2": {"old": {"URL": "http://10.0.12.224:41000"},
                                            "new": None}},
    }


def test_snapshot_spec_rebuilds_what_the_owner_registered():
    assert registered(WEB2).spec("web") == WEB2
    assert registered(API).spec("api") == API
    assert registered(WEB).spec("api") is None


# -- snapshot ---------------------------------------------------------------------------------


class FakeAPI:
    """Answers listings from ``data``, records every call, and fails the calls named in
    ``fail`` as (method, first argument)."""

    def __init__(self, data, fail=()):
        self.data = data
        self.fail = set(fail)
        self.calls = []
        self.lock = threading.Lock()

    def __getattr__(self, method):
        def call(*args, **options):  # options (reply=False) change no outcome here
            with self.lock:
                self.calls.append((method, *args))
            if any(rule == (method, *args[:1]) for rule in self.fail):
                raise CommandExecutionError(f"{method} failed")
            return next((value for key, value in self.data.items() if key == (method, *args)),
                        None)

        return call


def fake_registries(consul=None, vulcand=None, kong=None, fail=()):
    return reg.Registries(
        consul=FakeAPI(consul or {}, fail), vulcand=FakeAPI(vulcand or {}, fail),
        kong=FakeAPI(kong or {}, fail),
    )


def test_read_snapshot_classifies_ours_and_theirs_with_one_listing_per_type():
    tags = OWNER.kong_tags
    registries = fake_registries(
        consul={("list_services",): {
            "web": {"ID": "web", "Service": "web", "Port": 10000, "Meta": OWNER.consul_meta},
            "mesos": {"ID": "mesos", "Service": "mesos", "Port": 5050},
        }, ("list_catalog_services",): {"web": [], "mesos": []}},
        vulcand={
            ("list", "hosts"): [{"Name": "web.service.consul"}, {"Name": "mesos.service.consul"}],
            ("list", "backends"): [{"Id": "web", "Type": "http"}, {"Id": "mesos"}],
            ("list", "frontends"): [
                {"Id": "web", "Type": "http", "BackendId": "web", "Route": "r",
                 "Settings": {"Hostname": "web.service.consul"}},
            ],
            ("list", "listeners"): [],
            ("list_servers", "web"): [{"Id": "web1", "URL": "http://10.0.0.1:80"}],
        },
        kong={
            ("list", "services"): [
                {"id": "s1", "name": "web", "protocol": "http", "host": "h", "port": 1,
                 "path": None, "tags": tags},
                {"id": "s2", "name": "mesos", "tags": None},
            ],
            ("list", "routes"): [{"id": "r1", "name": "web", "service": {"id": "s1"},
                                  "tags": tags}],
        },
    )
    snapshot = reg.read_snapshot(registries, OWNER)
    assert sorted(map(str, snapshot.objects)) == [
        "consul service web", "kong route web", "kong service web", "vulcand backend web",
        "vulcand frontend web", "vulcand host web.service.consul", "vulcand server web/web1",
    ]
    assert snapshot.objects[reg.Ref(reg.KONG_ROUTE, "web", "web")]["service"] == "web"
    assert snapshot.claims == {
        (reg.CONSUL_SERVICE, "mesos"): "not registered by Salt",
        (reg.VULCAND_HOST, "mesos.service.consul"): "not registered by showcase/pillar",
        (reg.VULCAND_BACKEND, "mesos"): "not registered by showcase/pillar",
        (reg.KONG_SERVICE, "mesos"): "not registered by Salt",
    }
    # Servers are listed for owned backends only: never for someone else's.
    assert ("list_servers", "mesos") not in registries.vulcand.calls
    # The agent's listing, and the catalog's names (all on the agent: nothing more to read).
    assert sorted(registries.consul.calls) == [("list_catalog_services",), ("list_services",)]
    assert snapshot.catalog == {
        "mesos": [reg.CatalogEntry(None, 5050, "not registered by Salt")]}
    assert len(registries.kong.calls) == 2


WEB_IN_CONSUL = {"ID": "web", "Service": "web", "Port": 10000, "Meta": OWNER.consul_meta}


def test_read_snapshot_of_one_name_reads_only_its_objects():
    tags = OWNER.kong_tags
    registries = fake_registries(
        consul={("get_service", "web"): WEB_IN_CONSUL, ("list_services",): {"web": WEB_IN_CONSUL},
                ("list_catalog_services",): {"web": []}},
        vulcand={
            ("get", "backends", "web"): {"Id": "web", "Type": "http"},
            ("get", "frontends", "web"): {"Id": "web", "Type": "http", "BackendId": "web",
                                          "Route": "r",
                                          "Settings": {"Hostname": "web.service.consul"}},
            ("get", "hosts", "web.service.consul"): {"Name": "web.service.consul"},
            ("list_servers", "web"): [{"Id": "web1", "URL": "http://10.0.0.1:80"}],
        },
        kong={("get", "services", "web"): {"id": "s1", "name": "web", "tags": tags}},
    )
    snapshot = reg.read_snapshot(registries, OWNER, names={"web"})
    assert sorted(map(str, snapshot.objects)) == [
        "consul service web", "kong service web", "vulcand backend web", "vulcand frontend web",
        "vulcand host web.service.consul", "vulcand server web/web1",
    ]
    assert not any(call[0].startswith("list") and call[0] != "list_servers"
                   for api in (registries.vulcand, registries.kong) for call in api.calls)
    assert sorted(registries.consul.calls) == [
        ("get_service", "web"), ("list_catalog_services",), ("list_services",)]
    assert len(registries.vulcand.calls) == 5 and len(registries.kong.calls) == 2


# -- apply ------------------------------------------------------------------------------------


def test_apply_writes_parents_before_children_and_reports_what_it_did():
    registries = fake_registries()
    planned = reg.plan({"web": WEB}, registered(), OWNER)
    result = reg.apply(planned, registries, max_workers=4)
    assert result.ok and [str(step) for step in result.done] == CREATE_WEB
    calls = registries.consul.calls + registries.vulcand.calls + registries.kong.calls
    assert len(calls) == len(CREATE_WEB)
    vulcand = [call[:2] for call in registries.vulcand.calls]
    assert vulcand.index(("upsert", "backends")) < vulcand.index(("upsert_server", "web"))
    assert vulcand.index(("upsert", "backends")) < vulcand.index(("upsert", "frontends"))
    assert registries.kong.calls[0][:3] == ("upsert", "services", "web")
    assert registries.kong.calls[1][:3] == ("upsert", "services/web/routes", "web")


def test_apply_stops_a_failed_chain_and_carries_on_with_other_services():
    registries = fake_registries(fail={("upsert", "backends")})
    planned = reg.plan({"web": WEB, "api": API}, registered(), OWNER)
    result = reg.apply(planned, registries)
    assert not result.ok
    assert [str(change) for change, _ in result.failed] == [
        "create vulcand backend api", "create vulcand backend web",
    ]
    assert sorted(str(change) for change, _ in result.skipped) == [
        "create kong route web", "create kong service web",
        "create vulcand frontend api", "create vulcand frontend web",
        "create vulcand host api.service.consul", "create vulcand host web.service.consul",
        "create vulcand server web/web1",
    ]
    assert sorted(str(step) for step in result.done) == [
        "create consul service api", "create consul service web",
        "create vulcand listener api", "create vulcand listener web",
    ]
    assert "create vulcand server web/web1 not attempted: create vulcand backend web failed" \
        in result.errors()


def test_apply_writes_the_instances_of_a_ready_service_before_a_new_services_scaffolding():
    registries = fake_registries()
    calls = registries.consul.calls = registries.vulcand.calls = registries.kong.calls = []
    # "api" comes first in the plan and is new; "web" is registered and gains an instance.
    planned = reg.plan({"api": reg.ServiceSpec("api", 10001), "web": WEB2}, registered(WEB),
                       OWNER)
    result = reg.apply(planned, registries, max_workers=1)
    assert result.ok and len(calls) == len(planned.steps) == 8
    assert calls[0][:2] == ("upsert_server", "web")
    assert calls[1][0] == "register_service"


def test_apply_says_when_each_service_is_over_with_what_was_written():
    registries = fake_registries(fail={("upsert", "backends")})
    planned = reg.plan({"web": WEB, "api": reg.ServiceSpec("api", 10001)},
                       registered(), OWNER)
    finished = []
    result = reg.apply(planned, registries, max_workers=2,
                       on_service_done=lambda service, done: finished.append(
                           (service, sorted(map(str, done)))))
    assert not result.ok
    assert sorted(finished) == [
        ("api", ["create consul service api", "create vulcand listener api"]),
        ("web", ["create consul service web", "create vulcand listener web"]),
    ]


def test_apply_deletes_consul_last():
    registries = fake_registries()
    result = reg.apply(reg.plan({"web": None}, registered(WEB), OWNER), registries)
    assert result.ok and [str(step) for step in result.done] == DELETE_WEB
    assert registries.consul.calls == [("deregister_service", "web")]


# -- outcome ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "snapshot, desired, test, result, comment",
    [
        (registered(WEB), {"web": WEB}, False, True, "All registrations are in the correct state"),
        (registered(), {"web": WEB}, True, None, "8 registration changes would be made (web)"),
        (registered(), {"web": WEB}, False, True, "8 registration changes made (web)"),
    ],
)
def test_converge_result_and_comment(monkeypatch, snapshot, desired, test, result, comment):
    snapshots = iter([snapshot, registered(*[spec for spec in desired.values() if spec])])
    monkeypatch.setattr(reg, "read_snapshot", lambda *args, **kwargs: next(snapshots))
    registries = fake_registries()
    outcome = reg.converge(registries, OWNER, desired, test=test)
    assert (outcome.result, outcome.comment()) == (result, comment)
    assert outcome.changes() == (reg.plan(desired, snapshot, OWNER).changes())
    written = registries.consul.calls + registries.vulcand.calls + registries.kong.calls
    assert bool(written) is (not test and bool(outcome.changes()))


# -- pillar -----------------------------------------------------------------------------------


RULES = validationutil.PlatformRules(validationutil.PortRange(10000, 11000))
SETTINGS = reg.Settings(reg.Registries(None, None, None), OWNER, "service.consul", RULES)


@pytest.mark.parametrize(
    "services, only, message",
    [
        ({"web": {"port": 10000}}, ["nope"],
         "unknown service(s) 'nope': not in pillar services (known: web)"),
        ({"web": {"port": 10000}, "api": {"port": "10001"}}, ["web"],
         "services:api:port: expected an integer from 1 to 65535, not the string '10001'"),
    ],
)
def test_bad_pillar_is_refused_before_anything_is_read(services, only, message):
    with pytest.raises(SaltInvocationError) as err:
        reg.specs_from_pillar(services, SETTINGS, only=only)
    assert str(err.value) == message or message in str(err.value)


def test_pillar_services_become_specs():
    services = {
        "web": {"port": 10000, "instances": {"web1": {"address": "10.0.12.223", "port": 53769}}},
        "api": {"port": 10001, "gateway": False},
        "old": {"absent": True},
        "kong": {"absent": True},  # a reserved name may be deregistered (only ours goes)
    }
    assert reg.specs_from_pillar(services, SETTINGS) == {"web": WEB, "api": API, "old": None,
                                                         "kong": None}
    assert reg.specs_from_pillar(services, SETTINGS, only=["web"]) == {"web": WEB}


# -- Consul's catalog: names and ports held anywhere in the cluster ---------------------------


def in_catalog(snapshot, name, port, node="master", holder="not registered by Salt"):
    snapshot.catalog.setdefault(name, []).append(reg.CatalogEntry(node, port, holder))
    return snapshot


def test_a_name_held_anywhere_in_the_cluster_is_a_conflict_and_nothing_is_planned():
    snapshot = in_catalog(reg.Snapshot(OWNER), "web", 10500, node="slave1",
                          holder="registered by other/pillar")
    plan = reg.plan({"web": WEB, "api": API}, snapshot, OWNER)
    assert plan.conflicts == [
        "service 'web': the name is taken in Consul's catalog: Consul service on node slave1 "
        "(port 10500, registered by other/pillar)"]
    assert plan.services() == ["api"]


def test_a_port_of_a_platform_daemon_or_of_another_service_is_a_conflict():
    snapshot = in_catalog(reg.Snapshot(OWNER), "marathon", 10000)
    plan = reg.plan({"web": WEB}, snapshot, OWNER)
    assert plan.conflicts == [
        "service 'web': port 10000 is already the port of marathon (Consul service on node "
        "master (port 10000, not registered by Salt))"]
    assert not plan
    on_agent = reg.plan({"web": WEB}, in_catalog(reg.Snapshot(OWNER), "etcd", 10000, node=None),
                        OWNER)
    assert on_agent.conflicts == [
        "service 'web': port 10000 is already the port of etcd (Consul service on the "
        "registrations' agent (port 10000, not registered by Salt))"]

    twins = reg.plan({"web": WEB, "api": reg.ServiceSpec("api", 10000)}, reg.Snapshot(OWNER),
                     OWNER)
    assert twins.conflicts == ["service 'api': port 10000 is already the port of web",
                               "service 'web': port 10000 is already the port of api"]


def test_the_catalog_does_not_stop_a_deregistration():
    snapshot = in_catalog(registered(WEB), "web", 10000, node="slave1")
    assert steps(reg.plan({"web": None}, snapshot, OWNER))[-1] == "delete consul service web"


class CatalogConsul:
    """The Consul API as the catalog reader uses it: the agent's services and the catalog."""

    def __init__(self, agent, elsewhere):
        self.agent, self.elsewhere = agent, elsewhere
        self.catalog_reads = []

    def list_services(self):
        return {service["ID"]: service for service in self.agent}

    def list_catalog_services(self):
        names = {service["Service"]: [] for service in self.agent}
        return {**names, **{name: [] for name in self.elsewhere}}

    def catalog_service(self, name):
        self.catalog_reads.append(name)
        return self.elsewhere[name]


def test_the_catalog_is_read_for_the_names_the_agent_does_not_hold_only():
    ours = {"ID": "web", "Service": "web", "Port": 10000, "Meta": OWNER.consul_meta}
    platform = {"ID": "marathon", "Service": "marathon", "Port": 8080, "Meta": {}}
    consul = CatalogConsul([ours, platform], {
        "kong": [{"Node": "kong", "ServicePort": 8001, "ServiceMeta": {}}],
        "api": [{"Node": "master1", "ServicePort": 10001, "ServiceMeta": OWNER.consul_meta}],
    })
    registries = reg.Registries(consul, None, None)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        catalog = reg._read_catalog(registries, OWNER, None, pool)
    assert sorted(consul.catalog_reads) == ["api", "kong"]
    assert catalog == {
        "marathon": [reg.CatalogEntry(None, 8080, "not registered by Salt")],
        "kong": [reg.CatalogEntry("kong", 8001, "not registered by Salt")],
    }


def test_the_listener_range_of_the_pillar_is_the_registrations_default(repo_root):
    pillar = salt.utils.yaml.safe_load((repo_root / "pillar" / "platform.sls").read_text())
    assert pillar["platform"]["listener_ports"] == reg.SETTINGS["platform:listener_ports"]
