"""The registrar's decisions: which services to converge, with which instances, from what."""


import json

import pytest
from salt.exceptions import SaltInvocationError


import apiclientutil
import httpclientutil
import marathon_registrar
import marathonutil
import registrationutil
import validationutil
from registrationutil import CONSUL_SERVICE, VULCAND_SERVER, Owner, Ref

OWNER = Owner("test", marathon_registrar.SOURCE)
UUID = "4f1c3a52-7714-11e7-a55c-5ecf1c4671f6"


def app(app_id, service, port=10000, tasks=(), **labels):
    return {
        "id": app_id,
        "labels": {"registry.service": service, "registry.port": str(port), **labels},
        "healthChecks": [],
        "tasks": [
            {"id": f"{app_id.strip('/')}.instance-{number}-{UUID}._app.1", "host": "10.0.12.5",
             "ports": [50000 + number], "state": "TASK_RUNNING"}
            for number in tasks
        ],
    }


def instance(app_id, number):
    return f"{app_id.strip('/')}.instance-{number}-{UUID}"


class FakeMarathon:
    def __init__(self, apps):
        self.apps = {entry["id"]: entry for entry in apps}
        self.calls = []
        self.failure = None

    def iter_apps(self, label=None, with_text=False, known=None):
        self.calls.append(("iter_apps", label))
        self._maybe_fail()
        listing = json.dumps({"apps": list(self.apps.values())}).encode()
        return apiclientutil.json_array_items(listing, "apps", "the fake listing", with_text, known)

    def get_app(self, app_id):
        self.calls.append(("get_app", app_id))
        self._maybe_fail()
        if app_id not in self.apps:
            raise httpclientutil.NotFoundError("marathon", "GET", app_id, 404, "no such app")
        return self.apps[app_id]

    def _maybe_fail(self):
        if self.failure:
            raise self.failure


class Recorder:
    """Stands in for the registries: a fixed snapshot, and every plan applied."""

    def __init__(self, objects=None):
        self.snapshot = registrationutil.Snapshot(OWNER, dict(objects or {}))
        self.plans = []
        self.snapshot_names = []

    def read_snapshot(self, registries, owner, names=None, pool=None):
        assert owner == OWNER
        self.snapshot_names.append(names)
        return self.snapshot

    def apply(self, plan, registries, max_workers, pool=None, on_service_done=None):
        self.plans.append(plan)
        for service in plan.services():
            on_service_done(service, [step for step in plan.steps if step.ref.service == service])
        return registrationutil.ApplyResult(done=list(plan.steps))

    def steps(self):
        return {(str(step.ref), step.action) for plan in self.plans for step in plan.steps}


@pytest.fixture
def recorder(monkeypatch):
    recorder = Recorder()
    monkeypatch.setattr(registrationutil, "read_snapshot", recorder.read_snapshot)
    monkeypatch.setattr(registrationutil, "apply", recorder.apply)
    return recorder


def registrar(marathon, **options):
    platform = registrationutil.Settings(
        registries=registrationutil.Registries(None, None, None, marathon=marathon),
        owner=OWNER,
        domain="service.consul",
        rules=validationutil.PlatformRules(validationutil.PortRange(10000, 11000)),
    )
    events = []
    engine = marathon_registrar.Registrar(
        marathon_registrar.Settings(**options),
        platform,
        lambda data, tag: events.append((tag, data)),
    )
    return engine, events


def test_resync_registers_every_labelled_app_and_merges_apps_sharing_a_service(recorder):
    marathon = FakeMarathon([
        app("/web-blue", "web", port=10001, tasks=[1, 2]),
        app("/web-green", "web", port=10002, tasks=[3]),
        app("/api", "api", tasks=[]),
    ])
    engine, events = registrar(marathon)

    assert engine.resync()
    steps = recorder.steps()
    servers = {ref for ref, action in steps if ref.startswith("vulcand server web/")}
    expected = (("/web-blue", 1), ("/web-blue", 2), ("/web-green", 3))
    assert servers == {f"vulcand server web/{instance(app_id, n)}" for app_id, n in expected}
    assert ("consul service api", "create") in steps  # a service with no task yet
    # The first app id (sorted) gives a shared service its port.
    listener = next(step for plan in recorder.plans for step in plan.steps
                    if str(step.ref) == "vulcand listener web")
    assert listener.new["Address"] == "tcp://0.0.0.0:10001"
    assert marathon.calls == [("iter_apps", "registry.service")]
    assert recorder.snapshot_names == [None]
    tags = {tag for tag, _ in events}
    assert tags >= {"marathon/registrar/change/web", "marathon/registrar/resync"}


