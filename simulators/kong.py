"""A Kong 3.x simulator: the Admin API (API reference, section 2) and a working proxy.

Admin API: services, routes, upstreams, targets, plugins (key-auth, basic-auth,
rate-limiting), consumers and their key-auth / basic-auth credentials, top level and nested;
PUT upserts by endpoint key or id, PATCH, DELETE 204, schema / unique / foreign-key errors
with Kong's codes and bodies, tags filters, pagination, ``url`` shorthand, JSON and form
bodies, ``/`` and ``/status``. Kong's other entity collections (certificates, snis, vaults,
keys, the credentials of other plugins...) list empty, so decK can read a whole configuration.

Proxy: a second listener that matches requests to routes (hosts, including wildcards; paths,
plain or ``~`` regex; methods), runs key-auth and basic-auth, and forwards to the route's
service (or to the targets of the upstream its host names) honouring ``strip_path`` and
``preserve_host``. Hostnames resolve through the constructor's ``resolve`` map only (patterns
such as ``*.service.consul`` allowed); besides that only loopback names and addresses are
reachable, so no test traffic leaves the machine. A stand-in on real hosts opts in to
``upstream_networks``: addresses there are reachable too, and other names resolve through the
system resolver, as Kong's own resolver reads /etc/resolv.conf.
"""

import base64
import binascii
import fnmatch
import hashlib
import ipaddress
import itertools
import json
import re
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass

from simulators.base import (
    Abort,
    BodyError,
    Simulator,
    UpstreamError,
    collector_paused,
    empty_response,
    forward,
    json_response,
    reachable_address,
    route,
)

KONG_VERSION = "3.9.1"
JSON_UTF8 = "application/json; charset=utf-8"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, MAX_TAGS = 100, 1000, 5
UUID_PATTERN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
TAG_PATTERN = re.compile(r"^[\x21-\x2b\x2d\x2e\x30-\x7e\x80-\U0010ffff][ \x21-\x2b\x2d\x2e\x30-\x7e\x80-\U0010ffff]*$")

SERVICE_PROTOCOLS = ("grpc", "grpcs", "http", "https", "tcp", "tls", "tls_passthrough", "udp", "ws", "wss")
ROUTE_PROTOCOLS = SERVICE_PROTOCOLS
HTTP_METHODS = ("GET", "HEAD", "PUT", "PATCH", "POST", "DELETE", "OPTIONS", "TRACE", "CONNECT")


# -- schemas ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    kind: str  # string, integer, number, boolean, array, set, map, record, foreign
    default: object = None
    required: bool = False
    one_of: tuple = ()
    between: tuple = ()
    elements: object = None  # Field of array/set elements
    reference: str = ""  # foreign: the referenced collection
    fields: dict = None  # record: sub-fields (None = free-form map)
    unique: bool = False
    check: object = None  # callable(value) -> error message or None


def _string(**kwargs):
    return Field("string", **kwargs)


def _integer(default=None, between=(), **kwargs):
    return Field("integer", default=default, between=between, **kwargs)


def _boolean(default=None):
    return Field("boolean", default=default)


def _strings(default=None, one_of=(), check=None):
    return Field("array", default=default, elements=_string(one_of=one_of, check=check))


def _foreign(reference, required=False):
    return Field("foreign", reference=reference, required=required)


def _tag_error(tag):
    if not isinstance(tag, str) or not TAG_PATTERN.match(tag):
        return f"invalid tag '{tag}': expected printable ascii (except `,` and `/`) or valid utf-8 sequences"
    return None


def _path_error(path):
    if not path.startswith("/"):
        return "should start with: /"
    return None


def _route_path_error(path):
    if not path.startswith("/") and not path.startswith("~/"):
        return "should start with: / (fixed path) or ~/ (regex path)"
    if path.startswith("~"):
        try:
            re.compile(path[1:])
        except re.error as err:
            return f"invalid regex: '{path[1:]}' ({err})"
    return None


TAGS = Field("set", elements=_string(check=_tag_error))
TIMEOUT = _integer(60000, between=(1, 2**31 - 2))
COMMON = {"id": _string(), "created_at": _integer(), "updated_at": _integer(), "tags": TAGS}
CREDENTIAL_COMMON = {"id": _string(), "created_at": _integer(), "tags": TAGS}  # never updated

PLUGIN_CONFIGS = {
    "key-auth": {
        "key_names": _strings(["apikey"]),
        "hide_credentials": _boolean(False),
        "anonymous": _string(),
        "key_in_header": _boolean(True),
        "key_in_query": _boolean(True),
        "key_in_body": _boolean(False),
        "run_on_preflight": _boolean(True),
        "realm": _string(),
    },
    "basic-auth": {
        "anonymous": _string(),
        "hide_credentials": _boolean(False),
        "realm": _string(default="service"),
    },
    "rate-limiting": {
        **{window: Field("number") for window in ("second", "minute", "hour", "day", "month", "year")},
        "limit_by": _string(default="consumer", one_of=("consumer", "credential", "ip", "service",
                                                         "header", "path", "consumer-group")),
        "header_name": _string(),
        "path": _string(),
        "policy": _string(default="local", one_of=("local", "cluster", "redis")),
        "fault_tolerant": _boolean(True),
        "hide_client_headers": _boolean(False),
        "error_code": Field("number", default=429),
        "error_message": _string(default="API rate limit exceeded"),
        "sync_rate": Field("number", default=-1),
    },
}
# Plugins that identify consumers cannot themselves be scoped to one.
CONSUMERLESS_PLUGINS = ("key-auth", "basic-auth")
RATE_WINDOWS = ("second", "minute", "hour", "day", "month", "year")


@dataclass(frozen=True)
class Schema:
    name: str  # the DAO name, used in error messages ('services')
    fields: dict
    endpoint_key: str = None
    unique_together: tuple = ()  # fields forming a composite unique key
    at_least_one_of: tuple = ()

    def default_entity(self):
        return {name: _default(spec) for name, spec in self.fields.items()}


def _default(spec):
    if spec.kind == "record" and spec.fields is not None:
        return {name: _default(sub) for name, sub in spec.fields.items()}
    return json.loads(json.dumps(spec.default))  # a fresh copy of mutable defaults


