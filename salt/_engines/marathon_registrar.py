"""
Keep Consul, vulcand and Kong in step with Marathon: every task of a labelled app is registered
while it runs (and is healthy), and removed when it stops.

The engine is level-triggered: Marathon's events (``/v2/events``, Server-Sent Events) only say
*which* apps changed. For those apps it re-reads Marathon (``/v2/apps/{id}`` with the tasks; a
burst of many apps is one ``/v2/apps?embed=apps.tasks``) and converges their services through the
same plan/apply code as the ``services`` state (:mod:`registrationutil`); between resyncs it
plans against what it last read of its own objects plus its own writes, so an event costs one
Marathon read and the writes it calls for (an app whose facts did not change is not planned
again). A full resync, reading every app and every registry (one request per source, all at
once; vulcand's etcd, after the first, for what changed since), runs at start, every
``resync_interval`` seconds and after every reconnect, so a lost, late, duplicated or reordered
event can never leave anything wrong for longer than that. Writes run concurrently
(``max_workers``). The engine keeps no state that the registries and Marathon cannot rebuild:
restarted, it resyncs and finds its own objects through their ownership marks (source
``marathon``), so it neither duplicates nor leaks them, and never touches services defined in
pillar.

Apps opt in with Marathon labels (details in :mod:`marathonutil`); others are left alone:

``registry.service`` (required)
    The service name, a DNS label and not a reserved one: ``web`` is registered as
    ``web.<domain>`` in Consul, vulcand and Kong. Apps sharing a name (blue/green) share the
    service.
``registry.port`` (default: the app's Marathon service port)
    The service port: vulcand's listener and the Consul service port, in
    ``platform:listener_ports`` (engine option ``listener_ports``).
``registry.port-index`` (default ``0``)
    Which of each task's ports the instances listen on.
``registry.gateway`` (default ``true``)
    Whether Kong routes ``<name>.<domain>`` to the service.

Which tasks are registered:

- ``TASK_RUNNING`` tasks, and only the healthy ones when the app has health checks;
- after a Marathon leader change, tasks known healthy stay registered while Marathon has no
  health results for them, for at most ``health_grace`` seconds.

Configuration (master or minion config)::

    engines:
      - marathon_registrar:
          marathon_url: http://marathon.service.consul:8080
          resync_interval: 30
          lock: true

Every key is optional:

``marathon_url``, ``consul_url``, ``consul_token``, ``vulcand_url``, ``vulcand_etcd_url``,
``vulcand_etcd_prefix``, ``kong_admin_url``, ``domain``, ``cluster``, ``listener_ports``
    Connection settings and cluster identity. Each defaults to the ``platform`` setting the
    ``services`` state reads (``config.get``: the daemon's config, then pillar), e.g.
    ``platform:marathon:url``. A resync reads every vulcand object from vulcand's etcd in one
    request, and the next ones what changed since (``vulcand_etcd_url``; ``""`` lists them
    through vulcand's API instead, one request per collection and per backend).
``resync_interval`` (30)
    Seconds between full resyncs: the longest a lost event can leave a registration wrong.
``health_grace`` (60)
    Seconds a known-healthy task stays registered while Marathon reports no health results.
``max_workers`` (8)
    Concurrent registry writes.
``burst_apps`` (16)
    From this many changed apps on, one listing of every app replaces per-app reads.
``stream_timeout`` (30)
    Seconds without a byte (Marathon sends a heartbeat every 10) before reconnecting.
``reconnect_backoff`` (0.5), ``max_reconnect_backoff`` (30)
    First and longest pause between reconnects to the event stream (doubling, with jitter).
``lock`` (false)
    Single-active mode for several masters: only the holder of a Consul lock acts. ``true``
    uses the key ``marathon-registrar/<cluster>/leader``; a string names the key.
``lock_ttl`` (15)
    TTL of the lock's Consul session, renewed every third of it.
``tag_prefix`` (``marathon/registrar``)
    Prefix of the Salt events fired: ``<prefix>/connected``, ``<prefix>/disconnected``,
    ``<prefix>/resync`` (a summary, with the number of standing conflicts and invalid apps,
    ``seconds`` and ``read_seconds``, the part spent until Marathon and the registries were
    read),
    ``<prefix>/change/<service>`` (the changes made, as soon as the service's writes are
    over), ``<prefix>/error``, ``<prefix>/invalid`` (an app whose labels are unusable or break
    the platform's rules: a reserved name, a port outside ``platform:listener_ports``; it gets
    nothing registered) and
    ``<prefix>/lock/{acquired,lost}``. A conflict (an ``error`` event) or an invalid app is
    reported when it appears or changes, not on every resync that still finds it. Follow them
    with ``salt-run state.event``.
"""

