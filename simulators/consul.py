"""A Consul agent + catalog simulator speaking the HTTP API v1 (API reference, section 1).

One server node holds the catalog. The agent endpoints act on that node, and their changes
reach the catalog and health views at once (anti-entropy is immediate here). What is covered:

- agent: service register (upsert, checks, ``replace-existing-checks``) / deregister / list /
  get, checks list and TTL updates, ``/v1/agent/self``;
- catalog: services, service (``?tag``), register / deregister (external nodes);
- health: service (``?passing``, ``?tag``), state;
- KV: get (``recurse``, ``keys``, ``separator``, ``raw``), put (``cas``, ``flags``,
  ``acquire``, ``release``), delete (``recurse``, ``cas``);
- sessions: create / destroy / renew / info / list, TTLs, lock delay and ``Behavior``;
- ACL (with ``master_token``): policies (list, read, create, update), roles (create) and
  tokens (create, update, read self; policy and role links, service and node identities), the
  management token seeded as ACL bootstrapping leaves it; rules are stored, not parsed, and
  enforced for nothing but the management token;
- blocking queries (``index`` + ``wait``, ``hash`` on the agent service), ``X-Consul-*``
  headers, ACL token checks, 405 with ``Allow``, plain-text errors.

Health checks are not executed: a check keeps the status it was registered with (see
``initial_check_status``) until a TTL update, a TTL expiry or :meth:`set_check_status`.
Time-based rules (TTLs, lock delay, DeregisterCriticalServiceAfter) read ``clock``, which tests
may replace; blocking queries wait in real time.
"""

import base64
import datetime
import hashlib
import json
import re
import threading
import time
import uuid

from simulators.base import (
    Abort,
    BodyError,
    Response,
    Simulator,
    collector_paused,
    empty_response,
    parse_duration,
    route,
    text_response,
)

PASSING, WARNING, CRITICAL = "passing", "warning", "critical"
CHECK_STATUSES = (PASSING, WARNING, CRITICAL)
SERF_CHECK_ID = "serfHealth"
MAX_KV_VALUE = 512 * 1024
DEFAULT_WAIT, MAX_WAIT = 300.0, 600.0
SESSION_TTL_MIN, SESSION_TTL_MAX = 10.0, 86400.0
DEFAULT_LOCK_DELAY = 15.0
UNKNOWN_PATH = "Invalid URL path: not a recognized HTTP API endpoint"

# Go's JSON decoding matches field names case-insensitively and Consul also accepts snake_case:
# both reduce to this key (lower case, no underscores).
SERVICE_FIELDS = (
    "ID Name Tags Address TaggedAddresses Meta Port Kind Proxy Connect Check Checks "
    "EnableTagOverride Weights"
).split()
CHECK_FIELDS = (
    "CheckID ID Name Notes Status ServiceID HTTP Method Header Body TLSSkipVerify TCP Args Script "
    "GRPC GRPCUseTLS AliasService AliasNode DockerContainerID Shell Interval Timeout TTL "
    "DeregisterCriticalServiceAfter Definition Output"
).split()
CATALOG_REGISTER_FIELDS = (
    "ID Node Address Datacenter TaggedAddresses NodeMeta Service Check Checks SkipNodeUpdate"
).split()
SESSION_FIELDS = "Name Node Checks NodeChecks ServiceChecks LockDelay Behavior TTL".split()
ACL_POLICY_FIELDS = ("ID", "Name", "Description", "Rules", "Datacenters")
ACL_TOKEN_FIELDS = ("AccessorID", "SecretID", "Description", "Policies", "Roles",
                    "ServiceIdentities", "NodeIdentities", "Local")
ACL_ROLE_FIELDS = ("ID", "Name", "Description", "Policies", "ServiceIdentities", "NodeIdentities")
ACL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
GLOBAL_MANAGEMENT_ID = "00000000-0000-0000-0000-000000000001"
# Check kinds that are run periodically and so need an Interval.
INTERVAL_CHECK_FIELDS = ("HTTP", "TCP", "Args", "Script", "GRPC", "DockerContainerID")
META_KEY = re.compile(r"^[a-zA-Z0-9_-]+$")


def _fold(name):
    return name.replace("_", "").lower()


def _canonical(body, fields, what):
    """``body`` with its keys spelled as ``fields`` (unknown keys dropped, as Consul does)."""
    if not isinstance(body, dict):
        raise Abort(_decode_error(f"expected a JSON object for {what}"))
    by_fold = {_fold(name): name for name in fields}
    return {by_fold[_fold(key)]: value for key, value in body.items() if _fold(key) in by_fold}


def _decode_error(reason):
    return _error(400, f"Request decode failed: {reason}")


def _error(status, message):
    return text_response(message, status)


class _Store:
    """All server data; guarded by the simulator's condition variable."""

    def __init__(self):
        self.raft_index = 0
        # Index of the last write per table; blocking queries watch these.
        self.table_index = {"catalog": 0, "kvs": 0, "sessions": 0, "acl": 0}
        self.nodes = {}  # node name -> node dict (wire shape)
        self.services = {}  # (node, service id) -> service dict (agent wire shape + indexes)
        self.checks = {}  # (node, check id) -> _Check
        self.kv = {}  # key -> entry dict (wire shape, value as bytes under "Value")
        self.sessions = {}  # id -> session dict (wire shape) + "_expires"
        self.lock_delays = {}  # key -> clock time before which it cannot be acquired
        self.acl_policies = {}  # id -> policy (wire shape)
        self.acl_tokens = {}  # accessor id -> token (wire shape)
        self.acl_roles = {}  # id -> role (wire shape)

    def bump(self, table):
        self.raft_index += 1
        self.table_index[table] = self.raft_index
        return self.raft_index


class _Check:
    """One health check: its wire fields plus the timers the simulator tracks."""

    def __init__(self, wire, ttl=None, deregister_after=None):
        self.wire = wire
        self.ttl = ttl
        self.deregister_after = deregister_after
        self.ttl_deadline = None
        self.critical_since = None


