"""marathonutil: Marathon apps, task ids and events turned into registration facts."""

import json

import pytest


import marathonutil
import validationutil
from marathonutil import (
    HealthGrace,
    MarathonDataError,
    ServerSentEvent,
    ServiceLabels,
)

RULES = validationutil.PlatformRules(validationutil.PortRange(10000, 11000))

UUID = "4f1c3a52-7714-11e7-a55c-5ecf1c4671f6"


# -- task ids ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "task_id, app_id, instance_id, incarnation",
    [
        (f"web.{UUID}", "/web", f"web.{UUID}", 0),  # Marathon <= 1.3
        (f"group_web.{UUID}", "/group/web", f"group_web.{UUID}", 0),
        (f"group_web_{UUID}", "/group/web", f"group_web_{UUID}", 0),  # legacy "_" separator
        (f"web.instance-{UUID}.$anon", "/web", f"web.instance-{UUID}", 0),  # 1.4 - 1.7
        (f"web.marathon-{UUID}.$anon", "/web", f"web.marathon-{UUID}", 0),  # migrated legacy
        (f"a_b_web.instance-{UUID}._app.3", "/a/b/web", f"a_b_web.instance-{UUID}", 3),  # 1.8+
        (f"web.instance-{UUID}.rails.42", "/web", f"web.instance-{UUID}", 42),  # pod container
        (f"web.instance-{UUID}", "/web", f"web.instance-{UUID}", 0),  # bare instance id
    ],
)
def test_parse_task_id_understands_every_marathon_format(task_id, app_id, instance_id, incarnation):
    parsed = marathonutil.parse_task_id(task_id)
    assert (parsed.task_id, parsed.app_id, parsed.instance_id, parsed.incarnation) == (
        task_id,
        app_id,
        instance_id,
        incarnation,
    )


@pytest.mark.parametrize("bad", ["", "web", None, 42, ".x"])
def test_parse_task_id_rejects_what_no_marathon_writes(bad):
    with pytest.raises(MarathonDataError):
        marathonutil.parse_task_id(bad)


def test_incarnations_of_one_instance_share_the_instance_id():
    first = marathonutil.parse_task_id(f"web.instance-{UUID}._app.1")
    second = marathonutil.parse_task_id(f"web.instance-{UUID}._app.2")
    assert first.instance_id == second.instance_id != first.task_id


# -- labels -----------------------------------------------------------------------------------


def app(labels=None, **fields):
    return {"id": "/web", "labels": labels or {}, **fields}


@pytest.mark.parametrize(
    "definition, expected",
    [
        (app(), None),
        (app({"other": "x"}), None),
        (app({"registry.service": "web", "registry.port": "10000"}), ServiceLabels("web", 10000)),
        (
            app(
                {
                    "registry.service": "web",
                    "registry.port": "10001",
                    "registry.port-index": "1",
                    "registry.gateway": "false",
                }
            ),
            ServiceLabels("web", 10001, 1, False),
        ),
        # The service port defaults to Marathon's, in every app format.
        (
            app({"registry.service": "web"}, portDefinitions=[{"port": 10005}]),
            ServiceLabels("web", 10005),
        ),
        (
            app({"registry.service": "web"}, container={"portMappings": [{"servicePort": 10006}]}),
            ServiceLabels("web", 10006),
        ),
        (
            app(
                {"registry.service": "web"},
                container={"docker": {"portMappings": [{"servicePort": 10007}]}},
            ),
            ServiceLabels("web", 10007),
        ),
        (app({"registry.service": "web"}, ports=[10008]), ServiceLabels("web", 10008)),
    ],
)
def test_service_labels(definition, expected):
    assert marathonutil.service_labels(definition, RULES) == expected