import concurrent.futures
import contextlib
import dataclasses
import gc
import hashlib
import logging
import math
import random
import socket
import threading
import time
from dataclasses import dataclass
from typing import NamedTuple

import httpclientutil
import marathonutil
import registrationutil
import requests
import salt.utils.event
import urllib3
from registrationutil import CONSUL_SERVICE, DELETE, VULCAND_SERVER, Ref
from salt.exceptions import CommandExecutionError, SaltInvocationError

log = logging.getLogger(__name__)

__virtualname__ = "marathon_registrar"

SOURCE = "marathon"
RETRY_DELAY = 0.5  # seconds before the first resync after a failure; doubled for each further one
# A stream that is busy (its last read came less than this many seconds before) is read again
# only this long after: a deployment's hundreds of events a second are taken a few dozen at a
# time, their apps marked together, at the cost of as much latency to each of them.
BUSY_STREAM_PAUSE = 0.005


def __virtual__():
    return __virtualname__


# Engine options that override a platform setting (see registrationutil.SETTINGS).
PLATFORM_OPTIONS = {
    "marathon_url": "platform:marathon:url",
    "consul_url": "platform:consul:url",
    "consul_token": "platform:consul:token",
    "vulcand_url": "platform:vulcand:url",
    "vulcand_etcd_url": "platform:vulcand:etcd_url",
    "vulcand_etcd_prefix": "platform:vulcand:etcd_prefix",
    "kong_admin_url": "platform:kong:admin_url",
    "domain": "platform:domain",
    "cluster": "platform:cluster",
    "listener_ports": "platform:listener_ports",
}


@dataclass(frozen=True)
class Settings:
    """The engine's own options, with the defaults the module docstring documents."""

    resync_interval: float = 30.0
    health_grace: float = 60.0
    max_workers: int = 8
    burst_apps: int = 16
    stream_timeout: float = 30.0
    reconnect_backoff: float = 0.5
    max_reconnect_backoff: float = 30.0
    lock_key: str = None
    lock_ttl: float = 15.0
    tag_prefix: str = "marathon/registrar"


def start(lock=False, tag_prefix="marathon/registrar", **options):
    """Run the engine until the Salt process stops it (the loader restarts it if it dies)."""
    overrides = {
        PLATFORM_OPTIONS[name]: options.pop(name)
        for name in list(options)
        if name in PLATFORM_OPTIONS and options[name] is not None
    }
    tunables = {field.name for field in dataclasses.fields(Settings)} - {"lock_key", "tag_prefix"}
    unknown = sorted(set(options) - tunables)
    if unknown:
        raise SaltInvocationError(f"marathon_registrar: unknown option(s) {', '.join(unknown)}")

    def config_get(key, default=None):
        if key in overrides:
            return overrides[key]
        return __salt__["config.get"](key, default)

    platform = registrationutil.configured(config_get, SOURCE)
    if lock is True:
        lock = f"marathon-registrar/{platform.owner.cluster}/leader"
    # Salt passes config values as YAML gave them: coerce to the type of each default.
    given = {name: type(getattr(Settings, name))(value) for name, value in options.items()}
    settings = Settings(lock_key=lock or None, tag_prefix=tag_prefix.rstrip("/"), **given)
    lock_client = ConsulLock(platform.registries.consul, settings) if settings.lock_key else None
    Registrar(settings, platform, event_sender(__opts__, __salt__), lock_client).run()


def event_sender(opts, salt_functions):
    """fire(data, tag): on the master's event bus, or the minion's forwarded to the master."""
    if opts.get("__role") == "master":
        bus = salt.utils.event.get_master_event(opts, opts["sock_dir"], listen=False)
        return bus.fire_event
    send = salt_functions["event.send"]
    return lambda data, tag: send(tag, data)