SCHEMAS = {
    "services": Schema("services", {
        **COMMON,
        "name": _string(unique=True),
        "retries": _integer(5, between=(0, 32767)),
        "protocol": _string(default="http", one_of=SERVICE_PROTOCOLS),
        "host": _string(required=True),
        "port": _integer(80, between=(0, 65535)),
        "path": _string(check=_path_error),
        "connect_timeout": TIMEOUT,
        "write_timeout": TIMEOUT,
        "read_timeout": TIMEOUT,
        "client_certificate": _foreign("certificates"),
        "tls_verify": _boolean(),
        "tls_verify_depth": _integer(between=(0, 64)),
        "ca_certificates": _strings(),
        "enabled": _boolean(True),
    }, endpoint_key="name"),
    "routes": Schema("routes", {
        **COMMON,
        "name": _string(unique=True),
        "protocols": Field("set", default=["http", "https"], elements=_string(one_of=ROUTE_PROTOCOLS)),
        "methods": Field("set", elements=_string(one_of=HTTP_METHODS)),
        "hosts": _strings(),
        "paths": _strings(check=_route_path_error),
        "headers": Field("map"),
        "https_redirect_status_code": _integer(426, one_of=(426, 301, 302, 307, 308)),
        "regex_priority": _integer(0),
        "strip_path": _boolean(True),
        "path_handling": _string(default="v0", one_of=("v0", "v1")),
        "preserve_host": _boolean(False),
        "request_buffering": _boolean(True),
        "response_buffering": _boolean(True),
        "snis": _strings(),
        "sources": Field("set", elements=Field("record", fields=None)),
        "destinations": Field("set", elements=Field("record", fields=None)),
        "service": _foreign("services"),
    }, endpoint_key="name"),
    "upstreams": Schema("upstreams", {
        **COMMON,
        "name": _string(required=True, unique=True),
        "algorithm": _string(default="round-robin", one_of=("consistent-hashing", "least-connections",
                                                            "round-robin", "latency", "sticky-sessions")),
        "hash_on": _string(default="none"),
        "hash_fallback": _string(default="none"),
        "hash_on_header": _string(),
        "hash_fallback_header": _string(),
        "hash_on_cookie": _string(),
        "hash_on_cookie_path": _string(default="/"),
        "hash_on_query_arg": _string(),
        "hash_fallback_query_arg": _string(),
        "hash_on_uri_capture": _string(),
        "hash_fallback_uri_capture": _string(),
        "slots": _integer(10000, between=(10, 65536)),
        "healthchecks": Field("record", fields={
            "threshold": Field("number", default=0),
            "active": Field("map", default={
                "type": "http", "http_path": "/", "https_verify_certificate": True, "https_sni": None,
                "headers": None, "timeout": 1, "concurrency": 10,
                "healthy": {"interval": 0, "successes": 0, "http_statuses": [200, 302]},
                "unhealthy": {"interval": 0, "tcp_failures": 0, "timeouts": 0, "http_failures": 0,
                              "http_statuses": [429, 404, 500, 501, 502, 503, 504, 505]},
            }),
            "passive": Field("map", default={
                "type": "http",
                "healthy": {"successes": 0, "http_statuses": [200, 201, 202, 203, 204, 205, 206, 207,
                                                              208, 226, 300, 301, 302, 303, 304, 305,
                                                              306, 307, 308]},
                "unhealthy": {"tcp_failures": 0, "timeouts": 0, "http_failures": 0,
                              "http_statuses": [429, 500, 503]},
            }),
        }),
        "host_header": _string(),
        "client_certificate": _foreign("certificates"),
        "use_srv_name": _boolean(False),
    }, endpoint_key="name"),
    "targets": Schema("targets", {
        **COMMON,
        "created_at": Field("number"),
        "updated_at": Field("number"),
        "upstream": _foreign("upstreams", required=True),
        "target": _string(required=True),
        "weight": _integer(100, between=(0, 65535)),
    }, endpoint_key="target", unique_together=("upstream", "target")),
    "consumers": Schema("consumers", {
        **COMMON,
        "username": _string(unique=True),
        "custom_id": _string(unique=True),
    }, endpoint_key="username", at_least_one_of=("custom_id", "username")),
    "plugins": Schema("plugins", {
        **COMMON,
        "name": _string(required=True),
        "instance_name": _string(unique=True),
        "config": Field("record", fields=None),  # checked against PLUGIN_CONFIGS by name
        "enabled": _boolean(True),
        "protocols": Field("set", default=["grpc", "grpcs", "http", "https"],
                           elements=_string(one_of=ROUTE_PROTOCOLS)),
        "service": _foreign("services"),
        "route": _foreign("routes"),
        "consumer": _foreign("consumers"),
        "ordering": Field("map"),
    }, endpoint_key="instance_name", unique_together=("name", "route", "service", "consumer")),
    "keyauth_credentials": Schema("keyauth_credentials", {
        **CREDENTIAL_COMMON,
        "consumer": _foreign("consumers", required=True),
        "key": _string(unique=True),
        "ttl": _integer(),
    }, endpoint_key="key"),
    "basicauth_credentials": Schema("basicauth_credentials", {
        **CREDENTIAL_COMMON,
        "consumer": _foreign("consumers", required=True),
        "username": _string(required=True, unique=True),
        "password": _string(required=True),
    }, endpoint_key="username"),
}

# URL segment -> collection; nested URL (parent segment, child segment) -> foreign key field.
COLLECTIONS = {
    "services": "services", "routes": "routes", "upstreams": "upstreams", "targets": "targets",
    "consumers": "consumers", "plugins": "plugins", "key-auths": "keyauth_credentials",
    "key-auth": "keyauth_credentials", "basic-auths": "basicauth_credentials",
    "basic-auth": "basicauth_credentials",
}
TOP_LEVEL = ("services", "routes", "upstreams", "consumers", "plugins", "key-auths", "basic-auths")
NESTED = {
    ("services", "routes"): "service",
    ("services", "plugins"): "service",
    ("routes", "plugins"): "route",
    ("consumers", "plugins"): "consumer",
    ("consumers", "key-auth"): "consumer",
    ("consumers", "basic-auth"): "consumer",
    ("upstreams", "targets"): "upstream",
}
# Who goes when a parent is deleted (Kong's on_delete = "cascade"); routes block their service.
CASCADES = {
    "services": ("plugins",),
    "routes": ("plugins",),
    "consumers": ("plugins", "keyauth_credentials", "basicauth_credentials"),
    "upstreams": ("targets",),
}
BLOCKING_REFERENCES = {"services": ("routes",)}
# The rest of Kong 3.x's entity collections (open source edition, bundled plugins' credentials
# included): nothing here manages them, so they are listed, always empty and paginated like
# the others, for tools that read a whole configuration (decK's ping, dump, diff and sync);
# writing to them is refused rather than faked.
UNSTORED_COLLECTIONS = (
    "acls", "ca_certificates", "certificates", "filter-chains", "hmac-auths", "jwts", "key-sets",
    "keys", "oauth2", "oauth2_tokens", "snis", "vaults",
)
UNSTORED_CONSUMER_COLLECTIONS = ("acls", "hmac-auth", "jwt", "oauth2")


