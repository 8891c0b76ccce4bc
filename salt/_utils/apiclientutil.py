"""
Thin clients of the platform APIs, one per system, on top of :mod:`httpclientutil`.

Each client knows its API's paths, wrappers and paging, and nothing about registrations:

- :class:`ConsulAPI`: the agent's services (``/v1/agent/...``), with the ACL token header.
- :class:`KongAPI`: any Kong 3.x entity collection, listed through every page, upserted with PUT
  by endpoint key, deleted idempotently.
- :class:`VulcandAPI`: vulcand v2 hosts, backends, servers, frontends and listeners (upserts are
  POSTs by id, so they are safe to retry).
- :class:`VulcandStore`: vulcand's etcd v3 store, read directly (every object in one request).
- :class:`MarathonAPI`: apps with their tasks.

Errors are :mod:`httpclientutil` errors; ``get_*`` methods raise
:class:`httpclientutil.NotFoundError` for a missing object, ``delete_*`` methods return whether
something was deleted.
"""

import base64
import binascii
import json
import re
import threading
import urllib.parse

from httpclientutil import HTTPClient, HTTPRequestError, NotFoundError
from salt.exceptions import CommandExecutionError

KONG_PAGE_SIZE = 1000  # Kong's maximum: a few hundred services cost one request

# vulcand's collections: path segment -> (wrapper key of one object, key of a list)
VULCAND_COLLECTIONS = {
    "hosts": ("Host", "Hosts"),
    "backends": ("Backend", "Backends"),
    "frontends": ("Frontend", "Frontends"),
    "listeners": ("Listener", "Listeners"),
}


def quote(segment):
    """One path segment, percent-encoded (ids may contain ``/``, as Marathon's do)."""
    return urllib.parse.quote(str(segment), safe="")


class ConsulAPI:
    """The Consul agent HTTP API (services registered on the agent the URL reaches)."""

    system = "consul"

    def __init__(self, url, token="", **client_options):
        headers = {"X-Consul-Token": token} if token else {}
        self.http = HTTPClient(self.system, url, headers=headers, **client_options)

    def list_services(self):
        """``{service_id: definition}`` of every service on the agent."""
        return self.http.get("/v1/agent/services") or {}

    def list_catalog_services(self):
        """``{name: tags}`` of every service anywhere in the cluster (Consul's catalog)."""
        return self.http.get("/v1/catalog/services") or {}

    def catalog_service(self, name):
        """Every instance of service ``name`` in the catalog, on any node (``[]``: none)."""
        return self.http.get(f"/v1/catalog/service/{quote(name)}") or []

    def get_service(self, service_id):
        try:
            return self.http.get(f"/v1/agent/service/{quote(service_id)}")
        except NotFoundError as err:
            # An unknown service is "unknown service ID"; an agent without the endpoint (Consul
            # before 1.3) answers a bare 404, which must not pass for "not registered".
            if not err.server_message:
                raise CommandExecutionError(
                    f"consul: {err.url} answered a bare 404: this agent has no "
                    f"GET /v1/agent/service/<id> (Consul 1.3 or newer is needed)"
                ) from err
            raise

    def register_service(self, definition, replace_existing_checks=False):
        """Upsert a service definition (``ID`` defaults to ``Name``).

        :param replace_existing_checks: drop the service's checks the definition leaves out
        """
        params = {"replace-existing-checks": "true"} if replace_existing_checks else None
        self.http.put("/v1/agent/service/register", json=definition, params=params)

    def list_checks(self):
        """``{check_id: check}`` of every check on the agent."""
        return self.http.get("/v1/agent/checks") or {}

    def deregister_service(self, service_id):
        try:
            self.http.put(f"/v1/agent/service/deregister/{quote(service_id)}")
        except NotFoundError:
            return False
        return True

    # ACL policies and tokens (Consul 1.4 and later). Consul answers a missing ACL object with
    # 403 "ACL not found", like a bad token: policies are found through their listing, a token
    # through its own secret.

    def list_acl_policies(self):
        """Every policy, without its rules: ``[{"ID", "Name", "Description", ...}]``."""
        return self.http.get("/v1/acl/policies") or []

    def get_acl_policy(self, policy_id):
        return self.http.get(f"/v1/acl/policy/{quote(policy_id)}")

    def put_acl_policy(self, policy, policy_id=None):
        """Create a policy, or update the one ``policy_id`` names; returns it."""
        suffix = f"/{quote(policy_id)}" if policy_id else ""
        return self.http.put(f"/v1/acl/policy{suffix}", json=policy)

    def get_acl_token_by_secret(self, secret_id):
        """The token whose secret is ``secret_id`` (read with itself), or None without one."""
        try:
            return self.http.get("/v1/acl/token/self", headers={"X-Consul-Token": secret_id})
        except HTTPRequestError as err:
            if err.status == 403 and err.server_message == "ACL not found":
                return None
            raise

    def put_acl_token(self, token, accessor_id=None):
        """Create a token, or update the one ``accessor_id`` names; returns it."""
        suffix = f"/{quote(accessor_id)}" if accessor_id else ""
        return self.http.put(f"/v1/acl/token{suffix}", json=token)