def test_a_resync_after_an_app_changed_plans_its_new_facts(recorder):
    # A service's spec is kept from one resync to the next only while its apps' facts are the
    # same.
    marathon = FakeMarathon([app("/web", "web", tasks=[1])])
    engine, _ = registrar(marathon)
    assert engine.resync()
    marathon.apps["/web"] = app("/web", "web", port=10003, tasks=[1, 2])
    recorder.plans.clear()

    assert engine.resync()
    steps = recorder.steps()
    assert (f"vulcand server web/{instance('/web', 2)}", "create") in steps
    listener = next(step for plan in recorder.plans for step in plan.steps
                    if str(step.ref) == "vulcand listener web")
    assert listener.new["Address"] == "tcp://0.0.0.0:10003"


def test_an_app_whose_text_in_the_listing_is_unchanged_keeps_its_facts(recorder):
    marathon = FakeMarathon([app("/web", "web", tasks=[1]), app("/api", "api", port=10001, tasks=[1])])
    engine, _ = registrar(marathon)
    assert engine.resync()
    web, api = engine.apps["/web"], engine.apps["/api"]
    marathon.apps["/api"] = app("/api", "api", port=10001, tasks=[1, 2])
    assert engine.resync()
    assert engine.apps["/web"] is web  # taken again from nothing: the same objects
    assert engine.apps["/api"] is not api
    assert set(engine.apps["/api"].instances) == {instance("/api", 1), instance("/api", 2)}


def test_apps_unchanged_in_the_listing_are_not_decoded_again(recorder, monkeypatch):
    apps = {f"/a{n}": app(f"/a{n}", f"s{n}", port=10000 + n, tasks=[1]) for n in range(6)}
    marathon = FakeMarathon(list(apps.values()))
    engine, _ = registrar(marathon)
    assert engine.resync()
    before = dict(engine.apps)
    decoded = []

    class CountingDecoder:
        def raw_decode(self, text, position, real=apiclientutil._JSON):
            item, end = real.raw_decode(text, position)
            decoded.append(item["id"])
            return item, end

    monkeypatch.setattr(apiclientutil, "_JSON", CountingDecoder())
    # /a2 changed, /a9 new (between /a3 and /a4's place), /a4 gone, the others as they were.
    apps["/a2"] = app("/a2", "s2", port=10002, tasks=[1, 2])
    marathon.apps = {app_id: apps[app_id] for app_id in ("/a0", "/a1", "/a2", "/a3")}
    marathon.apps.update({"/a9": app("/a9", "s9", port=10009, tasks=[1]), "/a5": apps["/a5"]})
    assert engine.resync()
    # The changed and the new app are decoded, and the one after the app that went (expected
    # where that one was); that one is then known by its id, and keeps its facts too.
    assert decoded == ["/a2", "/a9", "/a5"]
    assert set(engine.apps) == {"/a0", "/a1", "/a2", "/a3", "/a9", "/a5"}
    assert all(engine.apps[app_id] is before[app_id] for app_id in ("/a0", "/a1", "/a3", "/a5"))
    assert set(engine.apps["/a2"].instances) == {instance("/a2", 1), instance("/a2", 2)}
    assert ("consul service s4", "delete") in recorder.steps()
    decoded.clear()
    assert engine.resync()
    assert decoded == []  # nothing changed: nothing decoded


def test_an_instance_missing_its_health_results_is_kept_for_the_grace_only(recorder):
    checked = app("/web", "web", tasks=[1])
    checked["healthChecks"] = [{"protocol": "HTTP"}]
    checked["tasks"][0]["healthCheckResults"] = [{"alive": True}]
    marathon = FakeMarathon([checked])
    engine, _ = registrar(marathon, health_grace=30)
    now = [1000.0]
    engine.grace = marathonutil.HealthGrace(30, clock=lambda: now[0])
    assert engine.resync()
    assert set(engine.apps["/web"].instances) == {instance("/web", 1)}
    # A leader change: the results are gone; the same text, read again within the grace and
    # after it, keeps the instance and then drops it (facts that depend on the clock are
    # taken again, not kept).
    checked["tasks"][0]["healthCheckResults"] = []
    assert engine.resync()
    assert set(engine.apps["/web"].instances) == {instance("/web", 1)}
    now[0] += 31
    assert engine.resync()
    assert engine.apps["/web"].instances == {}
    # Healthy again; an event's read sees the results gone for a moment; a resync sees the
    # text it last saw (healthy): the facts are kept, and the grace is told "healthy" again,
    # so that the next time the results are missing it counts from then, not from the event.
    checked["tasks"][0]["healthCheckResults"] = [{"alive": True}]
    assert engine.resync() and engine.apps["/web"].instances
    checked["tasks"][0]["healthCheckResults"] = []
    assert engine.converge_apps({"/web"}) and engine.apps["/web"].instances
    checked["tasks"][0]["healthCheckResults"] = [{"alive": True}]
    now[0] += 20
    assert engine.resync()
    checked["tasks"][0]["healthCheckResults"] = []
    now[0] += 20
    assert engine.resync()
    assert set(engine.apps["/web"].instances) == {instance("/web", 1)}