class ConsulSimulator(Simulator):
    name = "consul"

    def __init__(
        self,
        port=0,
        master_token=None,
        deregister_unknown_ok=False,
        initial_check_status=CRITICAL,
        datacenter="dc1",
        node_name="consul-sim",
        clock=time.monotonic,
    ):
        """
        :param master_token: enables ACLs (default policy deny) with this one management token.
        :param deregister_unknown_ok: the 0.6-era profile, where deregistering an unknown
            service ID is a silent 200, instead of today's 404.
        :param initial_check_status: status of a new check registered without ``Status``
            (Consul uses critical; a sandbox whose checks are never run may prefer passing).
        """
        super().__init__(port)
        if initial_check_status not in CHECK_STATUSES:
            raise ValueError(f"initial_check_status must be one of {CHECK_STATUSES}")
        self.token = master_token
        self.deregister_unknown_ok = deregister_unknown_ok
        self.initial_check_status = initial_check_status
        self.datacenter = datacenter
        self.node_name = node_name
        self.node_id = str(uuid.uuid4())
        self._clock = clock
        self._changed = threading.Condition()
        self._store = None
        self._reset_store()

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--master-token", help="enable ACLs with this management token")
        parser.add_argument(
            "--deregister-unknown-ok",
            action="store_true",
            help="answer 200 (not 404) when deregistering an unknown service ID",
        )
        parser.add_argument(
            "--initial-check-status",
            choices=CHECK_STATUSES,
            default=CRITICAL,
            help="status of new checks registered without one (checks are never run)",
        )

    def reset(self):
        super().reset()
        with self._changed:
            self._reset_store()
            self._changed.notify_all()

    def _reset_store(self):
        store = _Store()
        # Indexes never go backwards, so watchers from before a reset still see news after it.
        store.raft_index = self._store.raft_index if self._store else 0
        store.nodes[self.node_name] = {
            "ID": self.node_id,
            "Node": self.node_name,
            "Address": "127.0.0.1",
            "Datacenter": self.datacenter,
            "TaggedAddresses": {"lan": "127.0.0.1", "wan": "127.0.0.1"},
            "Meta": {"consul-network-segment": ""},
        }
        store.bump("catalog")
        index = store.raft_index
        # A real server always lists itself as the "consul" service, with its Serf check.
        store.services[(self.node_name, "consul")] = self._service_record(
            {"ID": "consul", "Service": "consul", "Tags": [], "Meta": {}, "Port": 8300,
             "Address": "", "Weights": {"Passing": 1, "Warning": 1}, "EnableTagOverride": False},
            index,
        )
        store.checks[(self.node_name, SERF_CHECK_ID)] = _Check(
            self._check_wire(SERF_CHECK_ID, "Serf Health Status", PASSING, index=index,
                             output="Agent alive and reachable")
        )
        if self.token is not None:
            # What ACL bootstrapping leaves: the built-in policy and the management token.
            store.acl_policies[GLOBAL_MANAGEMENT_ID] = {
                "ID": GLOBAL_MANAGEMENT_ID, "Name": "global-management",
                "Description": "Builtin Policy that grants unlimited access", "Rules": "",
                "Datacenters": None, "Hash": "", "CreateIndex": index, "ModifyIndex": index,
            }
            accessor = str(uuid.uuid4())
            store.acl_tokens[accessor] = {
                "AccessorID": accessor, "SecretID": self.token,
                "Description": "Initial Management Token",
                "Policies": [{"ID": GLOBAL_MANAGEMENT_ID, "Name": "global-management"}],
                "Local": False, "CreateTime": _now_rfc3339(), "Hash": "",
                "CreateIndex": index, "ModifyIndex": index,
            }
        self._store = store

    # -- test hooks ------------------------------------------------------------------------------

    def set_check_status(self, check_id, status, output=""):
        """Set a check's status as if the agent had just run it."""
        with self._changed:
            check = self._store.checks[(self.node_name, check_id)]
            self._update_check(check, status, output)

    # -- generic plumbing -----------------------------------------------------------------------

    def error(self, status, message):
        return _error(status, message)

    def not_found(self, request):
        if request.path.startswith("/v1/"):
            return _error(404, UNKNOWN_PATH)
        return _error(404, "404 page not found")

    def method_not_allowed(self, request, allowed):
        # Consul lists OPTIONS first, then the endpoint's methods in the order it declares them.
        methods = ["OPTIONS", *sorted(allowed, key=lambda method: ("GET", "PUT", "POST", "DELETE").index(method))]
        return text_response(f"method {request.method} not allowed", 405, {"Allow": ",".join(methods)})

    def handle(self, request):
        response = super().handle(request)
        response.headers["X-Consul-Default-Acl-Policy"] = "deny" if self.token else "allow"
        return response

    def _authorize(self, request, filtered=False):
        """Check the request's token. Returns True when a list read must come back empty.

        With ACLs on (default deny), only the management token may do anything; an anonymous
        list read is answered, filtered down to nothing, like Consul's ACL filtering.
        """
        if self.token is None:
            return False
        token = (
            request.headers.get("X-Consul-Token")
            or _bearer(request.headers.get("Authorization"))
            or request.arg("token")
        )
        if token == self.token:
            return False
        if token:
            raise Abort(_error(403, "ACL not found"))
        if filtered:
            return True
        raise Abort(_error(403, "Permission denied"))

    def _check_datacenter(self, request):
        dc = request.arg("dc")
        if dc and dc != self.datacenter:
            raise Abort(_error(500, "No path to datacenter"))

    def _json(self, request, data, status=200, index=None, headers=None):
        indent = 4 if request.has_arg("pretty") else None
        separators = None if indent else (",", ":")
        body = json.dumps(data, indent=indent, separators=separators).encode()
        headers = {"Content-Type": "application/json", **(headers or {})}
        if index is not None:
            headers.update(_index_headers(index))
        return Response(status, body, headers)

    def _body(self, request, fields, what):
        try:
            body = request.json()
        except BodyError as err:
            raise Abort(_decode_error(str(err))) from err
        return {} if body is None else _canonical(body, fields, what)

    def _blocking(self, request, read):
        """Run ``read() -> (result, index)`` as a blocking query (``?index`` + ``?wait``).

        ``read`` runs under the lock. Returns once the index moved past the one the client
        sent, or when the wait ran out (the same data again, as Consul does).
        """
        try:
            min_index = int(request.arg("index") or 0)
        except ValueError:
            raise Abort(_error(400, "Invalid index")) from None
        result, index = self._wait_for(request, read, lambda index: index > min_index, min_index)
        return result, max(index, 1)

    def _wait_for(self, request, read, is_news, blocking):
        """Call ``read() -> (result, marker)`` until ``is_news(marker)`` or ``?wait`` runs out.

        A falsy ``blocking`` (no index or hash sent) answers at once.
        """
        try:
            wait = parse_duration(request.arg("wait")) if request.arg("wait") else DEFAULT_WAIT
        except ValueError:
            raise Abort(_error(400, "Invalid wait time")) from None
        deadline = time.monotonic() + min(wait, MAX_WAIT)
        with self._changed:
            while True:
                self._expire()
                result, marker = read()
                remaining = deadline - time.monotonic()
                if not blocking or is_news(marker) or remaining <= 0:
                    return result, marker
                self._changed.wait(min(remaining, self._next_timer_in()))

    def _commit(self, table):
        """Record a write to ``table`` (caller holds the lock) and wake blocking queries."""
        index = self._store.bump(table)
        self._changed.notify_all()
        return index

    # -- timers: TTL checks, critical-service reaping, session TTLs --------------------------

    def _expire(self):
        """Apply every timer that ran out (caller holds the lock)."""
        now = self._clock()
        for check in list(self._store.checks.values()):
            if check.ttl_deadline is not None and now >= check.ttl_deadline:
                check.ttl_deadline = None
                self._update_check(check, CRITICAL, "TTL expired")
        for check in list(self._store.checks.values()):
            since, after = check.critical_since, check.deregister_after
            if since is not None and after is not None and now - since >= after:
                self._remove_service(self.node_name, check.wire["ServiceID"])
        for session in list(self._store.sessions.values()):
            if session["_expires"] is not None and now >= session["_expires"]:
                self._destroy_session(session["ID"])

    def _next_timer_in(self):
        """Seconds until the next timer runs out (how long a blocking query may sleep)."""
        now = self._clock()
        deadlines = [c.ttl_deadline for c in self._store.checks.values() if c.ttl_deadline]
        deadlines += [
            c.critical_since + c.deregister_after
            for c in self._store.checks.values()
            if c.critical_since is not None and c.deregister_after is not None
        ]
        deadlines += [s["_expires"] for s in self._store.sessions.values() if s["_expires"]]
        # A replaced clock does not advance by itself: poll so that tests moving it are seen.
        return max(0.0, min(deadlines) - now) if deadlines else 1.0

    def _update_check(self, check, status, output):
        wire = check.wire
        if (wire["Status"], wire["Output"]) == (status, output):
            return
        if status == CRITICAL and check.critical_since is None:
            check.critical_since = self._clock()
        elif status != CRITICAL:
            check.critical_since = None
        wire["Status"], wire["Output"] = status, output
        wire["ModifyIndex"] = self._commit("catalog")

    # -- shapes ---------------------------------------------------------------------------------

    def _service_record(self, service, index):
        return {**service, "Datacenter": self.datacenter, "CreateIndex": index, "ModifyIndex": index}

    def _check_wire(self, check_id, name, status, *, index, service=None, output="", notes="",
                    type_="", definition=None, node=None):
        return {
            "Node": node or self.node_name,
            "CheckID": check_id,
            "Name": name,
            "Status": status,
            "Notes": notes,
            "Output": output,
            "ServiceID": service["ID"] if service else "",
            "ServiceName": service["Service"] if service else "",
            "ServiceTags": list(service["Tags"]) if service else [],
            "Type": type_,
            "Definition": definition or {},
            "CreateIndex": index,
            "ModifyIndex": index,
        }

    @staticmethod
    def _agent_view(service):
        return {key: value for key, value in service.items() if key not in ("CreateIndex", "ModifyIndex")}

    def _catalog_entry(self, node, service):
        return {
            "ID": node["ID"],
            "Node": node["Node"],
            "Address": node["Address"],
            "Datacenter": node["Datacenter"],
            "TaggedAddresses": node["TaggedAddresses"],
            "NodeMeta": node["Meta"],
            "ServiceID": service["ID"],
            "ServiceName": service["Service"],
            "ServiceTags": list(service["Tags"]),
            "ServiceAddress": service["Address"],
            "ServicePort": service["Port"],
            "ServiceMeta": service["Meta"],
            "ServiceWeights": service["Weights"],
            "ServiceEnableTagOverride": service["EnableTagOverride"],
            "ServiceKind": service.get("Kind", ""),
            "ServiceProxy": service.get("Proxy", {}),
            "ServiceConnect": service.get("Connect", {}),
            "CreateIndex": service["CreateIndex"],
            "ModifyIndex": service["ModifyIndex"],
        }

    def _instances(self, name, tags):
        """(node, service) pairs of service ``name`` carrying every tag in ``tags``."""
        return [
            (self._store.nodes[node], service)
            for (node, _), service in sorted(self._store.services.items())
            if service["Service"] == name and all(tag in service["Tags"] for tag in tags)
        ]

    # -- agent: services ------------------------------------------------------------------------

    @route("PUT", r"/v1/agent/service/register")
    def agent_service_register(self, request):
        self._authorize(request)
        body = self._body(request, SERVICE_FIELDS, "the service definition")
        service, checks = self._parse_service(body)
        replace_checks = request.has_arg("replace-existing-checks") and request.arg(
            "replace-existing-checks"
        ) in ("", "true", "1")
        with self._changed:
            self._register_service(service, checks, replace_checks)
        return empty_response(200)

    def _parse_service(self, body):
        name = body.get("Name")
        if not isinstance(name, (str, type(None))):
            raise Abort(_decode_error("Name: expected a string"))
        if not name:
            raise Abort(_error(400, "Missing service name"))
        service_id = body.get("ID") or name
        address = body.get("Address") or ""
        port = body.get("Port", 0)
        tags = body.get("Tags") or []
        for key, value, valid in (
            ("ID", service_id, isinstance(service_id, str)),
            ("Address", address, isinstance(address, str)),
            ("Port", port, isinstance(port, int) and not isinstance(port, bool)),
            ("Tags", tags, isinstance(tags, list) and all(isinstance(t, str) for t in tags)),
        ):
            if not valid:
                raise Abort(_decode_error(f"{key}: unexpected value {json.dumps(value)}"))
        if address in ("0.0.0.0", "::", "[::]"):
            raise Abort(_error(400, "Invalid service address"))
        meta = body.get("Meta") or {}
        _validate_meta(meta)
        weights = {"Passing": 1, "Warning": 1, **(body.get("Weights") or {})}
        if not isinstance(weights["Passing"], int) or weights["Passing"] < 1:
            raise Abort(_error(400, "Invalid Weights: Passing must be greater than 0"))
        if not isinstance(weights["Warning"], int) or weights["Warning"] < 0:
            raise Abort(_error(400, "Invalid Weights: Warning must be greater or equal than 0"))
        service = {
            "ID": service_id,
            "Service": name,
            "Tags": tags,
            "Meta": meta,
            "Port": port,
            "Address": address,
            "Weights": weights,
            "EnableTagOverride": bool(body.get("EnableTagOverride", False)),
        }
        for optional in ("Kind", "Proxy", "Connect", "TaggedAddresses"):
            if body.get(optional):
                service[optional] = body[optional]
        definitions = ([body["Check"]] if body.get("Check") else []) + list(body.get("Checks") or [])
        checks = [
            self._parse_check(definition, service, position, len(definitions))
            for position, definition in enumerate(definitions, start=1)
        ]
        return service, checks

    def _parse_check(self, definition, service, position, count):
        check = _canonical(definition, CHECK_FIELDS, "a check")
        status = check.get("Status") or ""
        if status not in ("",) + CHECK_STATUSES:
            raise Abort(_error(400, "Status for checks must 'passing', 'warning', 'critical'"))
        interval = _check_duration(check, "Interval")
        ttl = _check_duration(check, "TTL")
        deregister_after = _check_duration(check, "DeregisterCriticalServiceAfter")
        kind = next((field for field in INTERVAL_CHECK_FIELDS if check.get(field)), None)
        if interval and ttl:
            raise Abort(_error(400, "Invalid check: Interval and TTL cannot both be specified"))
        if kind and not interval:
            raise Abort(
                _error(400, "Invalid check: Interval must be > 0 for Script, HTTP, TCP or GRPC checks")
            )
        if not kind and not ttl:
            raise Abort(_error(400, "Invalid check: TTL must be > 0 for TTL checks"))
        suffix = f":{position}" if count > 1 else ""
        check_id = check.get("CheckID") or check.get("ID") or f"service:{service['ID']}{suffix}"
        name = check.get("Name") or f"Service '{service['Service']}' check"
        definition = {
            field: check[field]
            for field in ("HTTP", "Method", "Header", "TCP", "Args", "Interval", "Timeout", "TTL",
                          "DeregisterCriticalServiceAfter")
            if check.get(field)
        }
        wire = self._check_wire(
            check_id, name, status, index=0, service=service, notes=check.get("Notes") or "",
            type_=(kind or "ttl").lower(), definition=definition,
        )
        if deregister_after is not None:
            deregister_after = max(deregister_after, 60.0)  # Consul's floor
        return _Check(wire, ttl=ttl, deregister_after=deregister_after)

    def _register_service(self, service, checks, replace_checks):
        store, node = self._store, self.node_name
        index = self._commit("catalog")
        previous = store.services.get((node, service["ID"]))
        record = self._service_record(service, index)
        if previous is not None:
            record["CreateIndex"] = previous["CreateIndex"]
        store.services[(node, service["ID"])] = record
        new_ids = {check.wire["CheckID"] for check in checks}
        for (check_node, check_id), check in list(store.checks.items()):
            if check_node != node or check.wire["ServiceID"] != service["ID"]:
                continue
            if replace_checks and check_id not in new_ids:
                del store.checks[(node, check_id)]
            else:  # the service's tags are denormalised into its checks
                check.wire["ServiceTags"] = list(service["Tags"])
        now = self._clock()
        for check in checks:
            existing = store.checks.get((node, check.wire["CheckID"]))
            if existing is not None:  # an existing check keeps its last result
                check.wire["Status"] = existing.wire["Status"]
                check.wire["Output"] = existing.wire["Output"]
                check.wire["CreateIndex"] = existing.wire["CreateIndex"]
                check.critical_since = existing.critical_since
            else:
                check.wire["Status"] = check.wire["Status"] or self.initial_check_status
                check.wire["CreateIndex"] = index
                check.critical_since = now if check.wire["Status"] == CRITICAL else None
            check.wire["ModifyIndex"] = index
            if check.ttl:
                check.ttl_deadline = now + check.ttl
            store.checks[(node, check.wire["CheckID"])] = check

    def _remove_service(self, node, service_id):
        """Drop a service and its checks; False when there was no such service."""
        if self._store.services.pop((node, service_id), None) is None:
            return False
        for key, check in list(self._store.checks.items()):
            if key[0] == node and check.wire["ServiceID"] == service_id:
                del self._store.checks[key]
        self._commit("catalog")
        return True

    @route("PUT", r"/v1/agent/service/deregister/(?P<service_id>.+)")
    def agent_service_deregister(self, request, service_id):
        self._authorize(request)
        with self._changed:
            removed = self._remove_service(self.node_name, service_id)
        if not removed and not self.deregister_unknown_ok:
            return _error(
                404,
                f'Unknown service ID "{service_id}". Ensure that the service ID is passed, '
                "not the service name.",
            )
        return empty_response(200)

    @route("GET", r"/v1/agent/services")
    def agent_services(self, request):
        filtered = self._authorize(request, filtered=True)
        with collector_paused():
            with self._changed:
                self._expire()
                services = {
                    service_id: self._agent_view(service)
                    for (node, service_id), service in sorted(self._store.services.items())
                    if node == self.node_name and service_id != "consul"
                }
            return self._json(request, {} if filtered else services)

    @route("GET", r"/v1/agent/service/(?P<service_id>.+)")
    def agent_service(self, request, service_id):
        self._authorize(request)
        wanted_hash = request.arg("hash")

        def read():
            service = self._store.services.get((self.node_name, service_id))
            if service is None:
                raise Abort(_error(404, f"unknown service ID: {service_id}"))
            view = self._agent_view(service)
            content_hash = hashlib.sha256(json.dumps(view, sort_keys=True).encode()).hexdigest()[:16]
            return {**view, "ContentHash": content_hash}, content_hash

        view, content_hash = self._wait_for(
            request, read, lambda content_hash: content_hash != wanted_hash, wanted_hash
        )
        return self._json(request, view, headers={"X-Consul-ContentHash": content_hash})

    # -- agent: checks ---------------------------------------------------------------------------

    @route("GET", r"/v1/agent/checks")
    def agent_checks(self, request):
        filtered = self._authorize(request, filtered=True)
        with self._changed:
            self._expire()
            checks = {
                check_id: {k: v for k, v in check.wire.items() if not k.endswith("Index")}
                for (node, check_id), check in sorted(self._store.checks.items())
                if node == self.node_name and check_id != SERF_CHECK_ID
            }
        return self._json(request, {} if filtered else checks)

    @route("PUT", r"/v1/agent/check/(?P<verb>pass|warn|fail)/(?P<check_id>.+)")
    def agent_check_ttl(self, request, verb, check_id):
        status = {"pass": PASSING, "warn": WARNING, "fail": CRITICAL}[verb]
        return self._ttl_update(request, check_id, status, request.arg("note", ""))

    @route("PUT", r"/v1/agent/check/update/(?P<check_id>.+)")
    def agent_check_update(self, request, check_id):
        body = self._body(request, ("Status", "Output"), "the check update")
        status = body.get("Status")
        if status not in CHECK_STATUSES:
            return _error(400, f'Invalid check status: "{status}"')
        return self._ttl_update(request, check_id, status, body.get("Output") or "")

    def _ttl_update(self, request, check_id, status, output):
        self._authorize(request)
        with self._changed:
            check = self._store.checks.get((self.node_name, check_id))
            if check is None:
                return _error(
                    404,
                    f'Unknown check ID "{check_id}". Ensure that the check ID is passed, '
                    "not the check name.",
                )
            if not check.ttl:
                return _error(500, f'CheckID "{check_id}" does not have associated TTL')
            check.ttl_deadline = self._clock() + check.ttl
            self._update_check(check, status, output)
        return empty_response(200)

    @route("GET", r"/v1/agent/self")
    def agent_self(self, request):
        self._authorize(request)
        return self._json(
            request,
            {
                "Config": {"Datacenter": self.datacenter, "NodeName": self.node_name,
                           "NodeID": self.node_id, "Server": True, "Version": "1.20.0"},
                "Member": {"Name": self.node_name, "Addr": "127.0.0.1", "Port": 8301, "Status": 1},
            },
        )

    @route("GET", r"/v1/status/leader")
    def status_leader(self, request):
        return self._json(request, "127.0.0.1:8300")

    @route("GET", r"/v1/status/peers")
    def status_peers(self, request):
        return self._json(request, ["127.0.0.1:8300"])

    # -- catalog --------------------------------------------------------------------------------

    @route("GET", r"/v1/catalog/services")
    def catalog_services(self, request):
        filtered = self._authorize(request, filtered=True)
        self._check_datacenter(request)

        def read():
            names = {}
            for service in self._store.services.values():
                tags = names.setdefault(service["Service"], [])
                tags.extend(tag for tag in service["Tags"] if tag not in tags)
            return names, self._store.table_index["catalog"]

        names, index = self._blocking(request, read)
        return self._json(request, {} if filtered else names, index=index)

    @route("GET", r"/v1/catalog/service/(?P<name>.+)")
    def catalog_service(self, request, name):
        filtered = self._authorize(request, filtered=True)
        self._check_datacenter(request)
        tags = request.query.get("tag", [])

        def read():
            entries = [self._catalog_entry(node, svc) for node, svc in self._instances(name, tags)]
            return entries, self._store.table_index["catalog"]

        entries, index = self._blocking(request, read)
        return self._json(request, [] if filtered else entries, index=index)

    @route("GET", r"/v1/health/service/(?P<name>.+)")
    def health_service(self, request, name):
        filtered = self._authorize(request, filtered=True)
        self._check_datacenter(request)
        tags = request.query.get("tag", [])
        passing_only = request.has_arg("passing") and _parse_bool(
            request.arg("passing") or "true", "Invalid value for ?passing"
        )

        def read():
            entries = []
            for node, service in self._instances(name, tags):
                checks = [
                    dict(check.wire)
                    for (check_node, _), check in sorted(self._store.checks.items())
                    if check_node == node["Node"] and check.wire["ServiceID"] in ("", service["ID"])
                ]
                if passing_only and any(check["Status"] != PASSING for check in checks):
                    continue
                entries.append({
                    "Node": {key: node[key] for key in ("ID", "Node", "Address", "Datacenter",
                                                        "TaggedAddresses", "Meta")},
                    "Service": dict(service),
                    "Checks": checks,
                })
            return entries, self._store.table_index["catalog"]

        entries, index = self._blocking(request, read)
        return self._json(request, [] if filtered else entries, index=index)

    @route("GET", r"/v1/health/state/(?P<state>[^/]+)")
    def health_state(self, request, state):
        filtered = self._authorize(request, filtered=True)
        if state not in ("any",) + CHECK_STATUSES:
            return _error(400, "Invalid check state")

        def read():
            checks = [
                dict(check.wire)
                for _, check in sorted(self._store.checks.items())
                if state == "any" or check.wire["Status"] == state
            ]
            return checks, self._store.table_index["catalog"]

        checks, index = self._blocking(request, read)
        return self._json(request, [] if filtered else checks, index=index)

    @route("PUT", r"/v1/catalog/register")
    def catalog_register(self, request):
        self._authorize(request)
        body = self._body(request, CATALOG_REGISTER_FIELDS, "the registration")
        node_name = body.get("Node")
        if not node_name:
            return _error(500, "Must provide node")
        with self._changed:
            node = self._store.nodes.get(node_name)
            if not body.get("SkipNodeUpdate") or node is None:
                if not body.get("Address"):
                    return _error(500, "Must provide address if SkipNodeUpdate is not set")
                node = {
                    "ID": body.get("ID") or (node or {}).get("ID") or str(uuid.uuid4()),
                    "Node": node_name,
                    "Address": body["Address"],
                    "Datacenter": self.datacenter,
                    "TaggedAddresses": body.get("TaggedAddresses") or {},
                    "Meta": body.get("NodeMeta") or {},
                }
            service = None
            if body.get("Service"):
                service = self._parse_catalog_service(body["Service"])
            index = self._commit("catalog")
            self._store.nodes[node_name] = node
            if service is not None:
                previous = self._store.services.get((node_name, service["ID"]))
                record = self._service_record(service, index)
                if previous is not None:
                    record["CreateIndex"] = previous["CreateIndex"]
                self._store.services[(node_name, service["ID"])] = record
            checks = ([body["Check"]] if body.get("Check") else []) + list(body.get("Checks") or [])
            for definition in checks:
                self._register_catalog_check(node_name, definition, index)
        return self._json(request, True)

    def _parse_catalog_service(self, definition):
        service = _canonical(definition, ("ID", "Service", "Tags", "Address", "Port", "Meta",
                                          "Weights", "EnableTagOverride"), "the service")
        if not service.get("Service"):
            raise Abort(_error(500, "Must provide service name"))
        if service.get("Address") in ("0.0.0.0", "::", "[::]"):
            raise Abort(_error(500, "Invalid service address"))
        return {
            "ID": service.get("ID") or service["Service"],
            "Service": service["Service"],
            "Tags": service.get("Tags") or [],
            "Meta": service.get("Meta") or {},
            "Port": service.get("Port") or 0,
            "Address": service.get("Address") or "",
            "Weights": service.get("Weights") or {"Passing": 1, "Warning": 1},
            "EnableTagOverride": bool(service.get("EnableTagOverride")),
        }

    def _register_catalog_check(self, node_name, definition, index):
        check = _canonical(definition, ("CheckID", "Name", "Status", "Notes", "Output", "ServiceID",
                                        "Definition"), "a check")
        check_id = check.get("CheckID") or check.get("Name")
        if not check_id:
            raise Abort(_error(500, "Missing check ID"))
        status = check.get("Status") or CRITICAL
        if status not in CHECK_STATUSES:
            raise Abort(_error(500, "Status for checks must 'passing', 'warning', 'critical'"))
        service_id = check.get("ServiceID") or ""
        service = self._store.services.get((node_name, service_id)) if service_id else None
        if service_id and service is None:
            raise Abort(_error(500, f'Unknown service ID "{service_id}" for check ID "{check_id}"'))
        wire = self._check_wire(
            check_id, check.get("Name") or check_id, status, index=index, service=service,
            output=check.get("Output") or "", notes=check.get("Notes") or "",
            definition=check.get("Definition"), node=node_name,
        )
        self._store.checks[(node_name, check_id)] = _Check(wire)

    @route("PUT", r"/v1/catalog/deregister")
    def catalog_deregister(self, request):
        self._authorize(request)
        body = self._body(request, ("Node", "Datacenter", "ServiceID", "CheckID"), "the request")
        node_name = body.get("Node")
        if not node_name:
            return _error(500, "Must provide node")
        with self._changed:
            store = self._store
            if body.get("ServiceID"):
                self._remove_service(node_name, body["ServiceID"])
            elif body.get("CheckID"):
                if store.checks.pop((node_name, body["CheckID"]), None) is not None:
                    self._commit("catalog")
            elif store.nodes.pop(node_name, None) is not None:
                for key in [key for key in store.services if key[0] == node_name]:
                    del store.services[key]
                for key in [key for key in store.checks if key[0] == node_name]:
                    del store.checks[key]
                self._commit("catalog")
        return self._json(request, True)

    # -- KV ---------------------------------------------------------------------------------------

    @route("GET", r"/v1/kv/(?P<key>.*)")
    def kv_get(self, request, key):
        self._authorize(request)
        recurse = request.has_arg("recurse") or request.has_arg("keys")

        def read():
            kv = self._store.kv
            if recurse:
                entries = [kv[name] for name in sorted(kv) if name.startswith(key)]
                return entries, self._store.table_index["kvs"]
            entry = kv.get(key)
            if entry is None:
                return [], self._store.table_index["kvs"]
            return [entry], entry["ModifyIndex"]

        entries, index = self._blocking(request, read)
        if not entries:
            return empty_response(404, _index_headers(index))
        if request.has_arg("keys"):
            return self._json(request, _list_keys(entries, key, request.arg("separator")), index=index)
        if request.has_arg("raw"):
            return Response(200, entries[0]["Value"], {"Content-Type": "text/plain; charset=utf-8",
                                                       **_index_headers(index)})
        return self._json(request, [_kv_wire(entry) for entry in entries], index=index)

    @route("PUT", r"/v1/kv/(?P<key>.*)")
    def kv_put(self, request, key):
        self._authorize(request)
        if not key:
            return _error(400, "Missing key name")
        if len(request.body) > MAX_KV_VALUE:
            return _error(
                413,
                f"Request body({len(request.body)} bytes) too large, max size: {MAX_KV_VALUE} bytes.",
            )
        flags = _int_arg(request, "flags", "Invalid flags")
        cas = _int_arg(request, "cas", "Invalid cas index") if request.has_arg("cas") else None
        acquire, release = request.arg("acquire"), request.arg("release")
        if acquire and release:
            return _error(400, "Conflicting flags: acquire and release")
        with self._changed:
            self._expire()
            entry = self._store.kv.get(key)
            if cas is not None and (entry["ModifyIndex"] if entry else 0) != cas:
                return self._json(request, False)
            if acquire:
                return self._json(request, self._acquire(key, entry, acquire, request.body, flags))
            if release:
                return self._json(request, self._release(key, entry, release, request.body, flags))
            self._write_kv(key, entry, request.body, flags)
        return self._json(request, True)

    def _write_kv(self, key, entry, value, flags, session=None, lock_index=None):
        index = self._commit("kvs")
        if lock_index is None:
            lock_index = entry["LockIndex"] if entry else 0
        self._store.kv[key] = {
            "LockIndex": lock_index,
            "Key": key,
            "Flags": flags,
            "Value": value,
            "Session": session,
            "CreateIndex": entry["CreateIndex"] if entry else index,
            "ModifyIndex": index,
        }

    def _acquire(self, key, entry, session_id, value, flags):
        self._require_session(session_id)
        if entry is not None and entry["Session"] not in (None, session_id):
            return False
        if entry is not None and entry["Session"] == session_id:  # re-acquire: update only
            self._write_kv(key, entry, value, flags, session=session_id)
            return True
        if self._clock() < self._store.lock_delays.get(key, float("-inf")):
            return False
        lock_index = (entry["LockIndex"] if entry else 0) + 1
        self._write_kv(key, entry, value, flags, session=session_id, lock_index=lock_index)
        return True

    def _release(self, key, entry, session_id, value, flags):
        self._require_session(session_id)
        if entry is None or entry["Session"] != session_id:
            return False
        self._write_kv(key, entry, value, flags)
        return True

    def _require_session(self, session_id):
        if session_id not in self._store.sessions:
            raise Abort(_error(500, f'invalid session "{session_id}"'))

    @route("DELETE", r"/v1/kv/(?P<key>.*)")
    def kv_delete(self, request, key):
        self._authorize(request)
        cas = _int_arg(request, "cas", "Invalid cas index") if request.has_arg("cas") else None
        with self._changed:
            kv = self._store.kv
            if request.has_arg("recurse"):
                doomed = [name for name in kv if name.startswith(key)]
            else:
                entry = kv.get(key)
                if cas is not None and entry is not None and entry["ModifyIndex"] != cas:
                    return self._json(request, False)
                doomed = [key] if entry is not None else []
            for name in doomed:
                del kv[name]
            if doomed:
                self._commit("kvs")
        return self._json(request, True)

    # -- ACL policies and tokens (the 1.4+ API; with --master-token only) -----------------------

    def _acl_management(self, request):
        """ACL objects are read and written with the management token only."""
        if self.token is None:
            raise Abort(_error(401, "ACL support disabled"))
        self._authorize(request)

    def _acl_body(self, request, fields, kind):
        """The body of a write of a named ACL object (policy, role), its Name checked."""
        self._acl_management(request)
        body = self._body(request, fields, f"the {kind.lower()}")
        if not ACL_NAME.match(body.get("Name") or ""):
            raise Abort(_error(400, f"Invalid {kind}: invalid Name. Only alphanumeric characters, "
                                    "'-' and '_' are allowed"))
        return body

    def _acl_hash(self, data):
        return base64.b64encode(hashlib.sha256(json.dumps(data, sort_keys=True).encode()).digest()).decode()

    def _policy_links(self, links):
        return self._links(self._store.acl_policies, links, "Policy")

    def _role_links(self, links):
        return self._links(self._store.acl_roles, links, "Role")

    @staticmethod
    def _links(table, links, kind):
        """Links to ACL objects (by ID or Name) as ``[{"ID", "Name"}]``; an unknown one is
        refused."""
        resolved = []
        for link in links or []:
            found = next((entry for entry in table.values()
                          if entry["ID"] == link.get("ID") or entry["Name"] == link.get("Name")), None)
            if found is None:
                raise Abort(_error(400, f"Invalid {kind}: cannot find {kind.lower()} "
                                        f"{link.get('Name') or link.get('ID')!r}"))
            resolved.append({"ID": found["ID"], "Name": found["Name"]})
        return resolved

    @route("GET", r"/v1/acl/policies")
    def acl_policies(self, request):
        self._acl_management(request)
        with self._changed:
            stubs = [{k: v for k, v in policy.items() if k != "Rules"} for policy in self._store.acl_policies.values()]
        return self._json(request, sorted(stubs, key=lambda policy: policy["Name"]))

    @route("GET", r"/v1/acl/policy/(?P<policy_id>[^/]+)")
    def acl_policy_read(self, request, policy_id):
        self._acl_management(request)
        with self._changed:
            policy = self._store.acl_policies.get(policy_id)
        if policy is None:
            return _error(403, "ACL not found")  # Consul answers a missing ACL object so
        return self._json(request, policy)

    @route("PUT", r"/v1/acl/policy")
    @route("PUT", r"/v1/acl/policy/(?P<policy_id>[^/]+)")
    def acl_policy_write(self, request, policy_id=None):
        body = self._acl_body(request, ACL_POLICY_FIELDS, "Policy")
        name = body["Name"]
        with self._changed:
            existing = self._store.acl_policies.get(policy_id) if policy_id else None
            if policy_id and existing is None:
                return _error(400, f"Invalid Policy: Cannot find policy {policy_id}")
            if any(p["Name"] == name and p["ID"] != policy_id for p in self._store.acl_policies.values()):
                return _error(500, f'Invalid Policy: A Policy with Name "{name}" already exists')
            index = self._commit("acl")
            policy = {
                "ID": policy_id or str(uuid.uuid4()),
                "Name": name,
                "Description": body.get("Description") or "",
                "Rules": body.get("Rules") or "",
                "Datacenters": body.get("Datacenters"),
                "CreateIndex": existing["CreateIndex"] if existing else index,
                "ModifyIndex": index,
            }
            policy["Hash"] = self._acl_hash([policy["Name"], policy["Description"], policy["Rules"]])
            self._store.acl_policies[policy["ID"]] = policy
        return self._json(request, policy)

    @staticmethod
    def _identities(body):
        """Service and node identities as given; Consul leaves empty lists out (omitempty)."""
        identities = {}
        for field, required in (("ServiceIdentities", "ServiceName"), ("NodeIdentities", "NodeName")):
            entries = body.get(field) or []
            for entry in entries:
                if not ACL_NAME.match(entry.get(required) or ""):
                    raise Abort(_error(400, f"{field} must have a valid {required}"))
                if field == "NodeIdentities" and not entry.get("Datacenter"):
                    raise Abort(_error(400, "Node identity is missing the datacenter field on this token"))
            if entries:
                identities[field] = [dict(entry) for entry in entries]
        return identities

    @route("PUT", r"/v1/acl/role")
    def acl_role_create(self, request):
        body = self._acl_body(request, ACL_ROLE_FIELDS, "Role")
        name = body["Name"]
        with self._changed:
            if any(r["Name"] == name for r in self._store.acl_roles.values()):
                return _error(500, f'Invalid Role: A Role with Name "{name}" already exists')
            links = self._policy_links(body.get("Policies"))
            index = self._commit("acl")
            role = {"ID": str(uuid.uuid4()), "Name": name, "Description": body.get("Description") or "",
                    **({"Policies": links} if links else {}), **self._identities(body),
                    "CreateIndex": index, "ModifyIndex": index}
            role["Hash"] = self._acl_hash([role["Name"], role["Description"], links])
            self._store.acl_roles[role["ID"]] = role
        return self._json(request, role)

    @route("GET", r"/v1/acl/token/self")
    def acl_token_self(self, request):
        if self.token is None:
            return _error(401, "ACL support disabled")
        secret = request.headers.get("X-Consul-Token") or _bearer(request.headers.get("Authorization")) or request.arg("token")
        with self._changed:
            token = next((t for t in self._store.acl_tokens.values() if t["SecretID"] == secret), None)
        if token is None:
            return _error(403, "ACL not found")
        return self._json(request, token)

    @route("PUT", r"/v1/acl/token")
    @route("PUT", r"/v1/acl/token/(?P<accessor_id>[^/]+)")
    def acl_token_write(self, request, accessor_id=None):
        self._acl_management(request)
        body = self._body(request, ACL_TOKEN_FIELDS, "the token")
        with self._changed:
            existing = self._store.acl_tokens.get(accessor_id) if accessor_id else None
            if accessor_id and existing is None:
                return _error(400, f"Cannot find token {accessor_id}")
            secret = body.get("SecretID") or (existing["SecretID"] if existing else str(uuid.uuid4()))
            if existing and secret != existing["SecretID"]:
                return _error(400, "Changing a token's SecretID is not permitted")
            if not existing and any(t["SecretID"] == secret for t in self._store.acl_tokens.values()):
                return _error(500, "Invalid Token: SecretID is already in use")
            links = self._policy_links(body.get("Policies"))
            roles = self._role_links(body.get("Roles"))
            identities = self._identities(body)
            index = self._commit("acl")
            token = {
                "AccessorID": accessor_id or body.get("AccessorID") or str(uuid.uuid4()),
                "SecretID": secret,
                "Description": body.get("Description") or "",
                "Policies": links,
                **({"Roles": roles} if roles else {}),
                **identities,
                "Local": bool(body.get("Local")),
                "CreateTime": existing["CreateTime"] if existing else _now_rfc3339(),
                "CreateIndex": existing["CreateIndex"] if existing else index,
                "ModifyIndex": index,
            }
            token["Hash"] = self._acl_hash([token["Description"], token["Policies"], roles, identities,
                                            token["Local"]])
            self._store.acl_tokens[token["AccessorID"]] = token
        return self._json(request, token)

    # -- sessions ---------------------------------------------------------------------------------

    @route("PUT", r"/v1/session/create")
    def session_create(self, request):
        self._authorize(request)
        body = self._body(request, SESSION_FIELDS, "the session")
        behavior = body.get("Behavior") or "release"
        if behavior not in ("release", "delete"):
            return _error(400, f"Invalid Behavior setting '{behavior}'")
        ttl = body.get("TTL") or ""
        ttl_seconds = None
        if ttl:
            try:
                ttl_seconds = parse_duration(ttl)
            except ValueError as err:
                return _error(400, f"Request decode failed: {err}")
            if ttl_seconds and not SESSION_TTL_MIN <= ttl_seconds <= SESSION_TTL_MAX:
                return _error(400, f"Invalid Session TTL '{ttl}', must be between [10s=24h0m0s]")
        lock_delay = _lock_delay(body.get("LockDelay", None))
        node = body.get("Node") or self.node_name
        with self._changed:
            if node not in self._store.nodes:
                return _error(500, f'Missing node registration for "{node}"')
            index = self._commit("sessions")
            session_id = str(uuid.uuid4())
            self._store.sessions[session_id] = {
                "ID": session_id,
                "Name": body.get("Name") or "",
                "Node": node,
                "LockDelay": int(lock_delay * 1e9),
                "Behavior": behavior,
                "TTL": ttl,
                "NodeChecks": body.get("NodeChecks") or body.get("Checks") or [SERF_CHECK_ID],
                "ServiceChecks": body.get("ServiceChecks"),
                "CreateIndex": index,
                "ModifyIndex": index,
                # Consul only invalidates a session after twice its TTL.
                "_expires": self._clock() + 2 * ttl_seconds if ttl_seconds else None,
                "_ttl": ttl_seconds,
            }
        return self._json(request, {"ID": session_id})

    def _destroy_session(self, session_id):
        """Invalidate a session: its locks are released (or keys deleted) with lock delay."""
        session = self._store.sessions.pop(session_id, None)
        if session is None:
            return
        self._commit("sessions")
        delay_until = self._clock() + session["LockDelay"] / 1e9
        for key, entry in list(self._store.kv.items()):
            if entry["Session"] != session_id:
                continue
            if session["LockDelay"]:
                self._store.lock_delays[key] = delay_until
            if session["Behavior"] == "delete":
                del self._store.kv[key]
                self._commit("kvs")
            else:
                self._write_kv(key, entry, entry["Value"], entry["Flags"])

    @route("PUT", r"/v1/session/destroy/(?P<session_id>[^/]+)")
    def session_destroy(self, request, session_id):
        self._authorize(request)
        with self._changed:
            self._destroy_session(session_id)
        return self._json(request, True)

    @route("PUT", r"/v1/session/renew/(?P<session_id>[^/]+)")
    def session_renew(self, request, session_id):
        self._authorize(request)
        with self._changed:
            self._expire()
            session = self._store.sessions.get(session_id)
            if session is None:
                return _error(404, f"Session id '{session_id}' not found")
            if session["_ttl"]:
                session["_expires"] = self._clock() + 2 * session["_ttl"]
            return self._json(request, [_session_wire(session)])

    @route("GET", r"/v1/session/info/(?P<session_id>[^/]+)")
    def session_info(self, request, session_id):
        self._authorize(request)

        def read():
            session = self._store.sessions.get(session_id)
            return ([_session_wire(session)] if session else []), self._store.table_index["sessions"]

        sessions, index = self._blocking(request, read)
        return self._json(request, sessions, index=index)

    @route("GET", r"/v1/session/list")
    def session_list(self, request):
        self._authorize(request)

        def read():
            sessions = [_session_wire(s) for _, s in sorted(self._store.sessions.items())]
            return sessions, self._store.table_index["sessions"]

        sessions, index = self._blocking(request, read)
        return self._json(request, sessions, index=index)