# -- errors ----------------------------------------------------------------------------------------


def _kong_error(status, code, name, message, **extra):
    return Abort(json_response({"code": code, "name": name, "message": message, **extra}, status,
                               content_type=JSON_UTF8))


def _message(status, message):
    return Abort(json_response({"message": message}, status, content_type=JSON_UTF8))


def _schema_violation(errors):
    """errors: field -> message (nested dicts for records, "@entity" -> [messages])."""
    flat = list(_flatten_errors(errors))
    if len(flat) == 1:
        message = f"schema violation ({flat[0]})"
    else:
        message = f"{len(flat)} schema violations ({'; '.join(flat)})"
    return _kong_error(400, 2, "schema violation", message, fields=errors)


def _flatten_errors(errors, prefix=""):
    for key, value in errors.items():
        if isinstance(value, dict):
            yield from _flatten_errors(value, f"{prefix}{key}.")
        elif isinstance(value, list):
            for item in value:
                yield item if key == "@entity" else f"{prefix}{key}: {item}"
        else:
            yield f"{prefix}{key}: {value}"


def _lua(value):
    """Kong prints primary/unique keys as Lua tables: {name="x"}, keys sorted."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{key}={_lua(value[key])}" for key in sorted(value)) + "}"
    return "null" if value is None else json.dumps(value)


def _not_found_entity(key_fields):
    key = f"primary key '{_lua(key_fields)}'" if "id" in key_fields else f"'{_lua(key_fields)}'"
    return _kong_error(404, 6, "not found", f"could not find the entity with {key}", fields=key_fields)


# -- body decoding ---------------------------------------------------------------------------------


def _decode_body(request):
    """The request body as nested data; form bodies come back with strings to coerce."""
    if not request.body:
        return {}, False
    content_type = request.content_type
    if content_type == "application/json":
        try:
            body = request.json()
        except BodyError:
            raise _message(400, "Cannot parse JSON body") from None
        if not isinstance(body, dict):
            raise _message(400, "Cannot parse JSON body")
        return body, False
    if content_type in FORM_TYPES:
        try:
            return _unflatten(request.form()), True
        except BodyError:
            raise _message(400, "Cannot parse form body") from None
    raise _message(415, "Unsupported Media Type")


def _unflatten(form):
    """Kong's form convention: ``a.b=1`` nests; ``list[1]=x``, ``list[]=x`` or a repeated key
    make an array (a lone plain value is turned into an array later, by the schema)."""
    result = {}
    for raw_key, values in form.items():
        is_list = raw_key.endswith("]") or len(values) > 1
        *parents, leaf = re.sub(r"\[\d*\]$", "", raw_key).split(".")
        target = result
        for part in parents:
            target = target.setdefault(part, {})
        if is_list:
            target.setdefault(leaf, []).extend(values)
        else:
            target[leaf] = values[0]
    return result


def _coerce_form(value, spec):
    """Form values are strings: give them the schema's types (Kong does the same)."""
    if spec is None or value is None:
        return value
    if spec.kind in ("integer", "number") and isinstance(value, str):
        try:
            return int(value) if spec.kind == "integer" else float(value)
        except ValueError:
            return value
    if spec.kind == "boolean" and isinstance(value, str):
        return {"true": True, "false": False}.get(value, value)
    if spec.kind in ("array", "set"):
        items = value if isinstance(value, list) else [value]
        return [_coerce_form(item, spec.elements) for item in items]
    if spec.kind == "record" and isinstance(value, dict) and spec.fields:
        return {key: _coerce_form(item, spec.fields.get(key)) for key, item in value.items()}
    return value


# -- validation ------------------------------------------------------------------------------------


def _validate_value(value, spec):
    """The error message for ``value`` against ``spec`` (a dict for records), or None."""
    if value is None:
        return None
    kind = spec.kind
    if kind == "string":
        if not isinstance(value, str):
            return "expected a string"
        if value == "":
            return "length must be at least 1"
    elif kind == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            return "expected an integer"
    elif kind == "number":
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return "expected a number"
    elif kind == "boolean":
        if not isinstance(value, bool):
            return "expected a boolean"
    elif kind in ("array", "set"):
        if not isinstance(value, list):
            return "expected an array" if kind == "array" else "expected a set"
        for item in value:
            error = _validate_value(item, spec.elements)
            if error:
                return error
        return None
    elif kind in ("map", "record"):
        if not isinstance(value, dict):
            return "expected a map" if kind == "map" else "expected a record"
        if kind == "record" and spec.fields:
            errors = _validate_fields(value, spec.fields) | _missing_fields(value, spec.fields)
            return errors or None
        return None
    elif kind == "foreign":
        if not isinstance(value, dict) or set(value) - {"id", "name", "username"}:
            return "expected a record"
        return None
    if spec.one_of and value not in spec.one_of:
        return "expected one of: " + ", ".join(str(item) for item in spec.one_of)
    if spec.between and not spec.between[0] <= value <= spec.between[1]:
        return f"value should be between {spec.between[0]} and {spec.between[1]}"
    if spec.check:
        return spec.check(value)
    return None


def _validate_fields(given, fields):
    """Errors of the fields present in ``given`` (see _missing_fields for required ones)."""
    errors = {}
    for name, value in given.items():
        spec = fields.get(name)
        if spec is None:
            errors[name] = "unknown field"
            continue
        error = _validate_value(value, spec)
        if error:
            errors[name] = error
    return errors


def _missing_fields(entity, fields):
    return {name: "required field missing" for name, spec in fields.items()
            if spec.required and entity.get(name) is None}


# -- the admin simulator ---------------------------------------------------------------------------


