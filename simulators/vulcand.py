"""vulcand v0.9: its API v2 on a real etcd (v3 layout), and its proxy.

The API (reference §3.1-3.3) keeps every object in etcd exactly where ``vulcand -etcdApiVer=3
-etcdKey=/vulcand`` keeps it (§3.4), so the platform may equally write etcd itself. API reads go
to etcd; the proxy works from a snapshot of the prefix, rebuilt when etcd's revision has moved
since, and a watch on the listener keys opens and closes sockets, so keys that someone else
writes, or that expire with their lease (server TTLs), take effect as in vulcand.

The proxy opens one HTTP server per listener, on 127.0.0.1 with the listener's port
(``0.0.0.0:10001`` listens on ``127.0.0.1:10001``), picks the frontend whose route matches (the
most specific one when several do), and forwards to the frontend's backend servers in round
robin. Like vulcand it answers 404 when no route matches, 502 when the server cannot be reached
(504 on a timeout) and ``empty_backend_status`` when the backend has no servers. It contacts only
loopback servers: any other URL gets 502 without a connection attempt. A stand-in on real hosts
opts in to ``upstream_networks``: listeners then listen on their stored address, as vulcand's,
and servers within those networks are contacted too (names resolved through the system
resolver). Not modelled: https
listeners (not opened), middlewares' effect on traffic (they are stored and listed), the
``/v2/top`` statistics (always empty), and the sealing of host key pairs. Unlike vulcand, which
applies a change when its etcd watch delivers it (a few milliseconds later), API writes take
effect before the reply.
"""

import http.client
import ipaddress
import json
import logging
import math
import re
import threading
import urllib.parse
from collections import defaultdict
from dataclasses import dataclass, field

from simulators.base import (
    LOOPBACK,
    Abort,
    AcceptLoop,
    BodyError,
    Simulator,
    UpstreamError,
    forward,
    json_response,
    parse_duration,
    reachable_address,
    route,
    text_response,
)
from simulators.etcd import EtcdClient, EtcdError, EtcdServer
from simulators.routing import Route, RouteError, RouteRequest

log = logging.getLogger(__name__)

ID = r"(?P<{}>[^/]+)"
MIDDLEWARE_TYPES = {"ratelimit", "connlimit", "rewrite", "cbreaker", "trace"}
DEFAULT_UPSTREAM_TIMEOUT = 30.0
WATCH_RETRY_SECONDS = 0.2
LISTENER_QUIET_SECONDS = 0.05

BACKEND_SETTINGS = {
    "Timeouts": {"Read": "", "Dial": "", "TLSHandshake": ""},
    "KeepAlive": {"Period": "", "MaxIdleConnsPerHost": 0},
}
FRONTEND_SETTINGS = {
    "Limits": {"MaxMemBodyBytes": 0, "MaxBodyBytes": 0},
    "FailoverPredicate": "",
    "Hostname": "",
    "TrustForwardHeader": False,
    "PassHostHeader": False,
    "Stream": False,
    "StreamFlushIntervalNanoSecs": 0,
}
HOST_SETTINGS = {
    "Default": False,
    "KeyPair": None,
    "AutoCert": None,
    "OCSP": {"Enabled": False, "Period": "", "Responders": None, "SkipSignatureCheck": False},
}


def _merged(defaults, given):
    """``defaults`` overlaid with ``given`` (recursively), as Go fills a struct's zero values."""
    result = {key: _merged(value, None) if isinstance(value, dict) else value for key, value in defaults.items()}
    for key, value in (given or {}).items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _merged(result[key], value)
        else:
            result[key] = value
    return result


def _is_valid_url(url):
    """What Go's ``url.ParseRequestURI`` accepts, near enough: absolute URLs and absolute paths."""
    return isinstance(url, str) and bool(re.match(r"^(/|[A-Za-z][A-Za-z0-9+.-]*:)\S*$", url))


def _reply(data, status=200):
    """A JSON reply as vulcand sends every one, errors included."""
    return json_response(data, status, content_type="application/json; charset=utf-8")


def _fail(status, message):
    raise Abort(_reply({"message": message}, status))


