"""
Marathon facts for the registration core: pure functions, no HTTP.

Everything here turns what Marathon says (app definitions with their tasks, task ids, the
Server-Sent Events stream) into what the registration core needs (service specs and their
instances), so that the Marathon engine and the ``services:<name>:marathon_app`` pillar key
read Marathon identically.

Marathon labels
===============

An app opts in to registration through its labels (Marathon labels are strings); apps without
``registry.service`` are left alone.

``registry.service`` (required)
    The service name: one DNS label (``web``), not one of the platform's reserved names. It
    becomes ``web.<domain>`` in vulcand, Consul and Kong. Several apps may carry the same name
    (blue/green): the service then has the tasks of all of them.

``registry.port`` (optional)
    The service port: the vulcand listener and the Consul service port, in the platform's
    listener range. Defaults to the app's Marathon service port (``portDefinitions[i].port`` or
    ``portMappings[i].servicePort``, which Marathon assigns from 10000 up).

``registry.port-index`` (optional, default ``0``)
    Which of the task's ports the instances listen on (the index into the task's host ports, as
    for Marathon health checks).

``registry.gateway`` (optional, default ``true``)
    Whether Kong routes ``<service>.<domain>`` to the service (``true``/``false``).

Any other ``registry.*`` label is refused, as a misspelt one would otherwise be ignored.

Which tasks are instances
=========================

A task is an instance when it is ``TASK_RUNNING`` and, if its app has health checks, every
health result Marathon reports for it is alive. Apps without health checks register their
running tasks. A task whose app has health checks but which has no results at all (Marathon
forgets them on a leader change) stays an instance only while a :class:`HealthGrace` remembers it
as healthy, for a bounded time.

The registry id of an instance is its Marathon *instance* id (``web.instance-<uuid>`` since
Marathon 1.4; the task id itself for older ids), so a task relaunched in place (a new
incarnation, ``..._app.2``) updates its instance instead of adding one.
"""

import json
import re
import time
from dataclasses import dataclass, field

import validationutil

LABEL_SERVICE = "registry.service"
LABEL_PORT = "registry.port"
LABEL_PORT_INDEX = "registry.port-index"
LABEL_GATEWAY = "registry.gateway"

RUNNING = "TASK_RUNNING"

# The event types that say an app's registrations may have changed; the engine asks the stream
# for these only (``/v2/events?event_type=...``, Marathon 1.3.7+).
EVENT_TYPES = (
    "status_update_event",
    "instance_changed_event",
    "health_status_changed_event",
    "instance_health_changed_event",
    "failed_health_check_event",
    "unhealthy_task_kill_event",
    "unhealthy_instance_kill_event",
    "api_post_event",
    "app_terminated_event",
    "deployment_step_success",
    "deployment_step_failure",
    "deployment_success",
    "deployment_failed",
)

LABELS = (LABEL_SERVICE, LABEL_PORT, LABEL_PORT_INDEX, LABEL_GATEWAY)
_BOOLEANS = {"true": True, "false": False}

# Instance-era task ids (1.4+): <app>.<instance-|marathon-><uuid>.<container>[.<incarnation>],
# where the container is "$anon" (1.4-1.7) or "_app" (1.8+). Legacy ids: <app>.<uuid> (or _).
_INSTANCE_TASK_ID = re.compile(
    r"^(?P<app>.+)\.(?P<instance>(?:instance|marathon)-[^._]+)"
    r"(?:\.(?P<container>[^.]+)(?:\.(?P<incarnation>\d+))?)?$"
)
_LEGACY_TASK_ID = re.compile(r"^(?P<app>.+)[._](?P<uuid>[^._]+)$")


class MarathonDataError(ValueError):
    """Marathon data that cannot be used as it is (bad labels, unparsable task ids)."""


# -- task ids ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskId:
    """A parsed Marathon task id: the app it belongs to and its stable instance id."""

    task_id: str
    app_id: str
    instance_id: str
    incarnation: int = 0