@pytest.mark.parametrize(
    "labels, fields, message",
    [
        ({"registry.service": ""}, {}, "label registry.service: expected a DNS label"),
        ({"registry.service": " web "}, {}, "label registry.service: expected a DNS label"),
        ({"registry.service": "web"}, {}, "no registry.port label"),
        ({"registry.service": "web"}, {"portDefinitions": [{"port": 0}]}, "no registry.port label"),
        ({"registry.service": "web", "registry.port": "http"}, {},
         "label registry.port: expected a decimal integer, not 'http'"),
        ({"registry.service": "web", "registry.port": "70000"}, {},
         "label registry.port: expected an integer from 1 to 65535, not 70000"),
        ({"registry.service": "web", "registry.port": "10000", "registry.port-index": "-1"}, {},
         "label registry.port-index: expected a decimal integer, not '-1'"),
        ({"registry.service": "web", "registry.port": "10000", "registry.gateway": "maybe"}, {},
         "label registry.gateway: expected true or false, not 'maybe'"),
        ({"registry.service": "web", "registry.port": "10000", "registry.gateway": "False"}, {},
         "label registry.gateway: expected true or false, not 'False'"),
        ({"registry.service": "web", "registry.port": "10000", "registry.prot": "10001"}, {},
         "unknown label(s) registry.prot (allowed: registry.gateway, registry.port, "
         "registry.port-index, registry.service)"),
        # The platform's rules: its own names, and only the listener range for service ports.
        ({"registry.service": "kong", "registry.port": "10000"}, {},
         "label registry.service: 'kong' is reserved for the platform's own services"),
        ({"registry.service": "consul", "registry.port": "10000"}, {},
         "label registry.service: 'consul' is reserved"),
        ({"registry.service": "web", "registry.port": "8080"}, {},
         "label registry.port: 8080 is outside the platform's listener ports 10000-11000"),
        ({"registry.service": "web"}, {"portDefinitions": [{"port": 2379}]},
         "Marathon service port 0: 2379 is outside the platform's listener ports 10000-11000"),
    ],
)
def test_invalid_labels_name_the_app_and_label(labels, fields, message):
    with pytest.raises(MarathonDataError) as err:
        marathonutil.service_labels(app(labels, **fields), RULES)
    assert str(err.value).startswith("app /web: ")
    assert message in str(err.value)


# -- tasks -> instances -----------------------------------------------------------------------


def task(number, state="TASK_RUNNING", health=None, **fields):
    entry = {
        "id": f"web.instance-{number:08d}-0000-0000-0000-000000000000._app.1",
        "appId": "/web",
        "host": "10.0.12.5",
        "ports": [50000 + number, 51000 + number],
        "state": state,
        **fields,
    }
    if health is not None:
        entry["healthCheckResults"] = [{"alive": alive} for alive in health]
    return entry


def instance_id(number):
    return f"web.instance-{number:08d}-0000-0000-0000-000000000000"


HEALTH_CHECKS = [{"protocol": "HTTP", "path": "/health"}]


@pytest.mark.parametrize(
    "health_checks, tasks, expected",
    [
        # Without health checks, every running task is an instance; nothing else is.
        (
            [],
            [task(1), task(2, "TASK_STAGING"), task(3, "TASK_KILLING"), task(4, "TASK_KILLED"),
             task(5, "TASK_FAILED"), task(6, "TASK_LOST"), task(7, "TASK_STARTING")],
            {1},
        ),
        # With health checks: running and every result alive.
        (
            HEALTH_CHECKS,
            [task(1, health=[True]), task(2, health=[False]), task(3, health=[True, False]),
             task(4, health=[]), task(5), task(6, "TASK_KILLING", health=[True])],
            {1},
        ),
    ],
)
def test_instances_are_running_and_healthy_tasks(health_checks, tasks, expected):
    found = marathonutil.instances_from_app(app(healthChecks=health_checks, tasks=tasks))
    assert found == {instance_id(number): ("10.0.12.5", 50000 + number) for number in expected}


def test_port_index_picks_the_task_port():
    found = marathonutil.instances_from_app(app(tasks=[task(1)]), port_index=1)
    assert found == {instance_id(1): ("10.0.12.5", 51001)}