class KongAPI:
    """The Kong 3.x Admin API."""

    system = "kong"

    def __init__(self, url, **client_options):
        self.http = HTTPClient(self.system, url, **client_options)

    def list(self, collection, tags=None):
        """Every entity of ``collection`` (e.g. ``services``, ``services/web/routes``).

        :param tags: Kong's tag filter (``a,b`` all of, ``a/b`` any of)
        """
        params = {"size": KONG_PAGE_SIZE}
        if tags:
            params["tags"] = tags
        path, entities = f"/{collection}", []
        while path:
            page = self.http.get(path, params=params)
            entities.extend(page.get("data") or [])
            # `next` is a path that already carries offset, size and tags.
            path, params = page.get("next"), None
        return entities

    def get(self, collection, key):
        return self.http.get(f"/{collection}/{quote(key)}")

    def upsert(self, collection, key, entity, reply=True):
        """Create or wholesale replace the entity ``key`` (its name, or id) with PUT; returns
        Kong's entity unless ``reply`` is false (decoding it is most of a write's CPU left)."""
        written = self.http.put(f"/{collection}/{quote(key)}", json=entity, raw=not reply)
        return written if reply else None

    def create(self, collection, entity):
        """POST a new entity (for entities without an endpoint key, such as credentials)."""
        return self.http.post(f"/{collection}", json=entity)

    def delete(self, collection, key):
        """Delete ``key``; Kong answers 204 whether it existed or not."""
        self.http.delete(f"/{collection}/{quote(key)}", raw=True)


class VulcandAPI:
    """The vulcand v2 API."""

    system = "vulcand"

    def __init__(self, url, **client_options):
        self.http = HTTPClient(self.system, url, **client_options)

    def list(self, collection):
        """Every object of ``collection``: ``hosts``, ``backends``, ``frontends``, ``listeners``."""
        _, list_key = VULCAND_COLLECTIONS[collection]
        return (self.http.get(f"/v2/{collection}") or {}).get(list_key) or []

    def get(self, collection, key):
        return self.http.get(f"/v2/{collection}/{quote(key)}")

    def upsert(self, collection, entity, reply=True):
        """Create or replace an object by its ``Id`` (hosts: ``Name``); returns vulcand's
        object unless ``reply`` is false."""
        wrapper, _ = VULCAND_COLLECTIONS[collection]
        return self._upsert(f"/v2/{collection}", {wrapper: entity}, reply)

    def delete(self, collection, key):
        return self._delete(f"/v2/{collection}/{quote(key)}")

    def list_servers(self, backend_id):
        path = f"/v2/backends/{quote(backend_id)}/servers"
        return (self.http.get(path) or {}).get("Servers") or []

    def upsert_server(self, backend_id, server, reply=True):
        path = f"/v2/backends/{quote(backend_id)}/servers"
        return self._upsert(path, {"Server": server}, reply)

    def _upsert(self, path, body, reply):
        written = self.http.post(path, json=body, idempotent=True, raw=not reply)
        return written if reply else None

    def delete_server(self, backend_id, server_id):
        return self._delete(f"/v2/backends/{quote(backend_id)}/servers/{quote(server_id)}")

    def _delete(self, path):
        try:
            self.http.delete(path, raw=True)
        except NotFoundError:
            return False
        return True