class KongSimulator(Simulator):
    """The Admin API listener; :attr:`proxy` is the proxy listener sharing its data."""

    name = "kong"

    def __init__(self, port=0, proxy_port=0, resolve=None, upstream_networks=()):
        """
        :param resolve: hostname (or fnmatch pattern such as ``*.service.consul``) -> address
            used by the proxy to reach services. Only loopback names resolve otherwise.
        :param upstream_networks: CIDRs the proxy may reach besides loopback, names outside
            ``resolve`` resolving through the system resolver (none: loopback only).
        """
        super().__init__(port)
        self.resolve = dict(resolve or {})
        self.upstream_networks = [ipaddress.ip_network(network) for network in upstream_networks]
        self.proxy = KongProxy(self, proxy_port)
        self.node_id = str(uuid.uuid4())
        self._lock = threading.RLock()
        self._data = {name: {} for name in SCHEMAS}
        self._unique = {}  # (collection, unique field) -> {value: entity id}
        self._round_robin = {}

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--proxy-port", type=int, default=0, help="proxy listening port")
        parser.add_argument(
            "--resolve",
            action="append",
            default=[],
            metavar="NAME=ADDRESS",
            type=lambda pair: tuple(pair.split("=", 1)),
            help="name (or pattern like *.service.consul) the proxy resolves to ADDRESS",
        )
        parser.add_argument(
            "--upstream-network",
            action="append",
            default=[],
            dest="upstream_networks",
            metavar="CIDR",
            help="a network the proxy may reach besides loopback (names then resolve through "
                 "the system resolver)",
        )

    def start(self):
        super().start()
        self.proxy.start()
        return self

    def stop(self):
        self.proxy.stop()
        super().stop()

    @property
    def admin_url(self):
        return self.url

    @property
    def proxy_url(self):
        return self.proxy.url

    @property
    def urls(self):
        return {"admin_url": self.admin_url, "proxy_url": self.proxy_url}

    def reset(self):
        super().reset()
        self.proxy.faults.clear()
        with self._lock:
            for entities in self._data.values():
                entities.clear()
            self._unique.clear()
            self._round_robin.clear()

    def error(self, status, message):
        return json_response({"message": message}, status, content_type=JSON_UTF8)

    def _json(self, data, status=200):
        return json_response(data, status, content_type=JSON_UTF8)

    # -- info endpoints ----------------------------------------------------------------------

    @route("GET", r"/")
    def root(self, request):
        enabled = sorted(PLUGIN_CONFIGS)
        return self._json({
            "version": KONG_VERSION,
            "edition": "community",
            "tagline": "Welcome to kong",
            "hostname": "kong-sim",
            "node_id": self.node_id,
            "lua_version": "LuaJIT 2.1.0-20231117",
            "configuration": {"database": "postgres", "admin_listen": [self.url],
                              "proxy_listen": [self.proxy.url], "plugins": ["bundled"]},
            "plugins": {"available_on_server": {name: {"version": KONG_VERSION, "priority": 0}
                                                for name in enabled},
                        "enabled_in_cluster": sorted({p["name"] for p in self._data["plugins"].values()})},
        })

    @route("GET", r"/status")
    def status(self, request):
        served = sum(self.request_counts.values()) + sum(self.proxy.request_counts.values())
        return self._json({
            "database": {"reachable": True},
            "server": {"connections_accepted": served, "connections_active": 1,
                       "connections_handled": served, "connections_reading": 0,
                       "connections_waiting": 0, "connections_writing": 1, "total_requests": served},
            "memory": {"workers_lua_vms": [], "lua_shared_dicts": {}},
        })

    @route("GET", r"/plugins/enabled")
    def plugins_enabled(self, request):
        return self._json({"enabled_plugins": sorted(PLUGIN_CONFIGS)})

    @route("GET", r"/tags")
    @route("GET", r"/tags/(?P<tag>[^/]+)")
    def tags(self, request, tag=None):
        with self._lock:
            rows = [
                {"entity_name": collection, "entity_id": entity["id"], "tag": entity_tag}
                for collection, entities in self._data.items()
                for entity in entities.values()
                for entity_tag in entity.get("tags") or []
                if tag is None or entity_tag == tag
            ]
        return self._json(self._page(request, rows, request.path, tag_filter=False))

    # -- generic CRUD routes -----------------------------------------------------------------

    @route("GET", r"/upstreams/(?P<parent_key>[^/]+)/targets/all")
    def targets_all(self, request, parent_key):
        return self.list_entities(request, "targets", parent="upstreams", parent_key=parent_key)

    @route("GET", r"/(?P<collection>[a-z0-9_-]+)")
    @route("GET", r"/(?P<parent>[a-z0-9_-]+)/(?P<parent_key>[^/]+)/(?P<collection>[a-z0-9_-]+)")
    def list_entities(self, request, collection, parent=None, parent_key=None):
        if self._unstored(collection, parent, parent_key):
            return self._json(self._page(request, [], request.path))
        scope = self._scope(collection, parent, parent_key)
        with collector_paused():
            with self._lock:
                rows = [entity for entity in self._data[scope.schema.name].values()
                        if scope.contains(entity)]
            return self._json(self._page(request, rows, request.path))

    @route("POST", r"/(?P<collection>[a-z0-9_-]+)")
    @route("POST", r"/(?P<parent>[a-z0-9_-]+)/(?P<parent_key>[^/]+)/(?P<collection>[a-z0-9_-]+)")
    def create_entity(self, request, collection, parent=None, parent_key=None):
        self._refuse_unstored(collection, parent, parent_key)
        body, from_form = _decode_body(request)
        scope = self._scope(collection, parent, parent_key)
        with self._lock:
            entity = self._build(scope, body, from_form, existing=None)
            self._store(scope.schema, entity)
        return self._json(entity, 201)

    @route("GET", r"/(?P<collection>[a-z0-9_-]+)/(?P<key>[^/]+)")
    @route("GET", r"/(?P<parent>[a-z0-9_-]+)/(?P<parent_key>[^/]+)/(?P<collection>[a-z0-9_-]+)/(?P<key>[^/]+)")
    def get_entity(self, request, collection, key, parent=None, parent_key=None):
        scope = self._scope(collection, parent, parent_key)
        with self._lock:
            entity = scope.find(key)
            if entity is None:
                raise _message(404, "Not found")
            return self._json(entity)

    @route("PUT", r"/(?P<collection>[a-z0-9_-]+)/(?P<key>[^/]+)")
    @route("PUT", r"/(?P<parent>[a-z0-9_-]+)/(?P<parent_key>[^/]+)/(?P<collection>[a-z0-9_-]+)/(?P<key>[^/]+)")
    def put_entity(self, request, collection, key, parent=None, parent_key=None):
        self._refuse_unstored(collection, parent, parent_key)
        body, from_form = _decode_body(request)
        scope = self._scope(collection, parent, parent_key)
        schema = scope.schema
        # The URL names the entity: its id or endpoint key wins over the body's.
        if UUID_PATTERN.match(key):
            body["id"] = key
        elif schema.endpoint_key:
            body[schema.endpoint_key] = key
        else:
            raise _kong_error(400, 1, "invalid primary key", f"invalid primary key: '{_lua({'id': key})}'",
                              fields={"id": "expected a valid UUID"})
        with self._lock:
            existing = scope.find(key)
            entity = self._build(scope, body, from_form, existing=existing, replace=True)
            self._store(schema, entity)
        return self._json(entity)

    @route("PATCH", r"/(?P<collection>[a-z0-9_-]+)/(?P<key>[^/]+)")
    @route("PATCH", r"/(?P<parent>[a-z0-9_-]+)/(?P<parent_key>[^/]+)/(?P<collection>[a-z0-9_-]+)/(?P<key>[^/]+)")
    def patch_entity(self, request, collection, key, parent=None, parent_key=None):
        self._refuse_unstored(collection, parent, parent_key)
        body, from_form = _decode_body(request)
        scope = self._scope(collection, parent, parent_key)
        with self._lock:
            existing = scope.find(key)
            if existing is None:
                key_field = "id" if UUID_PATTERN.match(key) else scope.schema.endpoint_key
                raise _not_found_entity({key_field: key})
            entity = self._build(scope, body, from_form, existing=existing)
            self._store(scope.schema, entity)
        return self._json(entity)

    @route("DELETE", r"/(?P<collection>[a-z0-9_-]+)/(?P<key>[^/]+)")
    @route("DELETE", r"/(?P<parent>[a-z0-9_-]+)/(?P<parent_key>[^/]+)/(?P<collection>[a-z0-9_-]+)/(?P<key>[^/]+)")
    def delete_entity(self, request, collection, key, parent=None, parent_key=None):
        scope = self._scope(collection, parent, parent_key)
        with self._lock:
            entity = scope.find(key)
            if entity is not None:
                self._delete(scope.schema.name, entity)
        return empty_response(204)

    # -- CRUD machinery ----------------------------------------------------------------------

    def _unstored(self, segment, parent, parent_key):
        """Whether the URL names one of the collections listed empty (404 for a missing parent)."""
        if parent is None:
            return segment in UNSTORED_COLLECTIONS
        if parent != "consumers" or segment not in UNSTORED_CONSUMER_COLLECTIONS:
            return False
        with self._lock:
            if _Scope(self, SCHEMAS["consumers"]).find(parent_key) is None:
                raise _message(404, "Not found")
        return True

    def _refuse_unstored(self, segment, parent, parent_key):
        if self._unstored(segment, parent, parent_key):
            raise _message(405, f"The Kong simulator lists {segment} (always empty) but stores none")

    def _scope(self, segment, parent=None, parent_key=None):
        """Which collection a URL names, restricted to a parent for nested URLs."""
        if parent is None:
            if segment not in TOP_LEVEL:
                raise _message(404, "Not found")
            return _Scope(self, SCHEMAS[COLLECTIONS[segment]])
        foreign_key = NESTED.get((parent, segment))
        if foreign_key is None:
            raise _message(404, "Not found")
        with self._lock:
            owner = _Scope(self, SCHEMAS[parent]).find(parent_key)
        if owner is None:
            raise _message(404, "Not found")
        return _Scope(self, SCHEMAS[COLLECTIONS[segment]], foreign_key, owner["id"])

    def _build(self, scope, body, from_form, existing, replace=False):
        """The entity a create (existing None), PUT (replace) or PATCH would store."""
        schema = scope.schema
        if from_form:
            body = {key: _coerce_form(value, schema.fields.get(key)) for key, value in body.items()}
        if schema.name == "services":
            body = self._expand_url(body)
        if scope.foreign_key:
            body[scope.foreign_key] = {"id": scope.parent_id}
        for server_field in ("created_at", "updated_at"):
            body.pop(server_field, None)

        errors = _validate_fields(body, schema.fields)
        if existing is None or replace:
            entity = schema.default_entity()
            if existing is not None:
                entity["id"], entity["created_at"] = existing["id"], existing["created_at"]
        else:
            entity = json.loads(json.dumps(existing))
        for key, value in body.items():
            if key in errors:
                continue
            if key == "config" and not replace and isinstance(value, dict) and entity.get("config"):
                entity["config"] = {**entity["config"], **value}  # PATCH merges records
            else:
                entity[key] = value
        entity["id"] = entity.get("id") or str(uuid.uuid4())
        if body.get("id") and not UUID_PATTERN.match(str(body["id"])):
            errors["id"] = "expected a valid UUID"
        # Targets carry millisecond timestamps (floats), everything else whole seconds.
        now = round(time.time(), 3) if schema.name == "targets" else int(time.time())
        entity["created_at"] = entity.get("created_at") or now
        if "updated_at" in schema.fields:
            entity["updated_at"] = now

        errors = _missing_fields(entity, schema.fields) | errors
        errors.update(self._entity_errors(schema, entity, from_form, errors))
        if errors:
            raise _schema_violation(errors)
        self._check_foreign_keys(schema, entity)
        if schema.name == "basicauth_credentials" and "password" in body:
            # Kong stores (and shows) only a salted hash of the password.
            entity["password"] = _hash_password(entity["password"], entity["consumer"]["id"])
        self._check_unique(schema, entity)
        return entity

    def _expand_url(self, body):
        """``url`` is write-only shorthand for protocol, host, port and path."""
        if "url" not in body:
            return body
        body = dict(body)
        url = body.pop("url")
        parsed = urllib.parse.urlsplit(url) if isinstance(url, str) else None
        if not parsed or not parsed.scheme or not parsed.hostname:
            raise _schema_violation({"url": "missing host in url" if parsed else "expected a string"})
        body.update({
            "protocol": parsed.scheme,
            "host": parsed.hostname,
            "port": parsed.port or (443 if parsed.scheme in ("https", "grpcs", "wss", "tls") else 80),
            "path": parsed.path or None,
        })
        return body

    def _entity_errors(self, schema, entity, from_form, errors):
        """Cross-field rules (Kong's entity_checks) and per-entity normalisation."""
        found = {}
        if schema.at_least_one_of and not any(entity.get(name) for name in schema.at_least_one_of):
            names = ", ".join(f"'{name}'" for name in schema.at_least_one_of)
            found["@entity"] = [f"at least one of these fields must be non-empty: {names}"]
        if schema.name == "services":
            if entity["protocol"] not in ("http", "https", "ws", "wss") and entity["path"] is not None:
                found["path"] = "value must be null"
        elif schema.name == "routes" and "protocols" not in errors:
            protocols = entity["protocols"] or []
            if any(p in ("http", "https") for p in protocols):
                criteria = ["methods", "hosts", "headers", "paths"]
                label = "http"
                if "https" in protocols:
                    criteria.append("snis")
                    label = "https"
                # Like Kong, skip a cross-field check when one of its fields is already wrong.
                if not any(entity.get(name) for name in criteria) and not errors.keys() & set(criteria):
                    listed = ", ".join(f"'{name}'" for name in criteria)
                    found["@entity"] = [f"must set one of {listed} when 'protocols' is '{label}'"]
            if entity.get("headers") and "host" in {h.lower() for h in entity["headers"]}:
                found["headers"] = "cannot contain 'host' header, which must be specified in the 'hosts' attribute"
        elif schema.name == "targets" and "target" not in errors:
            entity["target"] = _normalise_target(entity["target"], found)
        elif schema.name == "plugins" and "name" not in errors:
            found.update(self._plugin_errors(entity, from_form))
        elif schema.name == "keyauth_credentials":
            entity["key"] = entity.get("key") or uuid.uuid4().hex
        return found

    def _plugin_errors(self, plugin, from_form):
        name = plugin["name"]
        config_spec = PLUGIN_CONFIGS.get(name)
        if config_spec is None:
            return {"name": f"plugin '{name}' not enabled; add it to the 'plugins' configuration property"}
        given = plugin.get("config") or {}
        if from_form:
            given = {key: _coerce_form(value, config_spec.get(key)) for key, value in given.items()}
        config = {key: _default(spec) for key, spec in config_spec.items()}
        config.update(given)
        plugin["config"] = config
        errors = {}
        config_errors = _validate_fields(given, config_spec)
        if name == "rate-limiting" and not any(config.get(window) for window in RATE_WINDOWS):
            windows = ", ".join(f"'{window}'" for window in RATE_WINDOWS)
            config_errors["@entity"] = [f"at least one of these fields must be non-empty: {windows}"]
        if config_errors:
            errors["config"] = config_errors
        if name in CONSUMERLESS_PLUGINS and plugin.get("consumer"):
            errors["consumer"] = "value must be null"
        return errors

    def _check_foreign_keys(self, schema, entity):
        for name, spec in schema.fields.items():
            reference = entity.get(name)
            if spec.kind != "foreign" or reference is None:
                continue
            # A foreign key may name the parent by id or by its endpoint key.
            parent = _Scope(self, SCHEMAS[spec.reference]).find(
                reference.get("id") or reference.get("name") or reference.get("username") or "")
            if parent is None:
                raise _kong_error(
                    400, 4, "foreign key violation",
                    f"the foreign key '{_lua(reference)}' does not reference an existing "
                    f"'{spec.reference}' entity.",
                    fields={name: reference},
                )
            entity[name] = {"id": parent["id"]}

    def _check_unique(self, schema, entity):
        for name, spec in schema.fields.items():
            value = entity.get(name)
            owner = self._unique.get((schema.name, name), {}).get(value) if spec.unique and value is not None else None
            if owner is not None and owner != entity["id"]:
                raise _kong_error(409, 5, "unique constraint violation",
                                  f"UNIQUE violation detected on '{_lua({name: value})}'",
                                  fields={name: value})
        if schema.unique_together:
            others = [e for e in self._data[schema.name].values() if e["id"] != entity["id"]]
            key = {name: entity.get(name) for name in schema.unique_together}
            if any(all(e.get(name) == value for name, value in key.items()) for e in others):
                raise _kong_error(409, 5, "unique constraint violation",
                                  f"UNIQUE violation detected on '{_lua(key)}'", fields=key)

    def _store(self, schema, entity):
        previous = self._data[schema.name].get(entity["id"])
        if previous is not None:
            self._index(schema, previous, add=False)
        self._data[schema.name][entity["id"]] = entity
        self._index(schema, entity, add=True)

    def _index(self, schema, entity, add):
        """Keep the lookup of unique field values (names, usernames, keys) up to date."""
        for name, spec in schema.fields.items():
            value = entity.get(name)
            if not spec.unique or value is None:
                continue
            index = self._unique.setdefault((schema.name, name), {})
            if add:
                index[value] = entity["id"]
            elif index.get(value) == entity["id"]:
                del index[value]

    def _delete(self, collection, entity):
        for blocker in BLOCKING_REFERENCES.get(collection, ()):
            foreign_key = _foreign_key_to(blocker, collection)
            if any((e.get(foreign_key) or {}).get("id") == entity["id"]
                   for e in self._data[blocker].values()):
                raise _kong_error(
                    400, 4, "foreign key violation",
                    f"an existing '{blocker}' entity references this '{collection}' entity",
                    fields={"@referenced_by": blocker},
                )
        for dependent in CASCADES.get(collection, ()):
            foreign_key = _foreign_key_to(dependent, collection)
            for child in list(self._data[dependent].values()):
                if (child.get(foreign_key) or {}).get("id") == entity["id"]:
                    self._delete(dependent, child)
        self._index(SCHEMAS[collection], entity, add=False)
        del self._data[collection][entity["id"]]

    # -- pagination and tags -----------------------------------------------------------------

    def _page(self, request, rows, path, tag_filter=True):
        size = _page_size(request)
        offset = request.arg("offset")
        tags = request.arg("tags")
        if tag_filter and request.has_arg("tags"):
            wanted = _parse_tags(tags)
            rows = [row for row in rows if _tags_match(row.get("tags") or [], wanted)]
        rows = sorted(rows, key=lambda row: row.get("id") or row.get("entity_id"))
        start = 0
        if offset is not None:
            start = _decode_offset(offset)
        page = rows[start:start + size]
        result = {"data": page, "next": None}
        if start + size < len(rows):
            token = base64.urlsafe_b64encode(json.dumps([start + size]).encode()).decode()
            query = {"offset": token}
            if tags is not None and tag_filter:
                query["tags"] = tags
            if request.has_arg("size"):
                query["size"] = str(size)
            result["offset"] = token
            result["next"] = f"{path}?{urllib.parse.urlencode(query)}"
        return result

    # -- proxy support -----------------------------------------------------------------------

    def snapshot(self):
        """A consistent copy of what the proxy needs for one request."""
        with self._lock:
            return {name: dict(entities) for name, entities in self._data.items()}

    def next_target(self, upstream):
        """Round-robin over the upstream's targets with a weight above 0."""
        with self._lock:
            targets = sorted(
                (t for t in self._data["targets"].values()
                 if t["upstream"]["id"] == upstream["id"] and t["weight"] > 0),
                key=lambda t: t["created_at"],
            )
            if not targets:
                return None
            counter = self._round_robin.setdefault(upstream["id"], itertools.count())
            return targets[next(counter) % len(targets)]["target"]