def test_resync_removes_services_whose_app_is_gone(recorder):
    recorder.snapshot.objects[Ref(CONSUL_SERVICE, "gone", "gone")] = {"Name": "gone", "Port": 1}
    recorder.snapshot.objects[Ref(VULCAND_SERVER, "gone", "x")] = {"URL": "http://10.0.0.1:1"}
    engine, _ = registrar(FakeMarathon([]))

    assert engine.resync()
    assert recorder.steps() == {
        ("consul service gone", "delete"),
        ("vulcand server gone/x", "delete"),
    }


def test_an_app_with_invalid_labels_leaves_its_service_alone(recorder):
    recorder.snapshot.objects[Ref(CONSUL_SERVICE, "web", "web")] = {"Name": "web", "Port": 1}
    engine, events = registrar(FakeMarathon([app("/web", "web", port="not-a-port", tasks=[1])]))

    assert engine.resync()
    assert recorder.steps() == set()
    invalid = [data for tag, data in events if tag == "marathon/registrar/invalid"]
    reason = "app /web: label registry.port: expected a decimal integer, not 'not-a-port'"
    assert invalid == [{"app": "/web", "service": "web", "reason": reason}]


def test_a_service_name_that_is_no_dns_label_is_reported_and_skipped(recorder):
    engine, events = registrar(FakeMarathon([app("/web", "Web_App", tasks=[1])]))
    assert engine.resync()
    assert recorder.steps() == set()
    assert [tag for tag, _ in events if tag.endswith("/invalid")] == ["marathon/registrar/invalid"]


def test_an_invalid_app_is_reported_when_it_appears_or_changes_not_on_every_resync(recorder):
    marathon = FakeMarathon([app("/web", "web", port="not-a-port", tasks=[1])])
    engine, events = registrar(marathon)
    assert engine.resync() and engine.resync()
    marathon.apps["/web"] = app("/web", "web", port="0x10", tasks=[1])
    assert engine.resync() and engine.resync()
    reasons = [data["reason"] for tag, data in events if tag.endswith("/invalid")]
    assert [reason.rsplit(" ", 1)[-1] for reason in reasons] == ["'not-a-port'", "'0x10'"]
    summaries = [data for tag, data in events if tag.endswith("/resync")]
    assert [summary["invalid"] for summary in summaries] == [1, 1, 1, 1]

    marathon.apps["/web"] = app("/web", "web", tasks=[1])
    assert engine.resync()
    marathon.apps["/web"] = app("/web", "web", port="not-a-port", tasks=[1])
    assert engine.converge_apps({"/web"})  # fixed, then broken again: reported again
    assert len([tag for tag, _ in events if tag.endswith("/invalid")]) == 3
    assert [data["invalid"] for tag, data in events if tag.endswith("/resync")][-1] == 0


def test_a_conflict_is_reported_when_it_appears_or_changes_not_on_every_resync(recorder):
    recorder.snapshot.claims[(CONSUL_SERVICE, "web")] = "not registered by Salt"
    marathon = FakeMarathon([app("/web", "web", tasks=[1])])
    engine, events = registrar(marathon)

    def errors():
        return [data["error"] for tag, data in events if tag.endswith("/error")]

    assert engine.resync() and engine.resync() and engine.converge_apps({"/web"})
    assert len(errors()) == 1 and "exists and is not registered by Salt" in errors()[0]
    recorder.snapshot.claims[(CONSUL_SERVICE, "web")] = "registered by other/pillar"
    assert engine.resync() and engine.resync()
    assert len(errors()) == 2 and "registered by other/pillar" in errors()[1]
    assert [data["conflicts"] for tag, data in events if tag.endswith("/resync")] == [1] * 4

    del recorder.snapshot.claims[(CONSUL_SERVICE, "web")]
    assert engine.resync()
    recorder.snapshot.claims[(CONSUL_SERVICE, "web")] = "registered by other/pillar"
    assert engine.resync()  # given up, then taken again: reported again
    assert len(errors()) == 3
    assert [data["conflicts"] for tag, data in events if tag.endswith("/resync")][-2:] == [0, 1]