def test_ip_per_task_apps_use_the_task_address_and_container_port():
    ip_task = task(1, ports=[], ipAddresses=[{"ipAddress": "172.17.0.3", "protocol": "IPv4"}])
    definition = app(container={"portMappings": [{"containerPort": 8080}]}, tasks=[ip_task])
    assert marathonutil.instances_from_app(definition) == {instance_id(1): ("172.17.0.3", 8080)}


def test_tasks_without_an_endpoint_are_left_out():
    assert marathonutil.instances_from_app(app(tasks=[task(1, ports=[])])) == {}


def test_an_unparsable_task_id_is_an_error():
    with pytest.raises(MarathonDataError, match="not a Marathon task id"):
        marathonutil.instances_from_app(app(tasks=[task(1, id="nonsense")]))


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_grace_keeps_a_known_healthy_instance_while_results_are_missing():
    clock = FakeClock()
    grace = HealthGrace(30, clock=clock)
    definition = app(healthChecks=HEALTH_CHECKS, tasks=[task(1, health=[True]), task(2, health=[])])

    # Task 2 was never seen healthy: a new task still in its health grace period.
    assert set(marathonutil.instances_from_app(definition, grace=grace)) == {instance_id(1)}

    # Leader change: every result vanishes. Known-healthy task 1 stays, for the grace period.
    definition["tasks"] = [task(1, health=[]), task(2, health=[])]
    clock.now += 10
    assert set(marathonutil.instances_from_app(definition, grace=grace)) == {instance_id(1)}
    clock.now += 29  # the grace period runs from when the results went missing
    assert set(marathonutil.instances_from_app(definition, grace=grace)) == {instance_id(1)}
    clock.now += 1
    assert marathonutil.instances_from_app(definition, grace=grace) == {}


def test_grace_restarts_once_results_come_back_and_ends_on_an_unhealthy_result():
    clock = FakeClock()
    grace = HealthGrace(30, clock=clock)
    grace.remember([instance_id(1)])  # e.g. found registered when the engine started
    missing = app(healthChecks=HEALTH_CHECKS, tasks=[task(1, health=[])])
    healthy = app(healthChecks=HEALTH_CHECKS, tasks=[task(1, health=[True])])
    unhealthy = app(healthChecks=HEALTH_CHECKS, tasks=[task(1, health=[False])])

    assert marathonutil.instances_from_app(missing, grace=grace)
    clock.now += 25
    assert marathonutil.instances_from_app(healthy, grace=grace)
    clock.now += 25
    assert marathonutil.instances_from_app(missing, grace=grace)  # a fresh grace period
    assert not marathonutil.instances_from_app(unhealthy, grace=grace)
    assert not marathonutil.instances_from_app(missing, grace=grace)  # no longer known healthy


def test_grace_forgets_instances_marathon_no_longer_has():
    grace = HealthGrace(30, clock=FakeClock())
    grace.remember([instance_id(1), instance_id(2)])
    grace.retain_only([instance_id(2)])
    assert not grace.keeps(instance_id(1))
    assert grace.keeps(instance_id(2))


# -- Server-Sent Events -----------------------------------------------------------------------


def frame(event_type, data, newline="\r\n"):
    return f"event: {event_type}{newline}data: {json.dumps(data)}{newline}{newline}".encode()


def test_sse_parser_reads_marathon_framing_with_heartbeats_and_comments():
    stream = (
        frame("event_stream_attached", {"remoteAddress": "127.0.0.1"})
        + b"\r\n"  # heartbeat
        + b": a comment\n"
        + frame("status_update_event", {"appId": "/web"}, newline="\n")
        + b"data: line one\rdata: line two\r\r\n"
    )
    events = marathonutil.SSEParser().feed(stream)
    assert events == [
        ServerSentEvent("event_stream_attached", '{"remoteAddress": "127.0.0.1"}'),
        ServerSentEvent("status_update_event", '{"appId": "/web"}'),
        ServerSentEvent("message", "line one\nline two"),
    ]


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 64])
def test_sse_parser_gives_the_same_events_however_the_stream_is_chunked(chunk_size):
    stream = b"".join(frame("status_update_event", {"appId": f"/app{n}"}) for n in range(5))
    parser = marathonutil.SSEParser()
    events = []
    for offset in range(0, len(stream), chunk_size):
        events += parser.feed(stream[offset : offset + chunk_size])
    assert [json.loads(event.data)["appId"] for event in events] == [f"/app{n}" for n in range(5)]