@dataclass
class _Scope:
    """One collection as seen through a URL: all of it, or the children of one parent."""

    kong: KongSimulator
    schema: Schema
    foreign_key: str = None
    parent_id: str = None

    def contains(self, entity):
        return self.foreign_key is None or (entity.get(self.foreign_key) or {}).get("id") == self.parent_id

    def find(self, key):
        entities = self.kong._data[self.schema.name]
        if UUID_PATTERN.match(key):
            entity = entities.get(key.lower())
        else:
            if self.schema.name == "targets":
                key = _normalise_target(key, {})
            key_field = self.schema.fields.get(self.schema.endpoint_key)
            if key_field is not None and key_field.unique:
                entity = entities.get(self.kong._unique.get((self.schema.name, self.schema.endpoint_key), {}).get(key))
                return entity if entity is not None and self.contains(entity) else None
            entity = next((e for e in entities.values()
                           if self.schema.endpoint_key and e.get(self.schema.endpoint_key) == key
                           and self.contains(e)), None)
        return entity if entity is not None and self.contains(entity) else None


def _foreign_key_to(collection, referenced):
    return next(name for name, spec in SCHEMAS[collection].fields.items()
                if spec.kind == "foreign" and spec.reference == referenced)


def _normalise_target(target, errors):
    """host[:port] with the port defaulting to 8000, as Kong stores targets."""
    host, _, port = target.rpartition(":") if ":" in target else (target, "", "8000")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        errors["target"] = "Invalid target; not a valid hostname or ip address"
        return target
    return f"{host}:{int(port)}"