class VulcandStore:
    """vulcand's etcd v3 store (``vulcand -etcdApiVer=3``), read directly through etcd's JSON
    gateway: every vulcand object (hosts, backends, servers, frontends, listeners) in one range
    read, where vulcand's API needs a listing per collection and one per backend for the
    servers. Only read: writes go through vulcand's API, which validates them.

    The store's objects are kept, as of the revision they were read at, so that reading them
    again costs what changed since: a count at the current revision, then the keys modified
    after the kept revision, and the list of keys only when some were deleted. (At 10,000
    services, some 70,000 keys, a whole read takes the gateway about a second of CPU.)

    :param url: an etcd client URL, e.g. ``http://etcd.service.consul:2379``
    :param prefix: vulcand's ``-etcdKey`` (keys are ``<prefix>/hosts/<name>/host``,
        ``<prefix>/backends/<id>/backend``, ``<prefix>/backends/<id>/servers/<server id>``,
        ``<prefix>/frontends/<id>/frontend`` and ``<prefix>/listeners/<id>``)
    :param fields: ``{collection: [field, ...]}``, the only fields kept of each object of a
        collection (``"Settings.Hostname"``: that one field of ``Settings``); by default
        every field. 70,000 objects kept whole take some 60 MB.
    """

    system = "etcd"
    # Keys per range request; later pages are read at the first one's revision. A service is
    # some 7 keys: up to 1,400 services in one request, each page well within a read timeout.
    PAGE_SIZE = 10_000

    def __init__(self, url, prefix="/vulcand", fields=None, **client_options):
        self.http = HTTPClient(self.system, url, **client_options)
        self.prefix = prefix.rstrip("/")
        self.fields = {collection: [path.split(".") for path in paths]
                       for collection, paths in (fields or {}).items()}
        # key -> (collection, backend of a server, the object as objects() gives it); the
        # collection is None for a key that holds no object vulcand lists (kept all the same:
        # the store's count is of every key).
        self._kept = {}
        self._kept_revision = None  # the revision ``_kept`` is true at; None: nothing kept
        self._lock = threading.Lock()  # one reader updates what is kept at a time

    @property
    def backends_prefix(self):
        return f"{self.prefix}/backends/"

    def objects(self):
        """Every stored object, as of one revision, shaped as vulcand's API lists them:
        ``{"hosts": [...], "backends": [...], "frontends": [...], "listeners": [...],
        "servers": {backend_id: [{"Id", "URL"}]}}`` (servers of every stored backend). The
        objects are the ones kept, shared with later calls: read them, do not change them."""
        with self._lock:
            self._refresh()
            entries = list(self._kept.values())
        found = {"hosts": [], "backends": [], "frontends": [], "listeners": []}
        servers = {}
        for collection, backend, stored in entries:
            if backend is not None:
                servers.setdefault(backend, []).append(stored)
            elif collection is not None:
                found[collection].append(stored)
        found["servers"] = {
            backend["Id"]: servers.get(backend["Id"], []) for backend in found["backends"]
        }
        return found

    def _refresh(self):
        """Bring ``_kept`` to the store's current revision, reading as little as that takes."""
        base = f"{self.prefix}/"
        if self._kept_revision is None:
            self._kept_revision = self._keep(self._range(base), base)
            return
        head = self._post_range(*_key_range(base), count_only=True)
        revision, count = int(head["header"]["revision"]), int(head.get("count", 0))
        if revision == self._kept_revision:
            return
        kept_revision, self._kept_revision = self._kept_revision, None  # until it is true again
        if revision < kept_revision:  # restored from a backup, or another etcd: read it whole
            self._kept_revision = self._keep(self._range(base), base)
            return
        known = len(self._kept)
        self._keep(self._range(base, revision, min_mod_revision=kept_revision + 1), base,
                   replace=False)
        if len(self._kept) != known:  # new keys: in the store's order, as a whole read has them
            self._kept = dict(sorted(self._kept.items()))
        if len(self._kept) != count:  # some were deleted: which, the keys alone tell
            present = {key for key, _ in self._range(base, revision, keys_only=True)}
            self._kept = {key: entry for key, entry in self._kept.items() if key in present}
        self._kept_revision = revision

    def _keep(self, pages, base, replace=True):
        """Keep the vulcand objects of ``pages`` (a :meth:`_range`); ``replace``: they are
        every object, else they update what is kept. Returns the revision they were read at."""
        kept = {} if replace else self._kept
        keys, kinds, values = [], [], []
        for key, value in pages:
            kind = _vulcand_kind(key[len(base):].split("/"))
            if kind is None:
                kept[key] = (None, None, None)
            else:
                keys.append(key)
                kinds.append(kind)
                values.append(value)
        for key, (collection, id_field, object_id, backend), value in zip(
                keys, kinds, _objects_of(values)):
            paths = self.fields.get(collection)
            stored = value if paths is None else _fields_of(value, paths)
            stored[id_field] = object_id
            kept[key] = (collection, backend, stored)
        self._kept = kept
        return pages.revision

    def _post_range(self, start, end, **options):
        request = {"key": _b64(start), "range_end": _b64(end), **options}
        # A range is a read: safe to retry, though the gateway takes it as a POST.
        return self.http.post("/v3/kv/range", json=request, idempotent=True) or {}

    def _range(self, prefix, revision=None, **options):
        """A :class:`_Pages` of ``(key, value)`` under ``prefix`` (values empty with
        ``keys_only``), in pages, all at ``revision`` (default: the first page's)."""
        return _Pages(self, prefix, revision, options)