@contextlib.contextmanager
def collector_paused():
    """Python's cyclic garbage collector off for the block, back as it was after.

    A resync of 10,000 apps makes a million objects that live on (the snapshot, the facts):
    the collections they set off scan the whole heap again and again, half the resync's CPU,
    holding the interpreter lock that the threads reading the registries wait for. What it
    drops is freed by reference counting; cycles, if any, wait for the next collection.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# -- work to do -------------------------------------------------------------------------------


class WorkQueue:
    """The apps that changed since they were last converged; events only ever add to it.

    Duplicated events collapse into one entry; an event that names no readable app marks
    everything (a full resync), which is always a correct answer.
    """

    def __init__(self):
        self._changed = threading.Condition()
        self._apps = set()
        self._everything = False

    def mark(self, app_ids):
        """Note ``app_ids`` as changed; None means every app."""
        with self._changed:
            idle = not (self._apps or self._everything)  # the taker waits only then
            if app_ids is None:
                self._everything = True
            elif app_ids:
                self._apps.update(app_ids)
            else:
                return
            if idle:
                self._changed.notify()

    def take(self, timeout):
        """Wait up to ``timeout`` for work: returns (apps, everything) and empties the queue."""
        with self._changed:
            if not (self._apps or self._everything):
                self._changed.wait(timeout)
            apps, everything = self._apps, self._everything
            self._apps, self._everything = set(), False
            return apps, everything

    def wake(self):
        with self._changed:
            self._changed.notify_all()


# -- the event stream -------------------------------------------------------------------------


class EventStream:
    """Follows Marathon's ``/v2/events`` forever, marking the apps each event names.

    Asks for :data:`marathonutil.EVENT_TYPES` only, follows the standby's 302 to the leader,
    reconnects with a doubling, jittered pause, and asks for a full resync after each connect
    (whatever happened while disconnected is then repaired), and after a first attempt that
    failed.
    """

    def __init__(self, url, queue, settings, fire):
        self.url = url.rstrip("/") + "/v2/events"
        self.queue = queue
        self.settings = settings
        self.fire = fire
        self.running = False
        self.connected = threading.Event()
        self.events_received = 0
        self._session = requests.Session()
        self._response = None
        self._stopped = threading.Event()
        self._thread = None

    def start(self):
        self.running = True
        self._stopped.clear()
        self._thread = threading.Thread(target=self._follow, name="marathon-events", daemon=True)
        self._thread.start()

    def stop(self):
        self.running = False
        self._stopped.set()
        self._interrupt()
        if self._thread is not None:
            self._thread.join()
        self._session.close()

    def _follow(self):
        pause = self.settings.reconnect_backoff
        first = True
        while self.running:
            try:
                self._read_stream()
                reason = "the stream ended"
                pause = self.settings.reconnect_backoff  # it was up: reconnect quickly
            except (
                requests.RequestException, urllib3.exceptions.HTTPError, OSError, StreamRefused
            ) as err:
                reason = str(err)
                if first and not self.connected.is_set():
                    self.queue.mark(None)  # the first resync waits for no stream
            first = False
            self.connected.clear()
            if not self.running:
                return
            log.warning("Marathon event stream: %s; reconnecting in %.1fs", reason, pause)
            self.fire({"reason": reason, "retry_in": pause}, "disconnected")
            self._stopped.wait(pause * random.uniform(0.5, 1.0))
            pause = min(pause * 2, self.settings.max_reconnect_backoff)

    def _read_stream(self):
        params = [("event_type", event_type) for event_type in marathonutil.EVENT_TYPES]
        timeout = (httpclientutil.DEFAULT_TIMEOUT[0], self.settings.stream_timeout)
        with self._session.get(
            self.url,
            params=params,
            headers={"Accept": "text/event-stream"},
            stream=True,
            timeout=timeout,
        ) as response:
            if response.status_code != 200:
                raise StreamRefused(
                    f"GET {response.url} answered HTTP {response.status_code}: "
                    f"{httpclientutil.server_message(response.content)}"
                )
            self._response = response
            if not self.running:
                return
            self.connected.set()
            self.fire({"url": response.url}, "connected")
            self.queue.mark(None)
            parser = marathonutil.SSEParser()
            last_read = -math.inf
            while self.running:
                since = time.monotonic() - last_read
                if since < BUSY_STREAM_PAUSE:
                    self._stopped.wait(BUSY_STREAM_PAUSE - since)
                chunk = response.raw.read1(65536)
                last_read = time.monotonic()
                if not chunk:
                    return
                for event in parser.feed(chunk):
                    self.events_received += 1
                    self.queue.mark(marathonutil.apps_of_event(event))

    def _interrupt(self):
        """Unblock a read in progress: shutting the socket down is what wakes a blocked recv."""
        sock = _socket_of(self._response)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed


def _socket_of(response):
    """The socket a streaming ``requests`` response reads from, or None.

    urllib3 keeps it on the connection, except when the server said ``Connection: close``:
    http.client then hands it over to the response's file object, which is the only place left.
    """
    raw = getattr(response, "raw", None)
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    if sock is None:
        socket_io = getattr(getattr(getattr(raw, "_fp", None), "fp", None), "raw", None)
        sock = getattr(socket_io, "_sock", None)
    return sock


class StreamRefused(Exception):
    """Marathon answered the event stream request with something else than the stream."""


# -- single-active lock -----------------------------------------------------------------------


class ConsulLock:
    """A Consul lock (session + ``?acquire``): only its holder acts when several engines run.

    The session has a TTL and ``Behavior: delete``: an engine that dies loses the lock after
    the TTL, and another takes over.
    """

    def __init__(self, consul, settings):
        self.http = consul.http
        self.key = settings.lock_key
        self.ttl = settings.lock_ttl
        self.session = None

    @property
    def renew_interval(self):
        return self.ttl / 3

    def acquire(self):
        """Try once to take the lock; True when held."""
        if self.session is None:
            created = self.http.put(
                "/v1/session/create",
                json={"Name": self.key, "TTL": f"{int(self.ttl)}s", "Behavior": "delete"},
            )
            self.session = created["ID"]
        return self.http.put(f"/v1/kv/{self.key}", params={"acquire": self.session},
                             json={"holder": socket.gethostname()}) is True

    def renew(self):
        """Keep the lock; False when it was lost (session expired or the key taken)."""
        try:
            self.http.put(f"/v1/session/renew/{self.session}")
        except httpclientutil.NotFoundError:
            self.session = None
            return False
        return self.acquire()

    def release(self):
        if self.session is None:
            return
        try:
            self.http.put(f"/v1/kv/{self.key}", params={"release": self.session})
            self.http.put(f"/v1/session/destroy/{self.session}")
        except httpclientutil.HTTPRequestError as err:
            log.warning("could not release the registrar lock %s: %s", self.key, err)
        self.session = None


# -- the registrar ----------------------------------------------------------------------------


class Reported:
    """Standing problems (conflicts, invalid apps), so that each is reported when it appears
    or changes, not again on every pass that still finds it."""

    def __init__(self):
        self._messages = {}

    def __len__(self):
        return len(self._messages)

    def report(self, key, message):
        """Note ``message`` for ``key``: True when it is new, i.e. to be reported."""
        new = self._messages.get(key) != message
        self._messages[key] = message
        return new

    def resolve(self, key):
        self._messages.pop(key, None)

    def retain(self, keys):
        """Forget the problems of every key not in ``keys`` (gone or no longer found)."""
        self._messages = {key: value for key, value in self._messages.items() if key in keys}


class ListedFacts(NamedTuple):
    """The facts taken of an app of Marathon's listing, and what they told the health grace,
    by the digest and length of the app's text there."""

    app_id: str  # as the listing spells it
    digest: bytes
    length: int
    facts: "AppFacts"
    told: tuple