def test_a_few_changed_apps_are_read_one_by_one_and_converged_alone(recorder):
    marathon = FakeMarathon([app("/web", "web", tasks=[1]), app("/api", "api", tasks=[2])])
    engine, _ = registrar(marathon, burst_apps=3)

    assert engine.converge_apps({"/web"})
    assert marathon.calls == [("get_app", "/web")]
    assert recorder.snapshot_names == [{"web"}]
    assert {ref.split()[-1] for ref, _ in recorder.steps()} >= {"web", f"web/{instance('/web', 1)}"}
    assert not any("api" in ref for ref, _ in recorder.steps())


def test_a_burst_of_changed_apps_is_one_listing(recorder):
    marathon = FakeMarathon([app(f"/app{n}", f"app{n}", tasks=[n]) for n in range(5)])
    engine, _ = registrar(marathon, burst_apps=3)

    assert engine.converge_apps({f"/app{n}" for n in range(5)})
    assert marathon.calls == [("iter_apps", "registry.service")]
    assert recorder.snapshot_names == [{f"app{n}" for n in range(5)}]


def test_a_deleted_app_deregisters_its_service(recorder):
    marathon = FakeMarathon([app("/web", "web", tasks=[1])])
    engine, _ = registrar(marathon)
    engine.resync()
    recorder.plans.clear()

    del marathon.apps["/web"]
    assert engine.converge_apps({"/web"})
    steps = recorder.steps()
    assert {
        ("consul service web", "delete"),
        (f"vulcand server web/{instance('/web', 1)}", "delete"),
        ("kong route web", "delete"),
    } <= steps
    assert {action for _, action in steps} == {"delete"}
    assert engine.apps == {}


def test_an_app_losing_its_label_deregisters_its_service(recorder):
    marathon = FakeMarathon([app("/web", "web", tasks=[1])])
    engine, _ = registrar(marathon)
    engine.resync()
    recorder.plans.clear()

    marathon.apps["/web"]["labels"] = {}
    assert engine.converge_apps({"/web"})
    assert ("consul service web", "delete") in recorder.steps()
    assert {action for _, action in recorder.steps()} == {"delete"}


def test_between_resyncs_owned_services_converge_from_the_known_snapshot(recorder):
    marathon = FakeMarathon([app("/web", "web", tasks=[1])])
    engine, _ = registrar(marathon)
    engine.resync()
    recorder.plans.clear()

    marathon.apps["/web"] = app("/web", "web", tasks=[1, 2])
    assert engine.converge_apps({"/web"})
    assert recorder.steps() == {(f"vulcand server web/{instance('/web', 2)}", "create")}
    # A service the engine does not own yet is read afresh: its name may be taken.
    marathon.apps["/api"] = app("/api", "api", tasks=[3])
    assert engine.converge_apps({"/api"})
    assert recorder.snapshot_names == [None, {"api"}]


def test_an_event_for_an_app_that_did_not_change_plans_nothing(recorder):
    marathon = FakeMarathon([app("/web", "web", tasks=[1]), app("/api", "api", port=10001)])
    engine, _ = registrar(marathon)
    engine.resync()
    plans = len(recorder.plans)
    assert engine.converge_apps({"/web", "/api"})  # e.g. a health event with nothing new
    assert set(marathon.calls[-2:]) == {("get_app", "/api"), ("get_app", "/web")}
    assert len(recorder.plans) == plans
    marathon.apps["/web"] = app("/web", "web", tasks=[1, 2])
    assert engine.converge_apps({"/web", "/api"})
    assert {step.ref.service for step in recorder.plans[-1].steps} == {"web"}


def test_after_a_failed_registry_read_unchanged_apps_are_converged_again(recorder, monkeypatch):
    marathon = FakeMarathon([app("/web", "web", tasks=[1])])
    engine, _ = registrar(marathon)
    engine.resync()
    marathon.apps["/new"] = app("/new", "new", port=10001)

    def unreachable(*args, **kwargs):
        raise httpclientutil.UnreachableError("consul", "GET", "http://c/v1/agent/services")

    monkeypatch.setattr(registrationutil, "read_snapshot", unreachable)
    assert engine.converge_apps({"/new"}) is False
    monkeypatch.setattr(registrationutil, "read_snapshot", recorder.read_snapshot)
    assert engine.converge_apps({"/new", "/web"})
    assert recorder.snapshot_names[-1] == {"new", "web"}