def _now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def _bearer(authorization):
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return None


def _index_headers(index):
    return {
        "X-Consul-Index": str(max(index, 1)),
        "X-Consul-Knownleader": "true",
        "X-Consul-Lastcontact": "0",
    }


def _parse_bool(text, message):
    """Go's strconv.ParseBool."""
    if text in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if text in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise Abort(_error(400, message))


def _int_arg(request, name, message):
    try:
        return int(request.arg(name) or 0)
    except ValueError:
        raise Abort(_error(400, message)) from None


def _check_duration(check, field):
    """A check duration in seconds: a Go duration string, or a number of nanoseconds."""
    value = check.get(field)
    if value in (None, "", 0):
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = value / 1e9
    elif isinstance(value, str):
        try:
            seconds = parse_duration(value)
        except ValueError as err:
            raise Abort(_decode_error(str(err))) from None
    else:
        raise Abort(_decode_error(f"{field}: unexpected value {json.dumps(value)}"))
    return seconds if seconds > 0 else None


def _lock_delay(value):
    """Session LockDelay: a duration string, or a number (seconds if small, else nanoseconds)."""
    if value is None:
        return DEFAULT_LOCK_DELAY
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ValueError as err:
            raise Abort(_decode_error(str(err))) from None
    # Consul reads a bare number below one second's worth of nanoseconds as seconds.
    return value if value < 1e9 else value / 1e9