def text_digest(text):
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


class ListingMatcher:
    """Recognises, in Marathon's listing, the apps whose text is the same as in the last one,
    without decoding them: each app is expected where the last listing had it, after the app
    before it, and is that app when the digest of as much text as it had matches."""

    def __init__(self, listed):
        self._order = list(listed.values())  # ListedFacts, in the last listing's order
        self._index = {entry.app_id: index for index, entry in enumerate(self._order)}
        self._next = 0

    def __call__(self, text, position):
        if self._next >= len(self._order):
            return None
        entry = self._order[self._next]
        end = position + entry.length
        if text_digest(text[position:end]) != entry.digest:
            return None
        self._next += 1
        return entry, end

    def decoded(self, app_id):
        """An app was decoded instead: the one after it in the last listing comes next (after
        a new app, the one that was expected still is)."""
        index = self._index.get(app_id)
        if index is not None:
            self._next = index + 1


@dataclass
class AppFacts:
    """What one Marathon app contributes: its labels (None: not opted in) and instances."""

    labels: object
    instances: dict
    invalid: str = ""  # why its labels are unusable; the service it names is then left alone
    named: str = ""  # the raw service label, set even when the labels are invalid


class Registrar:
    """The engine proper: converges the apps the stream marks, and everything periodically.

    ``running`` stops it: set it to False (or call :meth:`stop`) from another thread.
    """

    def __init__(self, settings, platform, fire, lock=None):
        self.settings = settings
        self.registries = platform.registries
        self.owner = platform.owner
        self.domain = platform.domain
        self.rules = platform.rules
        self.marathon = platform.registries.marathon
        self.lock = lock
        self.queue = WorkQueue()
        self.grace = marathonutil.HealthGrace(settings.health_grace)
        self.apps = {}  # app id -> AppFacts, as last read
        self.running = False
        self.stream = None
        self.resyncs = 0  # completed full resyncs, for tests and the benchmark
        self._known = None  # registries as last read, plus our writes since (see _snapshot)
        # name -> (the AppFacts it was built from, ServiceSpec): a spec is validated once, not
        # again on every resync that finds the same facts (0.08 s of CPU at 10,000 services).
        self._specs = {}
        # app id -> ListedFacts of the last resync: an app whose text in the listing did not
        # change has the same facts (decoding and taking them is 0.3 s of CPU at 10,000 apps,
        # a digest of the texts a tenth of that), and the same long-lived objects are kept.
        self._listed = {}
        self._conflicts = Reported()  # names taken by others, as last reported
        self._invalid = Reported()  # ("app", id) or ("service", name): why it is unusable
        self._fire = fire
        self._fire_lock = threading.Lock()
        self._stop = threading.Event()
        # Registry and Marathon reads and writes: threads kept, not started for every event.
        self._pool = concurrent.futures.ThreadPoolExecutor(
            settings.max_workers + 1, thread_name_prefix="marathon-registrar")

    # -- lifecycle --------------------------------------------------------------------------

    def run(self):
        self.running = True
        self._stop.clear()
        try:
            while self.running:
                if self.lock is not None and not self._take_lock():
                    self._stop.wait(self.lock.renew_interval)
                    continue
                self._serve()
        finally:
            if self.lock is not None:
                self.lock.release()
            self._pool.shutdown()

    def stop(self):
        self.running = False
        self._stop.set()
        self.queue.wake()

    def fire(self, data, tag):
        try:
            with self._fire_lock:  # writing threads fire too; one event at a time on the bus
                self._fire(data, f"{self.settings.tag_prefix}/{tag}")
        except Exception as err:  # pylint: disable=broad-except
            # Events are for operators: a full event bus must not stop registrations.
            log.warning("could not fire %s: %s", tag, err)

    def _take_lock(self):
        try:
            held = self.lock.acquire()
        except httpclientutil.HTTPRequestError as err:
            log.warning("registrar lock %s: %s", self.lock.key, err)
            return False
        if held:
            self.fire({"key": self.lock.key}, "lock/acquired")
        return held

    def _serve(self):
        """Stream and converge until stopped, or until the lock is lost."""
        self._known = None  # whatever was known before (another tenure) is read again
        self.stream = EventStream(
            self.marathon.http.base_url, self.queue, self.settings, self.fire
        )
        self.stream.start()
        # The stream's first attempt asks for the first resync, so that the connect's resync
        # is that one rather than a second back to back; a stream that hangs does not delay it
        # for longer than a connect timeout.
        next_resync = time.monotonic() + httpclientutil.DEFAULT_TIMEOUT[0]
        next_renewal = time.monotonic() + self.lock.renew_interval if self.lock else math.inf
        failures = 0
        try:
            while self.running:
                now = time.monotonic()
                if now >= next_renewal:
                    if not self._renew_lock():
                        return
                    next_renewal = now + self.lock.renew_interval
                apps, everything = self.queue.take(max(0.0, min(next_resync, next_renewal) - now))
                if not self.running:
                    return
                everything = everything or time.monotonic() >= next_resync
                if not (apps or everything):
                    continue
                ok = self.resync() if everything else self.converge_apps(apps)
                failures = 0 if ok else failures + 1
                if everything or not ok:
                    # After a failure, resync soon, backing off so that a registry which is
                    # down is not hammered; otherwise at the regular interval.
                    next_resync = time.monotonic() + min(
                        self.settings.resync_interval,
                        RETRY_DELAY * 2 ** (failures - 1) if failures else math.inf,
                    )
        finally:
            self.stream.stop()

    def _renew_lock(self):
        try:
            if self.lock.renew():
                return True
        except httpclientutil.HTTPRequestError as err:
            log.warning("registrar lock %s: %s", self.lock.key, err)
        self.fire({"key": self.lock.key}, "lock/lost")
        return False

    # -- convergence ------------------------------------------------------------------------

    def resync(self):
        """Read every app and every owned registration, and converge all of them."""
        with collector_paused():
            return self._resync()

    def _resync(self):
        started = time.monotonic()
        self._known = None  # replaced by what is read now: never held twice
        try:
            snapshot, self.apps, read_at = self._read_everything()
        except CommandExecutionError as err:
            self._report_error("resync", err)
            return False
        self.grace.retain_only(
            instance_id for facts in self.apps.values() for instance_id in facts.instances
        )
        # Services registered by the engine whose apps are gone (perhaps while it was down).
        registered = {
            ref.service for ref in snapshot.objects if ref.kind == CONSUL_SERVICE
        }
        names = registered | self._service_names(self.apps)
        self._invalid.retain({("app", app_id) for app_id in self.apps}
                             | {("service", name) for name in names})
        self._known = snapshot
        ok, changed = self._converge(self._desired(names), snapshot, everything=True)
        self.resyncs += 1
        self.fire(
            {
                "apps": len(self.apps),
                "services": len(names),
                "changes": changed,
                "conflicts": len(self._conflicts),
                "invalid": len(self._invalid),
                "ok": ok,
                "seconds": round(time.monotonic() - started, 3),
                # Until Marathon and the registries were read (the registries' objects sorted
                # into a snapshot included): the rest is facts, plans and writes.
                "read_seconds": round(read_at - started, 3),
            },
            "resync",
        )
        return ok

    def _read_everything(self):
        """(registries snapshot, {app id: AppFacts}, when both were read): Marathon and the
        registries read at once."""
        matcher = ListingMatcher(self._listed)
        listed = self._pool.submit(self.marathon.iter_apps, label=marathonutil.LABEL_SERVICE,
                                   with_text=True, known=matcher)
        snapshot = registrationutil.read_snapshot(self.registries, self.owner, pool=self._pool)
        self.grace.remember(ref.key for ref in snapshot.objects if ref.kind == VULCAND_SERVER)
        # Each app decoded when its facts are taken, and released then: the listing is the
        # largest thing read, some hundred times larger decoded than any one app.
        listing = listed.result()
        read_at = time.monotonic()
        apps, kept, self._listed = {}, self._listed, {}
        for item, text in listing:
            if isinstance(item, ListedFacts):  # recognised by the matcher: not decoded
                app_id, facts = item.app_id, self._reuse(item)
            else:
                app_id = item.get("id")
                matcher.decoded(app_id)
                facts = self._listed_facts(item, text, kept)
            apps[marathonutil.normalise_app_id(app_id)] = facts
        return snapshot, apps, read_at

    def _listed_facts(self, app, text, kept):
        """The facts of ``app`` of the listing, those of the last resync (``kept``) when its
        ``text`` is the same."""
        if text is None:
            return self._facts(app)
        digest = text_digest(text)
        before = kept.get(app.get("id"))
        if before is not None and before.digest == digest:
            return self._reuse(before)
        recorder = marathonutil.GraceRecorder(self.grace)
        facts = self._facts(app, recorder)
        if not recorder.timed:
            self._listed[app.get("id")] = ListedFacts(app.get("id"), digest, len(text), facts,
                                                     tuple(recorder.told))
        return facts

    def _reuse(self, listed):
        """The facts of an app whose text is the same as last time: what they told the health
        grace is told it again, and its validity noted again."""
        marathonutil.GraceRecorder.replay(self.grace, listed.told)
        self._note_validity(listed.app_id, listed.facts)
        self._listed[listed.app_id] = listed
        return listed.facts

    def converge_apps(self, app_ids):
        """Re-read ``app_ids`` from Marathon and converge the services they are part of."""
        with collector_paused():
            return self._converge_apps(app_ids)

    def _converge_apps(self, app_ids):
        app_ids = sorted(app_ids)
        before = {app_id: self.apps.get(app_id) for app_id in app_ids}
        try:
            if len(app_ids) >= self.settings.burst_apps:
                fresh = dict.fromkeys(app_ids)
                for app in self.marathon.iter_apps(label=marathonutil.LABEL_SERVICE):
                    app_id = marathonutil.normalise_app_id(app["id"])
                    if app_id in fresh:
                        fresh[app_id] = app
            else:
                # One app (most events) read here: handing it to a pool thread and back costs
                # as much CPU as the read itself.
                reads = self._pool.map(self._read_app, app_ids) if len(app_ids) > 1 \
                    else [self._read_app(app_ids[0])]
                fresh = dict(zip(app_ids, reads))
        except CommandExecutionError as err:
            self._report_error("read apps", err, apps=sorted(app_ids))
            return False
        for app_id, app in fresh.items():
            if app is None:
                self._invalid.resolve(("app", app_id))
            facts = self._facts(app) if app is not None else None
            if facts is not None and facts.named:
                self.apps[app_id] = facts
            else:
                self.apps.pop(app_id, None)  # deleted, or no longer labelled
        # An app whose facts are the same as when it was last converged calls for nothing while
        # the registries are known to match (the known snapshot is forgotten on any failure).
        touched = [app_id for app_id in app_ids
                   if self._known is None or self.apps.get(app_id) != before[app_id]]
        names = self._service_names({app_id: before[app_id] for app_id in touched}) \
            | self._service_names({app_id: self.apps.get(app_id) for app_id in touched})
        if not names:
            return True
        desired = self._desired(names)
        try:
            snapshot = self._snapshot(desired)
        except CommandExecutionError as err:
            self._report_error("read registries", err, services=sorted(names))
            self._known = None  # what was known is no longer trusted to match
            return False
        return self._converge(desired, snapshot)[0]

    def _snapshot(self, desired):
        """What the registries hold for ``desired``, read again only when it may have changed.

        Between full resyncs the engine keeps the snapshot of the last one, updated with its own
        writes; a service it does not own yet is read afresh (by name), so that a name someone
        else took since is refused, not overwritten. Changes made behind its back to its own
        objects are repaired by the next resync, like a lost event.
        """
        known = self._known
        if known is not None and all(
            spec is None or Ref(CONSUL_SERVICE, name, name) in known.objects
            for name, spec in desired.items()
        ):
            return known
        fresh = registrationutil.read_snapshot(self.registries, self.owner, names=set(desired),
                                               pool=self._pool)
        if known is not None:
            # The read covers the services of ``desired``: they replace what was known of them.
            known.objects = {
                **{ref: body for ref, body in known.objects.items() if ref.service not in desired},
                **{ref: body for ref, body in fresh.objects.items() if ref.service in desired},
            }
            known.claims.update(fresh.claims)
        return fresh

    def _read_app(self, app_id):
        try:
            return self.marathon.get_app(app_id)
        except httpclientutil.NotFoundError:
            return None  # deleted: its services lose its instances

    def _facts(self, app, grace=None):
        named = str((app.get("labels") or {}).get(marathonutil.LABEL_SERVICE, "")).strip()
        try:
            labels = marathonutil.service_labels(app, self.rules)
            if labels is None:
                return AppFacts(None, {})
            instances = marathonutil.instances_from_app(app, labels.port_index,
                                                        grace or self.grace)
        except marathonutil.MarathonDataError as err:
            facts = AppFacts(None, {}, invalid=str(err), named=named)
        else:
            facts = AppFacts(labels, instances, named=named)
        self._note_validity(app.get("id", "?"), facts)
        return facts

    def _note_validity(self, app_id, facts):
        """Report an invalid app when it appears or its reason changes; forget it once valid."""
        if facts.invalid:
            if self._invalid.report(("app", app_id), facts.invalid):
                self.fire({"app": app_id, "service": facts.named, "reason": facts.invalid},
                          "invalid")
                log.warning("leaving service %r alone: %s", facts.named, facts.invalid)
        elif facts.labels is not None:
            self._invalid.resolve(("app", app_id))

    @staticmethod
    def _service_names(apps):
        return {facts.named for facts in apps.values() if facts is not None and facts.named}

    def _desired(self, names):
        """{name: ServiceSpec | None} for ``names``; names with an invalid app are left out."""
        providers = {}
        for app_id in sorted(self.apps):
            facts = self.apps[app_id]
            if facts.named in names:
                providers.setdefault(facts.named, []).append(facts)
        desired = {}
        for name in names:
            facts = providers.get(name, [])
            if any(entry.invalid for entry in facts):
                continue
            if not facts:
                desired[name] = None
                self._specs.pop(name, None)
                continue
            built = self._specs.get(name)
            if built is None or built[0] != facts:
                try:
                    built = facts, self._spec(name, facts)
                except SaltInvocationError as err:
                    self._specs.pop(name, None)
                    if self._invalid.report(("service", name), str(err)):
                        self.fire({"service": name, "reason": str(err)}, "invalid")
                        log.warning("leaving service %r alone: %s", name, err)
                    continue
                self._specs[name] = built
            desired[name] = built[1]
            self._invalid.resolve(("service", name))
        return desired

    def _spec(self, name, facts):
        # Several apps may share a service (blue/green): the first app id sets its port.
        labels = facts[0].labels
        instances = {
            instance_id: registrationutil.Instance(address, port)
            for entry in facts
            for instance_id, (address, port) in entry.instances.items()
        }
        return registrationutil.ServiceSpec(
            name=name,
            port=labels.port,
            domain=self.domain,
            instances=instances,
            gateway=labels.gateway,
        )

    def _converge(self, desired, snapshot, everything=False):
        """Plan and apply ``desired`` against ``snapshot``: returns (ok, number of changes).

        ``everything``: ``desired`` is every service, so conflicts not found are resolved.
        Each service's changes are fired as soon as its writes are over."""
        plan = registrationutil.plan(desired, snapshot, self.owner)
        # A name taken by someone else (pillar, another cluster) stays refused until they
        # give it up: reported when it appears or changes, and no reason to retry sooner.
        for conflict in plan.conflicts:
            if self._conflicts.report(conflict, conflict):
                self._report_error("plan", conflict)
        if everything:
            self._conflicts.retain(set(plan.conflicts))
        if not plan:
            return True, 0
        result = registrationutil.apply(plan, self.registries, self.settings.max_workers,
                                        pool=self._pool, on_service_done=self._report_changes)
        self._remember_writes(result)
        for error in result.errors():
            self._report_error("apply", error)
        return result.ok, len(result.done)

    def _report_changes(self, service, done):
        """A service's changes, fired as soon as its writes are over (from a writing thread)."""
        if not done:
            return  # every write failed: the errors are reported
        self.fire({"service": service, "changes": registrationutil.changes_of(done)[service]},
                  f"change/{service}")

    def _remember_writes(self, result):
        """Keep the known snapshot true to what was written; after a failure, forget it."""
        if self._known is None:
            return
        if not result.ok:
            self._known = None  # a failed write leaves the registry in a state we did not see
            return
        for change in result.done:
            if change.action == DELETE:
                self._known.objects.pop(change.ref, None)
            else:
                self._known.objects[change.ref] = change.new

    def _report_error(self, stage, err, **context):
        log.warning("marathon registrar: %s failed: %s", stage, err)
        self.fire({"stage": stage, "error": str(err), **context}, "error")