def parse_task_id(task_id):
    """Parse a task or instance id of any Marathon 1.x format into a :class:`TaskId`.

    ``group_web.4f1c...`` (legacy), ``web.instance-4f1c....$anon`` (1.4-1.7),
    ``web.instance-4f1c..._app.3`` (1.8+) and bare instance ids (``web.instance-4f1c...``, as in
    ``instance_changed_event``) are all understood. Raises :class:`MarathonDataError` otherwise.
    """
    if not isinstance(task_id, str):
        raise MarathonDataError(f"task id must be a string, not {task_id!r}")
    match = _INSTANCE_TASK_ID.match(task_id)
    if match:
        instance_id = f"{match['app']}.{match['instance']}"
        return TaskId(task_id, _app_from_safe_path(match["app"]), instance_id,
                      int(match["incarnation"] or 0))
    match = _LEGACY_TASK_ID.match(task_id)
    if match:
        return TaskId(task_id, _app_from_safe_path(match["app"]), task_id)
    raise MarathonDataError(f"not a Marathon task id: {task_id!r}")


def _app_from_safe_path(safe_path):
    # Marathon writes /group/app as group_app in ids (app id segments never contain "_").
    return "/" + safe_path.replace("_", "/")


def normalise_app_id(app_id):
    """An app id in Marathon's absolute form: ``web`` and ``/web/`` are both ``/web``."""
    if not isinstance(app_id, str) or not app_id.strip("/"):
        raise MarathonDataError(f"not a Marathon app id: {app_id!r}")
    return "/" + app_id.strip("/")


# -- labels -> service ------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceLabels:
    """What an app's labels ask for."""

    name: str
    port: int
    port_index: int = 0
    gateway: bool = True


def service_labels(app, rules):
    """The :class:`ServiceLabels` of ``app``, or None when the app has not opted in.

    ``rules`` (:class:`validationutil.PlatformRules`) say which service names and ports the
    platform allows. Raises :class:`MarathonDataError` naming the app and label when a label is
    invalid, a ``registry.*`` label unknown, the name reserved or the port outside the range.
    """
    labels = app.get("labels") or {}
    name = labels.get(LABEL_SERVICE)
    if name is None:
        return None
    app_id = app.get("id", "?")

    def path(label):
        return f"app {app_id}: label {label}"

    try:
        unknown = sorted(label for label in labels
                         if label.startswith("registry.") and label not in LABELS)
        if unknown:
            raise validationutil.Invalid(
                f"app {app_id}", f"unknown label(s) {', '.join(unknown)} "
                                 f"(allowed: {', '.join(sorted(LABELS))})")
        rules.service_name(name, path(LABEL_SERVICE))
        port_index = _int_label(labels, LABEL_PORT_INDEX, path(LABEL_PORT_INDEX), 0, 0, 1023)
        port = _int_label(labels, LABEL_PORT, path(LABEL_PORT), _service_port(app, port_index),
                          1, 65535)
        if port is None:
            raise validationutil.Invalid(
                f"app {app_id}", f"no {LABEL_PORT} label and no Marathon service port at "
                                 f"index {port_index}")
        rules.service_port(port, path(LABEL_PORT) if LABEL_PORT in labels
                           else f"app {app_id}: Marathon service port {port_index}")
        gateway = labels.get(LABEL_GATEWAY, "true")
        if gateway not in _BOOLEANS:
            raise validationutil.Invalid(path(LABEL_GATEWAY),
                                         f"expected true or false, not {gateway!r}")
    except validationutil.Invalid as err:
        raise MarathonDataError(str(err)) from None
    return ServiceLabels(name, port, port_index, _BOOLEANS[gateway])


def _int_label(labels, label, path, default, minimum, maximum):
    """A label holding a decimal integer (Marathon labels are strings)."""
    raw = labels.get(label)
    if raw is None:
        return default
    if not isinstance(raw, str) or not raw.isdigit():
        raise validationutil.Invalid(path, f"expected a decimal integer, not {raw!r}")
    return validationutil.integer(int(raw), path, minimum, maximum)


def _service_port(app, port_index):
    """Marathon's service port at ``port_index`` (any app format since 1.0), or None."""
    container = app.get("container") or {}
    for definitions, key in (
        (app.get("portDefinitions"), "port"),
        (container.get("portMappings"), "servicePort"),
        ((container.get("docker") or {}).get("portMappings"), "servicePort"),
    ):
        if definitions and len(definitions) > port_index:
            return definitions[port_index].get(key) or None
    ports = app.get("ports")  # Marathon < 1.0
    if ports and len(ports) > port_index:
        return ports[port_index] or None
    return None