def _go_value(value):
    """``value`` as Go's ``%s`` prints a struct field (how vulcand quotes objects in errors)."""
    if isinstance(value, bool):
        return f"%!s(bool={str(value).lower()})"
    if isinstance(value, int):
        return f"%!s(int64={value})"
    if isinstance(value, dict):
        return "{" + " ".join(_go_value(item) for item in value.values()) + "}"
    return "<nil>" if value is None else str(value)


@dataclass
class _Frontend:
    id: str
    route: Route
    backend_id: str
    pass_host_header: bool


@dataclass
class _ProxyConfig:
    """What the proxy needs, parsed from one etcd revision."""

    revision: int = 0
    listeners: dict = field(default_factory=dict)  # id -> (address, port) to listen on
    frontends: list = field(default_factory=list)  # _Frontend, most specific route first
    servers: dict = field(default_factory=dict)  # backend id -> [URL], ordered by server id
    timeouts: dict = field(default_factory=dict)  # backend id -> (dial, read) seconds


class _Listener(Simulator):
    """One proxy listener: every request goes to the vulcand proxy."""

    name = "vulcand-listener"

    def __init__(self, proxy, endpoint):
        super().__init__(port=endpoint[1], address=endpoint[0], accept_loop=proxy.accept_loop)
        self.endpoint = endpoint  # self.port becomes the bound one, which differs for port 0
        self._proxy = proxy

    @route("*", r".*")
    def forward(self, request):
        return self._proxy.forward(request)