class _Pages:
    """The ``(key, value)`` pairs of one paged range read; ``revision`` is the one they are
    read at, known once the first page is in."""

    def __init__(self, store, prefix, revision, options):
        self.revision = revision
        self._pairs = self._read(store, prefix, options)

    def __iter__(self):
        return self._pairs

    def __next__(self):
        return next(self._pairs)

    def _read(self, store, prefix, options):
        start, end = _key_range(prefix)
        while True:
            at = {} if self.revision is None else {"revision": self.revision}
            page = store._post_range(start, end, limit=store.PAGE_SIZE, **at, **options)
            if self.revision is None:
                self.revision = int(page.get("header", {}).get("revision", 0)) or None
            kvs = page.get("kvs") or []
            for kv in kvs:
                yield (binascii.a2b_base64(kv["key"]).decode(),
                       binascii.a2b_base64(kv.get("value", "")))
            if not page.get("more") or not kvs:
                return
            start = binascii.a2b_base64(kvs[-1]["key"]) + b"\0"


def _fields_of(value, paths):
    """The fields of ``value`` (a dict) at ``paths`` (lists of keys), the others left out."""
    kept = {}
    for path in paths:
        source, target = value, kept
        for key in path[:-1]:
            source = source.get(key)
            if not isinstance(source, dict):
                break
            target = target.setdefault(key, {})
        else:
            if path[-1] in source:
                target[path[-1]] = source[path[-1]]
    return kept


def _vulcand_kind(parts):
    """``(collection, id field, id, backend of a server)`` of a key's parts under the prefix,
    or None for a key that holds no object vulcand lists."""
    collection = parts[0]
    if len(parts) == 3 and collection == "hosts" and parts[2] == "host":
        return "hosts", "Name", parts[1], None
    if len(parts) == 3 and collection in ("backends", "frontends") and parts[2] == collection[:-1]:
        return collection, "Id", parts[1], None
    if len(parts) == 4 and collection == "backends" and parts[2] == "servers":
        return "servers", "Id", parts[3], parts[1]
    if len(parts) == 2 and collection == "listeners":
        return "listeners", "Id", parts[1], None
    return None


def _objects_of(stored):
    """The fields of each stored object (JSON); none for a damaged value, so that it gets
    rewritten. All are decoded as one JSON array, one by one only when that fails."""
    try:
        values = json.loads(b"[" + b",".join(stored) + b"]")
    except ValueError:
        values = None
    if values is None or len(values) != len(stored):  # a damaged value, or one that split
        values = [_json_or_none(value) for value in stored]
    return [value if isinstance(value, dict) else {} for value in values]


def _json_or_none(stored):
    try:
        return json.loads(stored)
    except ValueError:
        return None


def _b64(raw):
    return base64.b64encode(raw).decode()