# -- tasks -> instances -----------------------------------------------------------------------


class HealthGrace:
    """Remembers healthy instances, to ride out Marathon's empty health results.

    After a Marathon leader change every task's ``healthCheckResults`` is empty until the new
    leader has run its checks again. An instance seen healthy before (or found registered when
    the engine starts) stays an instance while its results are missing, for at most ``seconds``
    from when they went missing; a result that says unhealthy removes it at once.
    """

    def __init__(self, seconds, clock=time.monotonic):
        self.seconds = seconds
        self._clock = clock
        self._missing_since = {}  # instance id -> None while healthy, else when results vanished

    def remember(self, instance_ids):
        """Count ``instance_ids`` as known healthy unless already known (e.g. registered ones)."""
        for instance_id in instance_ids:
            self._missing_since.setdefault(instance_id, None)

    def healthy(self, instance_id):
        self._missing_since[instance_id] = None

    def unhealthy(self, instance_id):
        self._missing_since.pop(instance_id, None)

    def keeps(self, instance_id):
        """Whether an instance without health results stays registered for now."""
        if instance_id not in self._missing_since:
            return False
        now = self._clock()
        since = self._missing_since[instance_id]
        if since is None:
            self._missing_since[instance_id] = since = now
        return now - since < self.seconds

    def retain_only(self, instance_ids):
        """Forget every instance not in ``instance_ids`` (those Marathon no longer has)."""
        keep = set(instance_ids)
        for instance_id in [known for known in self._missing_since if known not in keep]:
            del self._missing_since[instance_id]


class GraceRecorder:
    """A :class:`HealthGrace` used through this records what it was told, so that taking the
    same app's instances again can be :meth:`replay`-ed instead. ``timed``: it was asked
    whether to keep an instance, which depends on the clock: such a result is not replayed."""

    def __init__(self, grace):
        self._grace = grace
        self.told = []  # (instance id, healthy), in order
        self.timed = False

    def healthy(self, instance_id):
        self.told.append((instance_id, True))
        self._grace.healthy(instance_id)

    def unhealthy(self, instance_id):
        self.told.append((instance_id, False))
        self._grace.unhealthy(instance_id)

    def keeps(self, instance_id):
        self.timed = True
        return self._grace.keeps(instance_id)

    @staticmethod
    def replay(grace, told):
        for instance_id, healthy in told:
            (grace.healthy if healthy else grace.unhealthy)(instance_id)


def instances_from_app(app, port_index=0, grace=None):
    """The registrable instances of ``app``: ``{instance_id: (address, port)}``.

    ``app`` is Marathon's app JSON with its ``tasks`` (``GET /v2/apps/{id}``, or an element of
    ``GET /v2/apps?embed=apps.tasks``). ``grace`` (a :class:`HealthGrace`) keeps known-healthy
    instances whose health results are missing; without it such tasks are not instances. Tasks
    that are not running, unhealthy, or that have no address or port at ``port_index`` are left
    out. Raises :class:`MarathonDataError` for a task id no Marathon version writes.
    """
    has_health_checks = bool(app.get("healthChecks"))
    instances = {}
    for task in app.get("tasks") or ():
        if task.get("state") != RUNNING:
            continue
        instance_id = parse_task_id(task.get("id")).instance_id
        if has_health_checks and not _passes_health(task, instance_id, grace):
            continue
        endpoint = _endpoint(app, task, port_index)
        if endpoint is not None:
            instances[instance_id] = endpoint
    return instances


def _passes_health(task, instance_id, grace):
    results = task.get("healthCheckResults") or []
    if not results:
        return grace is not None and grace.keeps(instance_id)
    alive = all(result.get("alive") is True for result in results)
    if grace is not None:
        (grace.healthy if alive else grace.unhealthy)(instance_id)
    return alive


def _endpoint(app, task, port_index):
    """(address, port) of a task: its agent's host port, or its own IP and container port."""
    ports = task.get("ports") or []
    if len(ports) > port_index and task.get("host"):
        return task["host"], ports[port_index]
    # IP-per-task networking (USER/container networks) allocates no host ports.
    addresses = [entry.get("ipAddress") for entry in task.get("ipAddresses") or ()]
    mappings = (app.get("container") or {}).get("portMappings") or []
    if addresses and addresses[0] and len(mappings) > port_index:
        container_port = mappings[port_index].get("containerPort")
        if container_port:
            return addresses[0], container_port
    return None