def test_a_failed_write_makes_the_engine_read_the_registries_again(recorder, monkeypatch):
    marathon = FakeMarathon([app("/web", "web", tasks=[1])])
    engine, _ = registrar(marathon)
    engine.resync()
    monkeypatch.setattr(registrationutil, "apply", lambda plan, registries, max_workers, **options:
                        registrationutil.ApplyResult(failed=[(plan.steps[0], "HTTP 503")]))
    marathon.apps["/web"] = app("/web", "web", tasks=[1, 2])
    assert engine.converge_apps({"/web"}) is False
    assert engine.converge_apps({"/web"}) is False
    assert recorder.snapshot_names == [None, {"web"}]


def test_marathon_failures_are_reported_and_ask_for_a_retry(recorder):
    marathon = FakeMarathon([])
    marathon.failure = httpclientutil.UnreachableError("marathon", "GET", "http://m/v2/apps",
                                                      message="connection refused")
    engine, events = registrar(marathon)

    assert engine.resync() is False
    assert engine.converge_apps({"/web"}) is False
    errors = [data for tag, data in events if tag == "marathon/registrar/error"]
    assert [error["stage"] for error in errors] == ["resync", "read apps"]
    assert "connection refused" in errors[0]["error"]
    assert recorder.plans == []


def test_registry_write_failures_are_reported(recorder, monkeypatch):
    def failing_apply(plan, registries, max_workers, on_service_done=None, **options):
        first, rest = plan.steps[0], plan.steps[1:]
        on_service_done(first.ref.service, [])  # nothing written
        return registrationutil.ApplyResult(
            failed=[(first, "consul: PUT ... HTTP 500")], skipped=[(step, first) for step in rest]
        )

    monkeypatch.setattr(registrationutil, "apply", failing_apply)
    engine, events = registrar(FakeMarathon([app("/web", "web", tasks=[1])]))

    assert engine.resync() is False
    errors = [data["error"] for tag, data in events if tag == "marathon/registrar/error"]
    assert any("HTTP 500" in error for error in errors)
    assert not [tag for tag, _ in events if tag.startswith("marathon/registrar/change/")]


# -- start(): configuration -------------------------------------------------------------------


@pytest.fixture
def started(monkeypatch):
    """Run start() with a fake Registrar; returns what it was built with."""
    built = {}

    class FakeRegistrar:
        def __init__(self, settings, platform, fire, lock=None):
            built.update(settings=settings, platform=platform, lock=lock)

        def run(self):
            built["ran"] = True

    config = {"platform:consul:url": "http://consul:8500", "platform:marathon:url": "http://m:8080"}
    monkeypatch.setattr(marathon_registrar, "Registrar", FakeRegistrar)
    monkeypatch.setattr(marathon_registrar, "__salt__",
                        {"config.get": lambda key, default=None: config.get(key, default),
                         "event.send": lambda tag, data: None}, raising=False)
    monkeypatch.setattr(marathon_registrar, "__opts__", {"__role": "minion"}, raising=False)
    return built


def test_start_reads_platform_settings_and_engine_options(started):
    marathon_registrar.start(marathon_url="http://leader:8080", cluster="blue",
                             resync_interval="10", max_workers=4, lock=True)
    assert started["ran"]
    assert started["platform"].registries.marathon.http.base_url == "http://leader:8080"
    assert started["platform"].registries.consul.http.base_url == "http://consul:8500"
    assert started["platform"].owner == Owner("blue", "marathon")
    assert started["settings"].resync_interval == 10.0
    assert started["settings"].max_workers == 4
    assert started["lock"].key == "marathon-registrar/blue/leader"


def test_vulcands_store_defaults_to_the_platforms_etcd_and_empty_turns_it_off(started):
    marathon_registrar.start()
    store = started["platform"].registries.vulcand_store
    assert (store.http.base_url, store.prefix) == ("http://etcd.service.consul:2379", "/vulcand")
    marathon_registrar.start(vulcand_etcd_url="http://127.0.0.1:2379", vulcand_etcd_prefix="/v/")
    store = started["platform"].registries.vulcand_store
    assert (store.http.base_url, store.prefix) == ("http://127.0.0.1:2379", "/v")
    marathon_registrar.start(vulcand_etcd_url="")
    assert started["platform"].registries.vulcand_store is None


def test_start_rejects_unknown_options(started):
    with pytest.raises(SaltInvocationError, match="unknown option.*resync_intervall"):
        marathon_registrar.start(resync_intervall=5)


def test_on_a_minion_events_go_to_the_master_through_event_send():
    sent = []
    fire = marathon_registrar.event_sender(
        {"__role": "minion"}, {"event.send": lambda tag, data: sent.append((tag, data))}
    )
    fire({"service": "web"}, "marathon/registrar/change/web")
    assert sent == [("marathon/registrar/change/web", {"service": "web"})]