def _hash_password(password, consumer_id):
    return hashlib.sha1((password + consumer_id).encode()).hexdigest()


def _page_size(request):
    if not request.has_arg("size"):
        return DEFAULT_PAGE_SIZE
    text = request.arg("size")
    try:
        size = int(text)
    except (TypeError, ValueError):
        raise _kong_error(400, 9, "invalid size", "size must be a number") from None
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise _kong_error(400, 9, "invalid size", f"size must be an integer between 1 and {MAX_PAGE_SIZE}")
    return size


def _decode_offset(offset):
    try:
        (start,) = json.loads(base64.urlsafe_b64decode(offset.encode()))
        if not isinstance(start, int) or start < 0:
            raise ValueError(offset)
        return start
    except (ValueError, TypeError, binascii.Error):
        raise _kong_error(400, 7, "invalid offset",
                          f"'{offset}' is not a valid offset: bad base64 encoding") from None


def _parse_tags(text):
    """``a,b`` (all of) or ``a/b`` (any of) -> (mode, tags); code 11 errors otherwise."""
    def invalid(reason):
        return _kong_error(400, 11, "invalid options", f"invalid option (tags: {reason})",
                           options={"tags": reason})

    if not text:
        raise invalid("cannot be null")
    if "," in text and "/" in text:
        raise invalid("invalid filter syntax")
    mode, tags = ("or", text.split("/")) if "/" in text else ("and", text.split(","))
    if len(tags) > MAX_TAGS:
        raise invalid(f"cannot query more than {MAX_TAGS} tags")
    if any(not tag or _tag_error(tag) for tag in tags):
        raise invalid("invalid filter syntax")
    return mode, tags