# -- Server-Sent Events -----------------------------------------------------------------------


@dataclass(frozen=True)
class ServerSentEvent:
    """One event of the stream; ``data`` is None when it was larger than the parser keeps."""

    type: str
    data: object


_LINE_END = re.compile(rb"\r\n|\r|\n")


@dataclass
class SSEParser:
    """Incremental parser of a ``text/event-stream`` body (any line ending, any chunking).

    ``feed(chunk)`` returns the events completed by ``chunk``. An event larger than
    ``max_event_bytes`` is not kept: it comes out with ``data=None``, so the caller can fall
    back to a full read instead of holding an unbounded buffer.
    """

    max_event_bytes: int = 16 * 1024 * 1024
    _buffer: bytearray = field(default_factory=bytearray)
    _scan_from: int = 0  # the buffer before this offset holds no line end
    _skipping_line: bool = False  # dropping the rest of a line longer than the limit
    _type: str = ""
    _data: list = field(default_factory=list)
    _size: int = 0
    _oversized: bool = False

    def feed(self, chunk):
        self._buffer += chunk
        events, start = [], 0
        for match in _LINE_END.finditer(self._buffer, self._scan_from):
            if match.group() == b"\r" and match.end() == len(self._buffer):
                break  # maybe the first half of a CRLF split across chunks
            if self._skipping_line:
                self._skipping_line = False
            else:
                event = self._line(bytes(self._buffer[start : match.start()]))
                if event is not None:
                    events.append(event)
            start = match.end()
        del self._buffer[:start]
        if len(self._buffer) > self.max_event_bytes:
            self._buffer.clear()
            self._skipping_line = self._oversized = True
        self._scan_from = len(self._buffer) - self._buffer.endswith(b"\r")
        return events

    def _line(self, line):
        if not line:
            return self._dispatch()
        if line.startswith(b":"):
            return None  # a comment
        name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if name == b"event":
            self._type = value.decode("utf-8", "replace")
        elif name == b"data":
            self._size += len(value) + 1
            if self._size > self.max_event_bytes:
                self._oversized = True
                self._data.clear()
            elif not self._oversized:
                self._data.append(value)
        return None  # id and retry: Marathon sends neither, and we never replay

    def _dispatch(self):
        if not (self._data or self._oversized):
            self._type = ""
            return None  # a heartbeat, or an event without data
        data = None if self._oversized else b"\n".join(self._data).decode("utf-8", "replace")
        event = ServerSentEvent(self._type or "message", data)
        self._type, self._data, self._size, self._oversized = "", [], 0, False
        return event


# -- events -> apps ---------------------------------------------------------------------------


def apps_of_event(event):
    """The ids of the apps a :class:`ServerSentEvent` may have changed.

    Returns a frozenset (empty for events that change no app, or that the engine did not ask
    for), or None when the event is unreadable or names no app it could concern: the caller
    then re-reads every app, since level-triggered convergence makes that always safe.
    """
    if event.type not in EVENT_TYPES:
        return frozenset()
    if event.data is None:
        return None
    try:
        payload = json.loads(event.data)
        if not isinstance(payload, dict):
            return None
        if event.type.startswith("deployment_"):
            return _apps_of_deployment(payload)
        if event.type == "api_post_event":
            return frozenset([normalise_app_id((payload.get("appDefinition") or {})["id"])])
        return frozenset([_app_of_instance_event(payload)])
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _app_of_instance_event(payload):
    for key in ("appId", "runSpecId"):
        if payload.get(key):
            return normalise_app_id(payload[key])
    for key in ("instanceId", "taskId"):
        if payload.get(key):
            return parse_task_id(payload[key]).app_id
    raise KeyError("appId")


def _apps_of_deployment(payload):
    plan = payload.get("plan")
    if not isinstance(plan, dict):
        raise KeyError("plan")
    steps = list(plan.get("steps") or ())
    if payload.get("currentStep"):
        steps.append(payload["currentStep"])
    return frozenset(
        normalise_app_id(action["app"])
        for step in steps
        for action in step.get("actions") or ()
        if action.get("app")
    )