def _key_range(prefix):
    """``(key, range_end)`` of etcd's range of the keys starting with ``prefix`` (not empty,
    ending below 0xFF as the ``/``-terminated prefixes here do): the end is the prefix with its
    last byte plus one."""
    start = prefix.encode()
    return start, start[:-1] + bytes([start[-1] + 1])


class MarathonAPI:
    """The Marathon v2 REST API (apps and their tasks)."""

    system = "marathon"

    def __init__(self, url, **client_options):
        self.http = HTTPClient(self.system, url, **client_options)

    def list_apps(self, label=None, embed_tasks=True):
        """Every app, with its ``tasks`` when ``embed_tasks``.

        :param label: Marathon's label selector, e.g. ``registry.service`` or ``env==prod``
        """
        return list(self.iter_apps(label, embed_tasks))

    def iter_apps(self, label=None, embed_tasks=True, with_text=False, known=None):
        """:meth:`list_apps` read at once and decoded one app at a time: the listing of
        10,000 apps with their tasks is some hundred times larger decoded than any one app.
        ``with_text``: ``(app, its JSON text in the listing)`` pairs; ``known``: apps the
        caller recognises without decoding them (see :func:`json_array_items`)."""
        params = {}
        if embed_tasks:
            params["embed"] = "apps.tasks"
        if label:
            params["label"] = label
        body = self.http.get("/v2/apps", params=params, raw=True)
        return json_array_items(body, "apps", f"marathon: GET {self.http.base_url}/v2/apps",
                                with_text, known)

    def get_app(self, app_id):
        """One app; Marathon always embeds its tasks."""
        return self.http.get(f"/v2/apps/{_app_path(app_id)}")["app"]

    def upsert_app(self, app_id, definition):
        """Create or update an app (PUT); returns Marathon's deployment reference."""
        return self.http.put(f"/v2/apps/{_app_path(app_id)}", json=definition)

    def delete_app(self, app_id):
        try:
            self.http.delete(f"/v2/apps/{_app_path(app_id)}")
        except NotFoundError:
            return False
        return True


_ARRAY_START = re.compile(r'\s*\{\s*"(?P<key>[^"\\]+)"\s*:\s*\[\s*')
_SEPARATOR = re.compile(r"\s*(?P<token>[,\]])\s*")
_JSON = json.JSONDecoder()


def json_array_items(body, key, what, with_text=False, known=None):
    """The elements of the array ``key`` of the JSON object ``body`` (bytes), decoded one after
    the other as they are taken (none when ``body`` is empty), so that only one is held
    decoded at a time. A body of another shape than ``{"<key>": [...]}`` is decoded whole.
    A reply that is no such JSON raises :class:`CommandExecutionError` naming ``what``.

    ``with_text``: ``(element, its JSON text)`` pairs, the text None for a body decoded whole.
    ``known(text, position)``, asked first of each element: ``(value, end)`` when the caller
    recognises the element that starts at ``position`` and ends at ``end`` (it then comes out
    as ``value``, not decoded, its text None), else None.
    """
    try:
        text = body.decode("utf-8") if body else ""
        del body  # the text is what is read from now on: not both held
        start = _ARRAY_START.match(text)
        if start is None or start["key"] != key:
            decoded = json.loads(text) if text.strip() else {}
            items = decoded.get(key) or [] if isinstance(decoded, dict) else ()
            yield from ((item, None) for item in items) if with_text else items
            return
        position = start.end()
        if text.startswith("]", position):
            return
        while True:
            recognised = known(text, position) if known is not None else None
            if recognised is not None:
                item, position = recognised
                yield (item, None) if with_text else item
            else:
                begin = position
                item, position = _JSON.raw_decode(text, position)
                yield (item, text[begin:position]) if with_text else item
            separator = _SEPARATOR.match(text, position)
            if separator is None:
                raise ValueError(f"expected , or ] at character {position}")
            position = separator.end()
            if separator["token"] == "]":
                return
    except ValueError as err:  # UnicodeDecodeError and JSONDecodeError among them
        raise CommandExecutionError(f"{what}: the reply is not the JSON expected: {err}") from None


def _app_path(app_id):
    # Marathon app ids are paths: keep their "/" separators, encode everything else.
    return "/".join(quote(segment) for segment in str(app_id).strip("/").split("/"))

