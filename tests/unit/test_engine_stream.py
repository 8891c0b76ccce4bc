"""The registrar engine's work queue and event stream follower, against a scripted SSE server."""

import json
import queue
import threading

import pytest

from simulators.base import Response, Simulator, json_response, route


import marathonutil
from marathon_registrar import EventStream, Settings, WorkQueue

# -- the work queue ---------------------------------------------------------------------------


def test_duplicated_events_collapse_into_one_entry():
    work = WorkQueue()
    work.mark({"/web"})
    work.mark({"/web", "/api"})
    work.mark({"/web"})
    assert work.take(0) == ({"/web", "/api"}, False)
    assert work.take(0) == (set(), False)


def test_an_unreadable_event_marks_everything():
    work = WorkQueue()
    work.mark({"/web"})
    work.mark(None)
    assert work.take(0) == ({"/web"}, True)


def test_take_waits_for_work_from_another_thread():
    work = WorkQueue()
    taken = queue.Queue()
    thread = threading.Thread(target=lambda: taken.put(work.take(60)))
    thread.start()
    work.mark(set())  # events that name no app wake nobody
    work.mark({"/web"})
    thread.join(10)
    assert taken.get_nowait() == ({"/web"}, False)


# -- the event stream -------------------------------------------------------------------------


def sse(event_type, payload):
    return f"event: {event_type}\r\ndata: {json.dumps(payload)}\r\n\r\n".encode()


class ScriptedEvents(Simulator):
    """/v2/events: each connection plays the next script (a list of byte chunks) and ends.

    A script ending with ``HOLD`` keeps its connection open until the server stops; a
    :class:`threading.Event` in a script pauses it until the test sets that event.
    """

    name = "scripted-events"
    HOLD = object()

    def __init__(self):
        super().__init__()
        self.scripts = queue.Queue()
        self.requests = []
        self.release = threading.Event()

    @route("GET", r"/standby/v2/events")
    def redirect(self, request):
        return Response(302, headers={"Location": f"{self.url}/v2/events?{_query(request)}"})

    @route("GET", r"/v2/events")
    def events(self, request):
        self.requests.append(request)
        if request.headers.get("Accept") != "text/event-stream":
            return json_response({"message": "HTTP 405"}, 405)
        return Response(200, headers={"Content-Type": "text/event-stream"},
                        stream=self._play(self.scripts.get(timeout=10)))

    def _play(self, script):
        for chunk in script:
            if chunk is self.HOLD:
                self.release.wait(30)
                return
            if isinstance(chunk, threading.Event):
                chunk.wait(30)
                continue
            yield chunk


def _query(request):
    return "&".join(f"{name}={value}" for name, values in request.query.items() for value in values)


@pytest.fixture
def server():
    sim = ScriptedEvents().start()
    yield sim
    sim.release.set()
    sim.stop()


@pytest.fixture
def follow():
    """Start an EventStream on a URL; returns (stream, work queue, fired events)."""
    started = []

    def start(url, **overrides):
        options = {"reconnect_backoff": 0.01, "max_reconnect_backoff": 0.05, **overrides}
        work, fired = WorkQueue(), queue.Queue()
        fire = lambda data, tag: fired.put((tag, data))  # noqa: E731
        stream = EventStream(url, work, Settings(**options), fire)
        stream.start()
        started.append(stream)
        return stream, work, fired

    yield start
    for stream in started:
        stream.stop()


def next_fired(fired, tag):
    while True:
        got_tag, data = fired.get(timeout=10)
        if got_tag == tag:
            return data


def drain(work, until):
    """Collect marked apps until ``until(apps, everything)`` holds."""
    apps, everything = set(), False
    for _ in range(200):
        more, all_apps = work.take(0.05)
        apps |= more
        everything |= all_apps
        if until(apps, everything):
            return apps, everything
    raise AssertionError(f"only got {apps}, everything={everything}")


def test_stream_asks_for_the_events_that_matter_and_marks_their_apps(server, follow):
    server.scripts.put([
        sse("event_stream_attached", {"remoteAddress": "127.0.0.1"}),
        sse("status_update_event", {"appId": "/web", "taskStatus": "TASK_RUNNING"}),
        b"\r\n",  # heartbeat
        sse("instance_health_changed_event", {"runSpecId": "/api", "healthy": True}),
        ScriptedEvents.HOLD,
    ])
    stream, work, fired = follow(server.url)
    assert next_fired(fired, "connected")["url"].startswith(f"{server.url}/v2/events")
    apps, everything = drain(work, lambda apps, _: apps == {"/web", "/api"})
    assert everything, "a (re)connect must ask for a full resync"
    request = server.requests[0]
    assert request.query["event_type"] == list(marathonutil.EVENT_TYPES)


def test_stream_follows_the_standby_redirect_to_the_leader(server, follow):
    server.scripts.put([sse("app_terminated_event", {"appId": "/web"}), ScriptedEvents.HOLD])
    stream, work, fired = follow(f"{server.url}/standby")
    assert next_fired(fired, "connected")["url"].startswith(f"{server.url}/v2/events")
    drain(work, lambda apps, _: apps == {"/web"})


def test_stream_reconnects_after_a_cut_and_resyncs_again(server, follow):
    server.scripts.put([sse("status_update_event", {"appId": "/web"})])  # then the cut
    server.scripts.put([sse("status_update_event", {"appId": "/api"}), ScriptedEvents.HOLD])
    stream, work, fired = follow(server.url)
    next_fired(fired, "connected")
    assert "ended" in next_fired(fired, "disconnected")["reason"]
    next_fired(fired, "connected")
    drain(work, lambda apps, everything: apps == {"/web", "/api"} and everything)
    assert len(server.requests) == 2


def test_malformed_and_oversized_events_ask_for_a_full_resync(server, follow):
    gate = threading.Event()
    server.scripts.put([gate, b"event: status_update_event\r\ndata: {oops\r\n\r\n",
                        ScriptedEvents.HOLD])
    stream, work, fired = follow(server.url)
    next_fired(fired, "connected")
    assert work.take(5) == (set(), True)  # the resync every connect asks for
    gate.set()
    assert work.take(5) == (set(), True)


def test_a_refused_stream_is_retried_with_backoff(server, follow):
    server.faults.fail(count=2, status=503, path="/v2/events")
    server.scripts.put([ScriptedEvents.HOLD])
    stream, work, fired = follow(server.url)
    assert "HTTP 503" in next_fired(fired, "disconnected")["reason"]
    next_fired(fired, "connected")


def test_a_silent_stream_is_dropped_after_the_stream_timeout(server, follow):
    server.scripts.put([ScriptedEvents.HOLD])  # no heartbeat at all
    server.scripts.put([ScriptedEvents.HOLD])
    stream, work, fired = follow(server.url, stream_timeout=0.3)
    next_fired(fired, "connected")
    assert "timed out" in next_fired(fired, "disconnected")["reason"].lower()
    next_fired(fired, "connected")


def test_stop_interrupts_a_blocked_read(server, follow):
    server.scripts.put([ScriptedEvents.HOLD])
    stream, work, fired = follow(server.url)
    assert stream.connected.wait(10)
    stopper = threading.Thread(target=stream.stop)
    stopper.start()
    stopper.join(5)
    assert not stopper.is_alive(), "stop() must not wait for the next heartbeat"