def _tags_match(entity_tags, parsed):
    mode, tags = parsed
    test = all if mode == "and" else any
    return test(tag in entity_tags for tag in tags)


# -- the proxy -------------------------------------------------------------------------------------


class KongProxy(Simulator):
    """Kong's proxy listener (8000): routes, auth plugins, forwarding."""

    name = "kong-proxy"

    def __init__(self, kong, port=0):
        super().__init__(port)
        self.kong = kong

    def error(self, status, message):
        return json_response({"message": message}, status, content_type=JSON_UTF8)

    @route("*", r"/.*")
    def proxy(self, request):
        data = self.kong.snapshot()
        host = (request.headers.get("Host") or "").rsplit(":", 1)[0].lower()
        matched = _match_route(data, request, host)
        if matched is None:
            return self.error(404, "no Route matched with those values")
        route_entity, matched_path = matched
        service = data["services"].get((route_entity["service"] or {}).get("id"))
        if service is None or not service["enabled"]:
            return self.error(503, "no Service found with those values")
        headers = {name: value for name, value in request.headers.items() if name.lower() != "host"}
        query = dict(request.query)
        consumer_headers = _authenticate(data, route_entity, service, request, headers, query)
        headers.update(consumer_headers)

        upstream_path = _upstream_path(service["path"], request.path, matched_path,
                                       route_entity["strip_path"])
        if query:
            upstream_path += "?" + urllib.parse.urlencode(query, doseq=True)
        address, port, host_header = self._destination(data, service)
        if route_entity["preserve_host"]:
            host_header = request.headers.get("Host")
        headers["Host"] = host_header
        headers["X-Forwarded-For"] = request.client[0]
        headers["X-Forwarded-Proto"] = "http"
        headers["X-Forwarded-Host"] = host
        headers["X-Forwarded-Port"] = str(self.port)
        headers["X-Real-IP"] = request.client[0]
        return self._forward(service, address, port, request, upstream_path, headers)

    def _destination(self, data, service):
        """(address, port, Host header) for a service, through its upstream if it names one."""
        upstream = next((u for u in data["upstreams"].values() if u["name"] == service["host"]), None)
        if upstream is not None:
            target = self.kong.next_target(upstream)
            if target is None:
                raise _message(503, "failure to get a peer from the ring-balancer")
            name, port = target.rsplit(":", 1)
            port = int(port)
            host_header = upstream["host_header"] or service["host"]
        else:
            name, port, host_header = service["host"], service["port"], service["host"]
        address = self._resolve(name)
        if address is None:
            raise _message(503, "name resolution failed")
        if port not in (80, 443):
            host_header = f"{host_header}:{port}"
        return address, port, host_header

    def _resolve(self, name):
        for pattern, address in self.kong.resolve.items():
            if fnmatch.fnmatchcase(name.lower(), pattern.lower()):
                return address
        return reachable_address(name, self.kong.upstream_networks)

    def _forward(self, service, address, port, request, path, headers):
        if service["protocol"] != "http":  # the simulator speaks plain HTTP only
            raise _message(502, "An invalid response was received from the upstream server")
        started = time.monotonic()
        try:
            reply = forward(request, address, port, path, headers,
                            service["connect_timeout"] / 1000, service["read_timeout"] / 1000)
        except UpstreamError as err:
            if err.timed_out:
                raise _message(504, "The upstream server is timing out") from err
            raise _message(502, "An invalid response was received from the upstream server") from err
        reply.headers.pop("Date", None)  # our server adds its own
        reply.headers.update({
            "Via": f"1.1 kong/{KONG_VERSION}",
            "X-Kong-Upstream-Latency": str(int((time.monotonic() - started) * 1000)),
            "X-Kong-Proxy-Latency": "0",
        })
        return reply