class VulcandSimulator(Simulator):
    """vulcand's API (``url``) and proxy listeners, storing its configuration in etcd.

    Without ``etcd_url`` it starts a private etcd for itself (the ``python -m simulators vulcand``
    case). ``empty_backend_status`` is what a request routed to a backend without servers gets:
    the 2018 code answers 500, v0.9.x releases 503 (reference §5). ``upstream_networks``
    (CIDRs; none: loopback only) is the real hosts' opt-in described above.
    """

    name = "vulcand"

    def __init__(self, port=0, etcd_url=None, prefix="/vulcand", empty_backend_status=500,
                 upstream_networks=()):
        super().__init__(port=port)
        self.prefix = prefix.rstrip("/")
        self.upstream_networks = [ipaddress.ip_network(network) for network in upstream_networks]
        self.empty_backend_status = empty_backend_status
        self._own_etcd = None if etcd_url else EtcdServer()
        self._etcd_url = etcd_url
        self.etcd = None
        self._config = _ProxyConfig()
        self._config_lock = threading.Lock()  # serialises reloads and listener changes
        self._listeners_revision = 0  # etcd revision of the latest single listener change
        self._listeners = {}  # listener id -> _Listener
        self.accept_loop = None  # the listeners' (one thread for all of them), while started
        self._unopened = {}  # listener id -> (address, port) it could not bind
        self._round_robin = defaultdict(int)
        self._round_robin_lock = threading.Lock()
        self._watch = None
        self._watch_lock = threading.Lock()
        self._watch_thread = None
        self._listener_thread = None
        self._listeners_stale = threading.Event()  # a listener key changed (watch)
        self._activity = threading.Event()  # a listener key changed since the listener loop looked
        self._parsed_routes = {}  # route expression -> Route, parsed once
        self._stopping = threading.Event()

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--etcd-url", help="etcd client URL (default: start a private etcd)")
        parser.add_argument("--prefix", default="/vulcand", help="etcd key prefix (vulcand -etcdKey)")
        parser.add_argument("--empty-backend-status", type=int, default=500)
        parser.add_argument("--upstream-network", action="append", default=[], dest="upstream_networks",
                            metavar="CIDR", help="a network whose servers the proxy may reach besides "
                                                 "loopback (listeners then listen on their stored address)")

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self):
        if self._own_etcd is not None:
            self._etcd_url = self._own_etcd.start().url
        self.etcd = EtcdClient(self._etcd_url)
        self._stopping.clear()
        self.accept_loop = AcceptLoop()
        self.reload()
        self._watch_thread = threading.Thread(target=self._watch_loop, name="vulcand-watch", daemon=True)
        self._watch_thread.start()
        self._listener_thread = threading.Thread(target=self._listener_loop, name="vulcand-listeners", daemon=True)
        self._listener_thread.start()
        return super().start()

    def stop(self):
        super().stop()
        self._stopping.set()
        with self._watch_lock:
            if self._watch is not None:
                self._watch.close()
        self._listeners_stale.set()  # wakes the listener loop so that it sees the stop
        for thread in (self._watch_thread, self._listener_thread):
            if thread is not None:
                thread.join()
        self._watch_thread = self._listener_thread = None
        with self._config_lock:
            for listener in self._listeners.values():
                listener.stop()
            self._listeners.clear()
            self._config = _ProxyConfig()
            self._listeners_revision = 0
        if self.accept_loop is not None:
            self.accept_loop.close()
            self.accept_loop = None
        if self._own_etcd is not None:
            self._own_etcd.stop()

    @property
    def urls(self):
        return {"url": self.url, "etcd": self._etcd_url}

    def reset(self):
        """Delete the whole configuration (every key under the prefix) and close all listeners."""
        super().reset()
        self.etcd.delete_prefix(self.prefix + "/")
        with self._round_robin_lock:
            self._round_robin.clear()
        self.reload()

    def listener_ports(self):
        """Listener id -> port of the proxy listeners open now."""
        with self._config_lock:
            return {listener_id: listener.port for listener_id, listener in self._listeners.items()}

    # -- etcd layout ---------------------------------------------------------------------------

    def _key(self, *parts):
        return "/".join([self.prefix, *parts])

    def _read(self, key):
        value = self.etcd.get(key)
        if value is None:
            _fail(404, "Key not found")
        return json.loads(value)

    def _list(self, *parts, leaf=None):
        """``[(id, value)]`` of the objects under ``prefix/parts/``, by id; ``leaf`` names their key."""
        base = self._key(*parts) + "/"
        _, items = self.etcd.get_prefix(base)
        found = []
        for key, value in items.items():
            rest = key[len(base):].split("/")
            if (leaf is None and len(rest) == 1) or (leaf is not None and rest[1:] == [leaf]):
                found.append((rest[0], json.loads(value)))
        return sorted(found, key=lambda item: item[0])

    def _put(self, key, value, ttl=None, parent=None):
        """Store ``value`` at ``key``; with ``parent`` (a key), only if that exists, else 404
        (vulcand checks a server's backend, or a frontend's, before writing)."""
        lease = None
        if ttl:
            lease = self.etcd.grant(max(1, math.ceil(ttl)))
        encoded = json.dumps(value, separators=(",", ":"))
        if parent is None:
            self.etcd.put(key, encoded, lease=lease)
        elif not self.etcd.put_if_exists(key, encoded, parent, lease=lease):
            _fail(404, "Key not found")
        self._changed(key)

    def _delete(self, key, subtree=False):
        if subtree:
            # vulcand deletes with a bare prefix: removing "b1" also removes "b10…" (reference §3.4).
            self.etcd.delete_prefix(key)
        else:
            self.etcd.delete(key)
        self._changed(key)

    def _changed(self, key):
        """An API write landed in etcd. Listener sockets must match before the call returns
        (clients send traffic right after creating one); the routing table is rebuilt lazily,
        before the next proxied request, so a burst of writes costs one rebuild, not one each."""
        listeners = self._key("listeners") + "/"
        if key.startswith(listeners):
            self._open_listener(key[len(listeners):])

    def _open_listener(self, listener_id):
        """Match one listener's socket to its key (a cost that does not grow with the number
        of listeners or anything else stored)."""
        with self._config_lock:
            revision, raw = self.etcd.read(self._key("listeners", listener_id))
            self._listeners_revision = max(self._listeners_revision, revision)
            endpoint = None
            try:
                endpoint = self._listener_endpoint(json.loads(raw)) if raw is not None else None
            except (ValueError, KeyError, TypeError) as err:
                log.warning("vulcand: ignoring invalid listener %s: %s", listener_id, err)
            self._sync_listener(listener_id, endpoint)

    # -- request bodies ------------------------------------------------------------------------

    @staticmethod
    def _body(request, wrapper):
        if request.content_type == "application/x-www-form-urlencoded":
            _fail(500, "unexpected end of JSON input")  # Go's form parsing consumed the body
        try:
            body = request.json()
        except BodyError as err:
            _fail(500, str(err))
        if not isinstance(body, dict) or not isinstance(body.get(wrapper), dict):
            _fail(500, f"Missing mandatory parameter: {wrapper}")
        ttl = body.get("TTL")
        try:
            seconds = parse_duration(str(ttl)) if ttl not in (None, "") else None
        except ValueError as err:
            _fail(500, str(err))
        return body[wrapper], seconds

    # -- API: status ------------------------------------------------------------------------

    @route("GET", r"/v[12]/status")
    def status(self, request):
        return _reply({"Status": "ok"})

    @route("GET", r"/v2/top/frontends")
    def top_frontends(self, request):
        return _reply({"Frontends": []})  # traffic statistics are not modelled

    @route("GET", r"/v2/top/servers")
    def top_servers(self, request):
        return _reply({"Servers": []})

    # -- API: hosts --------------------------------------------------------------------------

    @staticmethod
    def _host_view(name, value):
        return {"Name": name, "Settings": _merged(HOST_SETTINGS, value.get("Settings"))}

    @route("POST", r"/v2/hosts")
    def upsert_host(self, request):
        host, _ = self._body(request, "Host")
        name = host.get("Name") or ""
        if not name:
            _fail(500, "Hostname can not be empty")
        value = {"Name": name, "Settings": _merged(HOST_SETTINGS, host.get("Settings"))}
        self._put(self._key("hosts", name, "host"), value)
        return _reply(self._host_view(name, value))

    @route("GET", r"/v2/hosts")
    def list_hosts(self, request):
        return _reply({"Hosts": [self._host_view(n, v) for n, v in self._list("hosts", leaf="host")]})

    @route("GET", r"/v2/hosts/" + ID.format("name"))
    def get_host(self, request, name):
        return _reply(self._host_view(name, self._read(self._key("hosts", name, "host"))))

    @route("DELETE", r"/v2/hosts/" + ID.format("name"))
    def delete_host(self, request, name):
        self._delete(self._key("hosts", name), subtree=True)
        return _reply({"message": f"Host '{name}' deleted"})

    # -- API: listeners ------------------------------------------------------------------------

    @staticmethod
    def _listener_view(listener_id, value):
        view = {
            "Id": listener_id,
            "Protocol": value.get("Protocol", ""),
            "Address": value.get("Address", {"Network": "", "Address": ""}),
            "Scope": value.get("Scope", ""),
            "ProxyProtocol": value.get("ProxyProtocol", ""),
        }
        if value.get("Settings") is not None:
            view["Settings"] = value["Settings"]
        return view

    @route("POST", r"/v2/listeners")
    def upsert_listener(self, request):
        listener, ttl = self._body(request, "Listener")
        protocol = str(listener.get("Protocol", "")).lower()
        if protocol not in ("http", "https"):
            _fail(500, f"unsupported protocol '{protocol}', supported protocols are http and https")
        address = listener.get("Address") or {}
        network = str(address.get("Network", "")).lower()
        if not address.get("Address"):
            _fail(500, "supply a non empty address")
        if network not in ("tcp", "unix"):
            _fail(500, f"unsupported network '{network}', supported networks are tcp and unix")
        if not listener.get("Id"):
            _fail(400, "listener id can not be empty")
        value = {
            "Id": listener["Id"],
            "Protocol": protocol,
            "Address": {"Network": network, "Address": address["Address"]},
            "Scope": listener.get("Scope", ""),
            "ProxyProtocol": listener.get("ProxyProtocol", ""),
        }
        if listener.get("Settings") is not None:
            value["Settings"] = listener["Settings"]
        self._put(self._key("listeners", listener["Id"]), value, ttl)
        return _reply(self._listener_view(listener["Id"], value))

    @route("GET", r"/v2/listeners")
    def list_listeners(self, request):
        return _reply({"Listeners": [self._listener_view(i, v) for i, v in self._list("listeners")]})

    @route("GET", r"/v2/listeners/" + ID.format("listener_id"))
    def get_listener(self, request, listener_id):
        return _reply(self._listener_view(listener_id, self._read(self._key("listeners", listener_id))))

    @route("DELETE", r"/v2/listeners/" + ID.format("listener_id"))
    def delete_listener(self, request, listener_id):
        self._delete(self._key("listeners", listener_id))
        return _reply({"message": "Listener deleted"})

    # -- API: backends and servers -------------------------------------------------------------

    @staticmethod
    def _backend_view(backend_id, value):
        return {"Id": backend_id, "Type": value.get("Type", "http"), "Settings": _merged(BACKEND_SETTINGS, value.get("Settings"))}

    @route("POST", r"/v2/backends")
    def upsert_backend(self, request):
        backend, _ = self._body(request, "Backend")
        if backend.get("Type") != "http":
            _fail(500, f"Unsupported backend type {backend.get('Type') or ''}")
        settings = _merged(BACKEND_SETTINGS, backend.get("Settings"))
        for name in ("Read", "Dial", "TLSHandshake"):
            if settings["Timeouts"].get(name):
                try:
                    parse_duration(settings["Timeouts"][name])
                except ValueError as err:
                    _fail(500, f"invalid {name.lower()} timeout: {err}")
        if not backend.get("Id"):
            _fail(400, "backend id can not be empty")
        value = {"Id": backend["Id"], "Type": "http", "Settings": settings}
        self._put(self._key("backends", backend["Id"], "backend"), value)
        return _reply(self._backend_view(backend["Id"], value))

    @route("GET", r"/v2/backends")
    def list_backends(self, request):
        backends = self._list("backends", leaf="backend")
        return _reply({"Backends": [self._backend_view(i, v) for i, v in backends]})

    @route("GET", r"/v2/backends/" + ID.format("backend_id"))
    def get_backend(self, request, backend_id):
        return _reply(self._backend_view(backend_id, self._read(self._key("backends", backend_id, "backend"))))

    @route("DELETE", r"/v2/backends/" + ID.format("backend_id"))
    def delete_backend(self, request, backend_id):
        users = [(fid, value) for fid, value in self._list("frontends", leaf="frontend") if value.get("BackendId") == backend_id]
        if users:
            # vulcand prints the frontends with Go's %s: {Id Route Type BackendId Stats Settings}.
            described = " ".join(
                _go_value({"Id": fid, "Route": value.get("Route"), "Type": value.get("Type"), "BackendId": backend_id,
                           "Stats": None, "Settings": _merged(FRONTEND_SETTINGS, value.get("Settings"))})
                for fid, value in users
            )
            _fail(500, f"can not delete backend '{backend_id}', it is in use by [{described}]")
        self._delete(self._key("backends", backend_id), subtree=True)
        return _reply({"message": "Backend deleted"})

    @route("POST", r"/v2/backends/" + ID.format("backend_id") + "/servers")
    def upsert_server(self, request, backend_id):
        server, ttl = self._body(request, "Server")
        url = server.get("URL")
        if not _is_valid_url(url):
            _fail(500, f"endpoint url '{url}' is not valid")
        if not server.get("Id"):
            _fail(400, "backend id and server id can not be empty")
        self._put(self._key("backends", backend_id, "servers", server["Id"]), {"Id": server["Id"], "URL": url}, ttl,
                  parent=self._key("backends", backend_id, "backend"))
        return _reply({"Id": server["Id"], "URL": url})

    @route("GET", r"/v2/backends/" + ID.format("backend_id") + "/servers")
    def list_servers(self, request, backend_id):
        servers = self._list("backends", backend_id, "servers")
        return _reply({"Servers": [{"Id": i, "URL": v.get("URL")} for i, v in servers]})

    @route("GET", r"/v2/backends/" + ID.format("backend_id") + "/servers/" + ID.format("server_id"))
    def get_server(self, request, backend_id, server_id):
        value = self._read(self._key("backends", backend_id, "servers", server_id))
        return _reply({"Id": server_id, "URL": value.get("URL")})

    @route("DELETE", r"/v2/backends/" + ID.format("backend_id") + "/servers/" + ID.format("server_id"))
    def delete_server(self, request, backend_id, server_id):
        self._delete(self._key("backends", backend_id, "servers", server_id))
        return _reply({"message": "Server deleted"})

    # -- API: frontends and middlewares --------------------------------------------------------

    @staticmethod
    def _frontend_view(frontend_id, value):
        return {
            "Id": frontend_id,
            "Route": value.get("Route", ""),
            "Type": value.get("Type", "http"),
            "BackendId": value.get("BackendId", ""),
            "Settings": _merged(FRONTEND_SETTINGS, value.get("Settings")),
        }

    @route("POST", r"/v2/frontends")
    def upsert_frontend(self, request):
        frontend, ttl = self._body(request, "Frontend")
        if frontend.get("Type") != "http":
            _fail(500, f"Unsupported frontend type '{frontend.get('Type')}'")
        if not frontend.get("Id") or not frontend.get("BackendId"):
            _fail(500, "supply valid  route, id, and backendId")
        try:
            Route(str(frontend.get("Route", "")))
        except RouteError:
            _fail(500, f"route should be a valid route expression: {frontend.get('Route', '')}")
        value = {
            "Id": frontend["Id"],
            "Type": "http",
            "BackendId": frontend["BackendId"],
            "Route": frontend["Route"],
            "Settings": _merged(FRONTEND_SETTINGS, frontend.get("Settings")),
        }
        self._put(self._key("frontends", frontend["Id"], "frontend"), value, ttl,
                  parent=self._key("backends", frontend["BackendId"], "backend"))
        return _reply(self._frontend_view(frontend["Id"], value))

    @route("GET", r"/v2/frontends")
    def list_frontends(self, request):
        frontends = self._list("frontends", leaf="frontend")
        return _reply({"Frontends": [self._frontend_view(i, v) for i, v in frontends]})

    @route("GET", r"/v2/frontends/" + ID.format("frontend_id"))
    def get_frontend(self, request, frontend_id):
        return _reply(self._frontend_view(frontend_id, self._read(self._key("frontends", frontend_id, "frontend"))))

    @route("DELETE", r"/v2/frontends/" + ID.format("frontend_id"))
    def delete_frontend(self, request, frontend_id):
        self._delete(self._key("frontends", frontend_id), subtree=True)
        return _reply({"message": "Frontend deleted"})

    @staticmethod
    def _middleware_view(middleware_id, value):
        return {"Id": middleware_id, "Priority": value.get("Priority", 0), "Type": value.get("Type", ""), "Middleware": value.get("Middleware")}

    @route("POST", r"/v2/frontends/" + ID.format("frontend_id") + "/middlewares")
    def upsert_middleware(self, request, frontend_id):
        middleware, ttl = self._body(request, "Middleware")
        if middleware.get("Type") not in MIDDLEWARE_TYPES:
            _fail(500, f"middleware of type '{middleware.get('Type')}' is not supported")
        if not middleware.get("Id"):
            _fail(400, "frontend id and middleware id can not be empty")
        value = {k: middleware.get(k) for k in ("Id", "Type", "Priority", "Middleware")}
        self._put(self._key("frontends", frontend_id, "middlewares", middleware["Id"]), value, ttl,
                  parent=self._key("frontends", frontend_id, "frontend"))
        return _reply(self._middleware_view(middleware["Id"], value))

    @route("GET", r"/v2/frontends/" + ID.format("frontend_id") + "/middlewares")
    def list_middlewares(self, request, frontend_id):
        middlewares = self._list("frontends", frontend_id, "middlewares")
        return _reply({"Middlewares": [self._middleware_view(i, v) for i, v in middlewares]})

    @route("GET", r"/v2/frontends/" + ID.format("frontend_id") + "/middlewares/" + ID.format("middleware_id"))
    def get_middleware(self, request, frontend_id, middleware_id):
        value = self._read(self._key("frontends", frontend_id, "middlewares", middleware_id))
        return _reply(self._middleware_view(middleware_id, value))

    @route("DELETE", r"/v2/frontends/" + ID.format("frontend_id") + "/middlewares/" + ID.format("middleware_id"))
    def delete_middleware(self, request, frontend_id, middleware_id):
        self._delete(self._key("frontends", frontend_id, "middlewares", middleware_id))
        return _reply({"message": "Middleware deleted"})

    # -- replies the real mux gives --------------------------------------------------------------

    def error(self, status, message):
        return _reply({"message": message}, status)

    def not_found(self, request):
        return self.error(404, "Object not found")

    def method_not_allowed(self, request, allowed):
        return self.not_found(request)  # the 2016 gorilla/mux has no 405

    # -- configuration snapshot -------------------------------------------------------------------

    def reload(self):
        """Rebuild the proxy's view from etcd and open/close listeners to match.

        Reading and parsing happen outside the lock, so that API writes of listeners do not
        wait for a rebuild of everything."""
        revision, items = self.etcd.get_prefix(self.prefix + "/")
        config = self._parse(revision, items)
        with self._config_lock:
            if revision < self._config.revision:
                return  # a newer snapshot is already in place
            self._config = config
            # A listener written through the API after this read is already open; the watch
            # brings a newer snapshot, which includes it.
            if revision >= self._listeners_revision:
                self._listeners_revision = revision
                self._sync_listeners(config.listeners)

    def _parse(self, revision, items):
        config = _ProxyConfig(revision=revision)
        base = len(self.prefix) + 1
        frontends, servers = [], defaultdict(list)
        for key, raw in sorted(items.items()):
            parts = key[base:].split("/")
            try:
                value = json.loads(raw)
                if parts[0] == "listeners" and len(parts) == 2:
                    config.listeners[parts[1]] = self._listener_endpoint(value)
                elif parts[0] == "frontends" and parts[2:] == ["frontend"]:
                    settings = _merged(FRONTEND_SETTINGS, value.get("Settings"))
                    route = self._parsed_routes.get(value["Route"]) or Route(value["Route"])
                    frontends.append(_Frontend(parts[1], route, value["BackendId"], settings["PassHostHeader"]))
                elif parts[0] == "backends" and parts[2:3] == ["servers"] and len(parts) == 4:
                    servers[parts[1]].append(value["URL"])
                elif parts[0] == "backends" and parts[2:] == ["backend"]:
                    timeouts = _merged(BACKEND_SETTINGS, value.get("Settings"))["Timeouts"]
                    config.timeouts[parts[1]] = tuple(
                        parse_duration(timeouts[name]) if timeouts[name] else DEFAULT_UPSTREAM_TIMEOUT for name in ("Dial", "Read")
                    )
            except (ValueError, KeyError, TypeError, RouteError) as err:
                log.warning("vulcand: ignoring invalid %s: %s", key, err)
        self._parsed_routes = {frontend.route.expression: frontend.route for frontend in frontends}
        config.listeners = {k: v for k, v in config.listeners.items() if v is not None}
        config.frontends = sorted(frontends, key=lambda f: (tuple(-n for n in f.route.specificity), f.id))
        config.servers = {backend_id: urls for backend_id, urls in servers.items() if backend_id in config.timeouts}
        return config

    def _listener_endpoint(self, value):
        """(address, port) to open for a stored listener (on loopback unless opted in to
        upstream networks), or None for the kinds not modelled."""
        if value.get("Protocol") != "http" or value.get("Address", {}).get("Network") != "tcp":
            log.warning("vulcand: listener %s is not plain http over tcp; not opened", value)
            return None
        address, port = value["Address"]["Address"].rsplit(":", 1)
        return (address or "0.0.0.0") if self.upstream_networks else LOOPBACK, int(port)

    def _sync_listeners(self, wanted):
        """Open and close sockets so that they match ``wanted`` ({listener id: (address, port)})."""
        for listener_id in set(self._listeners) | set(wanted):
            self._sync_listener(listener_id, wanted.get(listener_id))

    def _sync_listener(self, listener_id, endpoint):
        """Listen for ``listener_id`` on ``endpoint``, or not at all when it is None."""
        listener = self._listeners.get(listener_id)
        if listener is not None:
            if listener.endpoint == endpoint:
                return
            listener.stop()
            del self._listeners[listener_id]
        if endpoint is None:
            self._unopened.pop(listener_id, None)
            return
        try:
            self._listeners[listener_id] = _Listener(self, endpoint).start()
        except OSError as err:
            if self._unopened.get(listener_id) != endpoint:  # say it once, not on every reload
                log.warning("vulcand: cannot listen on %s:%s for listener %s: %s", *endpoint, listener_id, err)
            self._unopened[listener_id] = endpoint
        else:
            self._unopened.pop(listener_id, None)

    def _watch_loop(self):
        while not self._stopping.is_set():
            try:
                with self._watch_lock:  # stop() must see, and close, every watch opened
                    if self._stopping.is_set():
                        break
                    self._watch = self.etcd.watch_prefix(self._key("listeners") + "/", self._listeners_revision + 1)
                for _ in self._watch:
                    self._listeners_stale.set()
                    self._activity.set()
            except (EtcdError, OSError, http.client.HTTPException) as err:
                log.debug("vulcand: etcd watch interrupted: %s", err)
            self._stopping.wait(WATCH_RETRY_SECONDS)

    def _listener_loop(self):
        """Open and close sockets for listener keys that anyone changed in etcd (or that expired),
        once those changes have been quiet for a moment: a burst of them costs one pass at its end.
        The routing table needs no such loop: proxied requests rebuild it when it is stale."""
        while not self._stopping.is_set():
            self._listeners_stale.wait()
            while True:
                self._activity.clear()
                if self._stopping.wait(LISTENER_QUIET_SECONDS):
                    return
                if not self._activity.is_set():
                    break
            self._listeners_stale.clear()  # before reading, so that a change made meanwhile is not lost
            self._sync_stored_listeners()

    def _sync_stored_listeners(self):
        base = self._key("listeners") + "/"
        revision, items = self.etcd.get_prefix(base)
        wanted = {}
        for key, raw in items.items():
            try:
                wanted[key[len(base):]] = self._listener_endpoint(json.loads(raw))
            except (ValueError, KeyError, TypeError) as err:
                log.warning("vulcand: ignoring invalid %s: %s", key, err)
        with self._config_lock:
            if revision >= self._listeners_revision:
                self._listeners_revision = revision
                self._sync_listeners({name: endpoint for name, endpoint in wanted.items() if endpoint is not None})

    def _refresh(self):
        """Rebuild the routing table if anything changed in etcd since it was built."""
        if self.etcd.revision() > self._config.revision:
            self.reload()

    # -- proxy ---------------------------------------------------------------------------------

    def forward(self, request):
        """Route ``request`` (received on a listener) and forward it to a backend server."""
        self._refresh()
        config = self._config
        target = RouteRequest(request.method, request.headers.get("Host") or "", request.path, request.headers)
        frontend = next((f for f in config.frontends if f.route.matches(target)), None)
        if frontend is None:
            return json_response({"error": "not found"}, 404)
        servers = config.servers.get(frontend.backend_id)
        if not servers:
            return text_response(http.client.responses[self.empty_backend_status], self.empty_backend_status)
        with self._round_robin_lock:
            turn = self._round_robin[frontend.backend_id]
            self._round_robin[frontend.backend_id] = turn + 1
        upstream = urllib.parse.urlsplit(servers[turn % len(servers)])
        address = reachable_address(upstream.hostname, self.upstream_networks)
        if address is None:
            log.warning("vulcand: refusing to contact server %s (not loopback nor in %s)",
                        upstream.geturl(), [str(network) for network in self.upstream_networks])
            return text_response("Bad Gateway", 502)
        dial_timeout, read_timeout = config.timeouts[frontend.backend_id]
        return self._exchange(request, upstream, address, frontend.pass_host_header, dial_timeout, read_timeout)

    @staticmethod
    def _exchange(request, upstream, address, pass_host_header, dial_timeout, read_timeout):
        headers = dict(request.headers)
        if not pass_host_header:
            headers["Host"] = upstream.netloc
        headers["X-Forwarded-For"] = request.client[0]
        headers["X-Forwarded-Host"] = request.headers.get("Host") or ""
        headers["X-Forwarded-Proto"] = "http"
        query = urllib.parse.urlencode(request.query, doseq=True)
        target = request.path + (f"?{query}" if query else "")
        try:
            return forward(request, address, upstream.port or 80, target, headers, dial_timeout, read_timeout)
        except UpstreamError as err:
            return text_response("Gateway Timeout", 504) if err.timed_out else text_response("Bad Gateway", 502)