def test_sse_parser_drops_the_data_of_an_oversized_event_and_carries_on():
    parser = marathonutil.SSEParser(max_event_bytes=100)
    big = frame("deployment_success", {"plan": "x" * 500})
    events = []
    for offset in range(0, len(big), 16):  # the long line arrives in pieces, never whole
        events += parser.feed(big[offset : offset + 16])
    events += parser.feed(frame("status_update_event", {"appId": "/web"}))
    assert events == [
        ServerSentEvent("deployment_success", None),
        ServerSentEvent("status_update_event", '{"appId": "/web"}'),
    ]


# -- events -> apps ---------------------------------------------------------------------------


def event(event_type, payload):
    return ServerSentEvent(event_type, json.dumps(payload))


DEPLOYMENT_PLAN = {
    "id": "d1",
    "steps": [
        {"actions": [{"action": "StartApplication", "app": "/web"}]},
        {"actions": [{"type": "ScaleApplication", "app": "/group/api"}]},
    ],
}


@pytest.mark.parametrize(
    "sse, apps",
    [
        (event("status_update_event", {"appId": "/web", "taskStatus": "TASK_RUNNING"}), {"/web"}),
        (event("status_update_event", {"taskId": f"group_web.{UUID}"}), {"/group/web"}),
        (event("instance_changed_event", {"runSpecId": "/web", "condition": "Killed"}), {"/web"}),
        (event("instance_health_changed_event", {"instanceId": f"web.instance-{UUID}"}), {"/web"}),
        (event("health_status_changed_event", {"appId": "web/", "alive": False}), {"/web"}),
        (event("unhealthy_instance_kill_event", {"appId": "/web"}), {"/web"}),
        (event("app_terminated_event", {"appId": "/web"}), {"/web"}),
        (event("api_post_event", {"appDefinition": {"id": "/web"}}), {"/web"}),
        (
            event("deployment_success", {"id": "d1", "plan": DEPLOYMENT_PLAN}),
            {"/web", "/group/api"},
        ),
        (
            event(
                "deployment_step_success",
                {"plan": {"steps": []}, "currentStep": {"actions": [{"app": "/web"}]}},
            ),
            {"/web"},
        ),
        (event("deployment_success", {"plan": {"steps": []}}), set()),  # pods only: no app
        (event("event_stream_attached", {"remoteAddress": "127.0.0.1"}), set()),
        (event("framework_message_event", {}), set()),
    ],
)
def test_apps_of_event(sse, apps):
    assert marathonutil.apps_of_event(sse) == frozenset(apps)


@pytest.mark.parametrize(
    "sse",
    [
        ServerSentEvent("status_update_event", "{not json"),
        ServerSentEvent("status_update_event", "[1, 2]"),
        ServerSentEvent("status_update_event", None),  # too large to keep
        event("status_update_event", {"taskStatus": "TASK_RUNNING"}),  # no app, no task
        event("status_update_event", {"taskId": "nonsense"}),
        event("status_update_event", {"appId": 42}),
        event("api_post_event", {"appDefinition": {}}),  # a group update
        event("deployment_success", {"id": "d1"}),
    ],
)
def test_unreadable_events_ask_for_a_full_resync(sse):
    assert marathonutil.apps_of_event(sse) is None


def test_the_engine_subscribes_to_every_event_that_can_change_registrations():
    assert {"status_update_event", "instance_health_changed_event", "health_status_changed_event",
            "api_post_event", "app_terminated_event"} <= set(marathonutil.EVENT_TYPES)