def _validate_meta(meta):
    if not isinstance(meta, dict):
        raise Abort(_decode_error("Meta: expected an object"))
    if len(meta) > 64:
        raise Abort(_error(
            400, "Invalid Service Meta: Node metadata cannot contain more than 64 key/value pairs"
        ))
    for key, value in meta.items():
        if not isinstance(value, str):
            raise Abort(_decode_error(f"Meta: value of {key!r} is not a string"))
        if not key:
            reason = "Key cannot be blank"
        elif not META_KEY.match(key):
            reason = f"Key contains invalid characters: {key}"
        elif len(key) > 128:
            reason = f"Key is too long (limit: 128 characters): {key}"
        elif key.startswith("consul-"):
            reason = f"Key prefix 'consul-' is reserved for internal use: {key}"
        elif len(value) > 512:
            reason = f"Value is too long (limit: 512 characters): {key}"
        else:
            continue
        raise Abort(_error(400, f"Invalid Service Meta: {reason}"))


def _kv_wire(entry):
    wire = {key: value for key, value in entry.items() if key != "Session" or value}
    wire["Value"] = base64.b64encode(entry["Value"]).decode() if entry["Value"] else None
    return wire


def _list_keys(entries, prefix, separator):
    """``?keys``: key names under ``prefix``, rolled up at ``separator`` after it."""
    keys = []
    for entry in entries:
        name = entry["Key"]
        if separator:
            cut = name.find(separator, len(prefix))
            if cut != -1:
                name = name[: cut + len(separator)]
        if name not in keys:
            keys.append(name)
    return keys


def _session_wire(session):
    return {key: value for key, value in session.items() if not key.startswith("_")}