def _match_route(data, request, host):
    """The best route for the request and the path prefix it matched (Kong's priorities)."""
    best, best_rank = None, None
    for route_entity in data["routes"].values():
        if "http" not in (route_entity["protocols"] or []):
            continue
        host_rank = _host_rank(route_entity["hosts"], host)
        if host_rank is None:
            continue
        if route_entity["methods"] and request.method not in route_entity["methods"]:
            continue
        if not _headers_match(route_entity["headers"], request.headers):
            continue
        path_match = _path_match(route_entity["paths"], request.path)
        if path_match is None:
            continue
        matched_path, is_regex = path_match
        criteria = sum(bool(route_entity[name]) for name in ("hosts", "methods", "headers", "paths"))
        rank = (criteria, host_rank, route_entity["regex_priority"] if is_regex else 0,
                len(matched_path), -route_entity["created_at"])
        if best_rank is None or rank > best_rank:
            best, best_rank = (route_entity, matched_path), rank
    return best


def _host_rank(hosts, host):
    """2 for an exact host, 1 for a wildcard, 0 when the route has no hosts; None: no match."""
    if not hosts:
        return 0
    if host in (h.lower() for h in hosts):
        return 2
    for pattern in hosts:
        pattern = pattern.lower()
        if pattern.startswith("*.") and host.endswith(pattern[1:]):
            return 1
        if pattern.endswith(".*") and host.startswith(pattern[:-1]):
            return 1
    return None


def _headers_match(wanted, headers):
    if not wanted:
        return True
    for name, values in wanted.items():
        if (headers.get(name) or "").lower() not in (value.lower() for value in values):
            return False
    return True


def _path_match(paths, request_path):
    """(matched prefix, is regex) for the longest matching route path; ("", False) if no paths."""
    if not paths:
        return "", False
    matches = []
    for path in paths:
        if path.startswith("~"):
            found = re.match(path[1:], request_path)
            if found:
                matches.append((found.group(0), True))
        elif request_path.startswith(path):
            matches.append((path, False))
    return max(matches, key=lambda match: len(match[0])) if matches else None


def _upstream_path(service_path, request_path, matched_path, strip_path):
    """Kong's path_handling v0: service path + the (possibly stripped) request path."""
    remainder = request_path[len(matched_path):] if strip_path and matched_path else request_path
    if not service_path:
        return remainder if remainder.startswith("/") else "/" + remainder
    if not remainder or remainder == "/":
        return service_path if not remainder else service_path.rstrip("/") + "/"
    if service_path.endswith("/") and remainder.startswith("/"):
        return service_path + remainder[1:]
    if not service_path.endswith("/") and not remainder.startswith("/"):
        return service_path + "/" + remainder
    return service_path + remainder


def _authenticate(data, route_entity, service, request, headers, query):
    """Run the auth plugins in force; returns the consumer headers or raises a 401."""
    plugins = [
        p for p in data["plugins"].values()
        if p["enabled"] and p["name"] in CONSUMERLESS_PLUGINS and p["consumer"] is None
        and (p["route"] or {}).get("id") in (None, route_entity["id"])
        and (p["service"] or {}).get("id") in (None, service["id"])
    ]
    # The most specific instance of each plugin wins (route+service > route > service > global).
    chosen = {}
    for plugin in plugins:
        specificity = (plugin["route"] is not None, plugin["service"] is not None)
        if plugin["name"] not in chosen or specificity > chosen[plugin["name"]][0]:
            chosen[plugin["name"]] = (specificity, plugin)
    consumer_headers = {}
    for name in ("key-auth", "basic-auth"):  # Kong's plugin priorities: 1250, then 1100
        if name in chosen:
            check = _key_auth if name == "key-auth" else _basic_auth
            consumer, credential = check(data, chosen[name][1]["config"], request, headers, query)
            consumer_headers.update({
                "X-Consumer-ID": consumer["id"],
                "X-Consumer-Username": consumer["username"] or "",
                "X-Credential-Identifier": credential,
            })
            if consumer["custom_id"]:
                consumer_headers["X-Consumer-Custom-ID"] = consumer["custom_id"]
    return consumer_headers


def _unauthorized(message, challenge):
    return Abort(json_response({"message": message}, 401,
                               {"WWW-Authenticate": challenge}, content_type=JSON_UTF8))


def _key_auth(data, config, request, headers, query):
    challenge = f'Key realm="{config.get("realm") or "kong"}"'
    key, source = None, None
    for key_name in config["key_names"]:
        if config["key_in_header"] and request.headers.get(key_name):
            key, source = request.headers.get(key_name), ("header", key_name)
            break
        if config["key_in_query"] and request.arg(key_name):
            key, source = request.arg(key_name), ("query", key_name)
            break
    if key is None:
        raise _unauthorized("No API key found in request", challenge)
    credential = next((c for c in data["keyauth_credentials"].values() if c["key"] == key), None)
    if credential is None:
        raise _unauthorized("Unauthorized", challenge)
    if config["hide_credentials"]:
        where, name = source
        target = query if where == "query" else headers
        for existing in [k for k in target if k.lower() == name.lower()]:
            del target[existing]
    return data["consumers"][credential["consumer"]["id"]], credential["id"]


def _basic_auth(data, config, request, headers, query):
    challenge = f'Basic realm="{config["realm"]}"'
    authorization = request.headers.get("Authorization") or request.headers.get("Proxy-Authorization")
    if not authorization:
        raise _unauthorized("Unauthorized", challenge)
    scheme, _, encoded = authorization.partition(" ")
    try:
        username, _, password = base64.b64decode(encoded).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise _unauthorized("Unauthorized", challenge) from None
    credential = next((c for c in data["basicauth_credentials"].values()
                       if c["username"] == username), None)
    if (scheme.lower() != "basic" or credential is None
            or credential["password"] != _hash_password(password, credential["consumer"]["id"])):
        raise _unauthorized("Unauthorized", challenge)
    if config["hide_credentials"]:
        for name in [k for k in headers if k.lower() in ("authorization", "proxy-authorization")]:
            del headers[name]
    return data["consumers"][credential["consumer"]["id"]], credential["id"]
