"""
The registration core: facts -> plan -> apply, for Consul, vulcand and Kong.

The ``microservice`` states, the ``microservice`` execution module and the Marathon engine are
three front doors to this module; none of them talks to a registry API itself.

Stable API (the Marathon engine builds on it)
=============================================

``Owner(cluster, source)``
    Who registers: the cluster identity (pillar ``platform:cluster``) and the source, ``pillar``
    for the ``services`` state and ``microservice.*`` functions, ``marathon`` for the engine.
    Objects carry this mark and are only ever changed or deleted by the same owner.

``Instance(address, port)`` and ``ServiceSpec(name, port, domain, instances, gateway)``
    What one service should look like. ``instances`` maps instance ids to ``Instance`` (or
    ``(address, port)`` tuples); ``gateway`` says whether Kong exposes it. Invalid input raises
    :class:`~salt.exceptions.SaltInvocationError` when the spec is built, before anything is
    written.

``Registries.from_config(config_get)``
    The API clients, built from ``config_get(key, default)`` (``config.get`` in Salt: minion
    config, then pillar) with the keys under ``platform:`` (see :data:`SETTINGS`).

``read_snapshot(registries, owner, names=None) -> Snapshot``
    The facts, all read at once: one listing per object type of Consul (services) and Kong
    (services, routes), and every vulcand object (hosts, backends, servers, frontends,
    listeners) in one read of vulcand's etcd (``platform:vulcand:etcd_url``; without the store,
    one listing per collection through vulcand's API, which has no bulk server listing: servers
    are then listed per owned backend, only for ``names`` when given). For a single name, its
    objects are read by name instead, so one service costs the same however many exist. Also
    the services of others anywhere in the cluster (Consul's catalog: the agent's listing, plus
    one read per name only other nodes hold).

``plan(desired, snapshot, owner, prune_instances=True) -> Plan``
    A pure diff. ``desired`` is ``{name: ServiceSpec or None}``; None means absent. Only owned
    objects of the names in ``desired`` are touched; a name held by someone else (here or
    anywhere in the catalog), or a port another service holds, is reported in
    ``Plan.conflicts`` and that service is left out of the plan. With
    ``prune_instances=False`` servers missing from a spec are kept.

``apply(plan, registries, max_workers=8, on_service_done=None) -> ApplyResult``
    The writes, concurrently across independent objects and in dependency order within a
    service (Consul first on create so ownership is claimed, last on delete; vulcand backend
    before its servers and frontend; Kong service before route), instances first among the
    steps ready. A failure stops the steps that depend on it; ``ApplyResult`` tells what was
    done, what failed and what was skipped; ``on_service_done`` hears of each service as soon
    as its steps are over.

``converge(registries, owner, desired, ...) -> Outcome``
    read, plan, (apply unless ``test``), verify: what the states and execution functions run.

``Plan.changes()`` / ``ApplyResult.changes()``
    Salt ``changes``: ``{service: {"<system> <kind> <id>": {"old": ..., "new": ...}}}``, the
    same shape in test mode and when applied.

What gets registered for a service ``web`` on port 10000 in domain ``service.consul``
====================================================================================

- Consul: service ``web`` (ID = name) on port 10000, ``Meta`` carrying the owner mark; it
  points at the agent's node, where vulcand runs.
- vulcand: host ``web.service.consul``; backend ``web``; one server per instance
  (``http://<address>:<port>``, id = instance id); frontend ``web`` routing
  ``Host("web.service.consul") && PathRegexp("/.*")`` to it; listener ``web`` on
  ``0.0.0.0:10000``. vulcand objects have no metadata: they belong to whoever owns the Consul
  service of the same name, which is written first and deleted last.
- Kong (when ``gateway``): service ``web`` -> ``http://vulcand.service.consul:10000`` and route
  ``web`` for host ``web.service.consul`` with ``preserve_host``, both tagged with the owner.
"""

import concurrent.futures
import contextlib
import functools
import heapq
import logging
import re
import threading
from dataclasses import dataclass, field
from typing import NamedTuple

import marathonutil
import validationutil
from apiclientutil import ConsulAPI, KongAPI, MarathonAPI, VulcandAPI, VulcandStore
from httpclientutil import HTTPRequestError, NotFoundError
from salt.exceptions import CommandExecutionError, SaltInvocationError

log = logging.getLogger(__name__)

DEFAULT_DOMAIN = "service.consul"
DEFAULT_CLUSTER = "showcase"
DEFAULT_MAX_WORKERS = 8
# Reading one service's objects by name costs as many requests as listing every object type,
# but its cost does not grow with everything else registered; for more names, listing wins.
SCOPED_READ_MAX = 1

# Connection settings read with config.get: key -> default.
SETTINGS = {
    "platform:domain": DEFAULT_DOMAIN,
    "platform:cluster": DEFAULT_CLUSTER,
    "platform:consul:url": "http://consul.service.consul:8500",
    "platform:consul:token": "",
    "platform:vulcand:url": "http://vulcand.service.consul:8182",
    # vulcand's etcd, read directly for every vulcand object at once ("" turns it off).
    "platform:vulcand:etcd_url": "http://etcd.service.consul:2379",
    "platform:vulcand:etcd_prefix": "/vulcand",
    "platform:kong:admin_url": "http://kong.service.consul:8001",
    "platform:marathon:url": "http://marathon.service.consul:8080",
    # Service ports: the vulcand listeners the security groups open to Kong. The same value as
    # pillar/platform.sls, for the daemons that read no pillar (the engine on the master).
    "platform:listener_ports": "10000-11000",
}

MANAGED_BY = "salt"


# -- desired state ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Owner:
    """The mark on every object a registration front door creates: cluster + source."""

    cluster: str
    source: str

    def __post_init__(self):
        validationutil.dns_label(self.cluster, "platform:cluster")
        validationutil.dns_label(self.source, "registration source")

    def __str__(self):
        return f"{self.cluster}/{self.source}"

    @property
    def consul_meta(self):
        return {"managed-by": MANAGED_BY, "cluster": self.cluster, "source": self.source}

    @property
    def kong_tags(self):
        return sorted([f"managed-by:{MANAGED_BY}", f"cluster:{self.cluster}",
                       f"source:{self.source}"])

    # The marks as the ownership checks compare them, made once: a resync checks every object.
    @functools.cached_property
    def _consul_marks(self):
        return tuple(self.consul_meta.items())

    @functools.cached_property
    def _kong_marks(self):
        return frozenset(self.kong_tags)

    def owns_consul_service(self, service):
        meta = service.get("Meta") or {}
        return all(meta.get(key) == value for key, value in self._consul_marks)

    def owns_kong_entity(self, entity):
        return self._kong_marks.issubset(entity.get("tags") or ())


def describe_consul_owner(service):
    """Who registered a Consul service, in words, for conflict messages."""
    meta = service.get("Meta") or {}
    if meta.get("managed-by") == MANAGED_BY:
        return f"registered by {meta.get('cluster')}/{meta.get('source')}"
    return "not registered by Salt"


def describe_kong_owner(entity):
    tags = dict(tag.split(":", 1) for tag in entity.get("tags") or () if ":" in tag)
    if tags.get("managed-by") == MANAGED_BY:
        return f"registered by {tags.get('cluster')}/{tags.get('source')}"
    return "not registered by Salt"


@dataclass(frozen=True)
class Instance:
    """One instance of a service: where vulcand sends its share of the traffic."""

    address: str
    port: int

    @property
    def url(self):
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}"


@dataclass(frozen=True)
class ServiceSpec:
    """What one service should look like in the registries; validated when built."""

    name: str
    port: int
    domain: str = DEFAULT_DOMAIN
    instances: dict = field(default_factory=dict)
    gateway: bool = True

    def __post_init__(self):
        # Front doors check their input with its key path first; this guards the core.
        validationutil.dns_label(self.name, "service name")
        what = f"service {self.name}"
        validationutil.port(self.port, validationutil.child(what, "port"))
        validationutil.domain(self.domain, validationutil.child(what, "domain"))
        validationutil.boolean(self.gateway, validationutil.child(what, "gateway"))
        instances = {}
        for instance_id, instance in validationutil.mapping_of(
            self.instances, validationutil.child(what, "instances"),
            validationutil.identifier, lambda value, path: value,
        ).items():
            path = validationutil.child(validationutil.child(what, "instances"), instance_id)
            if not isinstance(instance, Instance):
                if not isinstance(instance, (tuple, list)) or len(instance) != 2:
                    raise validationutil.Invalid(path, "expected (address, port)")
                instance = Instance(*instance)
            validationutil.address(instance.address, validationutil.child(path, "address"))
            validationutil.port(instance.port, validationutil.child(path, "port"))
            instances[instance_id] = instance
        object.__setattr__(self, "instances", instances)

    @property
    def fqdn(self):
        return f"{self.name}.{self.domain}"


# -- registry objects -------------------------------------------------------------------------


class Kind(NamedTuple):
    system: str
    kind: str

    def __str__(self):
        return f"{self.system} {self.kind}"


CONSUL_SERVICE = Kind("consul", "service")
VULCAND_HOST = Kind("vulcand", "host")
VULCAND_BACKEND = Kind("vulcand", "backend")
VULCAND_SERVER = Kind("vulcand", "server")
VULCAND_FRONTEND = Kind("vulcand", "frontend")
VULCAND_LISTENER = Kind("vulcand", "listener")
KONG_SERVICE = Kind("kong", "service")
KONG_ROUTE = Kind("kong", "route")

# What each kind needs to exist first. Creation follows it; deletion runs it backwards. Consul
# is everyone's ancestor: it carries the ownership of the vulcand objects.
PARENTS = {
    CONSUL_SERVICE: (),
    VULCAND_BACKEND: (CONSUL_SERVICE,),
    VULCAND_SERVER: (VULCAND_BACKEND,),
    VULCAND_FRONTEND: (VULCAND_BACKEND,),
    # A host is known as ours through the frontend naming it (hosts carry no other link).
    VULCAND_HOST: (VULCAND_FRONTEND,),
    VULCAND_LISTENER: (CONSUL_SERVICE,),
    KONG_SERVICE: (VULCAND_FRONTEND, VULCAND_LISTENER),  # expose only a routable service
    KONG_ROUTE: (KONG_SERVICE,),
}
KIND_ORDER = list(PARENTS)


def _ancestors(kind):
    found = set()
    for parent in PARENTS[kind]:
        found |= {parent} | _ancestors(parent)
    return found


ANCESTORS = {kind: frozenset(_ancestors(kind)) for kind in PARENTS}


class Ref(NamedTuple):
    """One object in a registry: its kind, the service it belongs to, and its id there."""

    kind: Kind
    service: str
    key: str

    def __str__(self):
        if self.kind == VULCAND_SERVER:
            return f"{self.kind} {self.service}/{self.key}"
        return f"{self.kind} {self.key}"


def _frontend_route(fqdn):
    return f'Host("{fqdn}") && PathRegexp("/.*")'


def desired_objects(spec, owner):
    """``{Ref: comparable body}`` of everything ``spec`` registers.

    The bodies hold exactly the fields the project manages, in the shape :func:`read_snapshot`
    projects the registries' objects to, so that equal means "nothing to do".
    """
    name, fqdn = spec.name, spec.fqdn
    objects = {
        Ref(CONSUL_SERVICE, name, name): {
            "Name": name, "Port": spec.port, "Tags": [], "Meta": owner.consul_meta,
        },
        Ref(VULCAND_HOST, name, fqdn): {"Name": fqdn},
        Ref(VULCAND_BACKEND, name, name): {"Type": "http"},
        Ref(VULCAND_FRONTEND, name, name): {
            "Type": "http", "BackendId": name, "Route": _frontend_route(fqdn),
            "Hostname": fqdn,
        },
        Ref(VULCAND_LISTENER, name, name): {
            "Protocol": "http", "Address": f"tcp://0.0.0.0:{spec.port}",
        },
    }
    for instance_id, instance in spec.instances.items():
        objects[Ref(VULCAND_SERVER, name, instance_id)] = {"URL": instance.url}
    if spec.gateway:
        tags = owner.kong_tags
        objects[Ref(KONG_SERVICE, name, name)] = {
            "protocol": "http", "host": f"vulcand.{spec.domain}", "port": spec.port,
            "path": None, "tags": tags,
        }
        objects[Ref(KONG_ROUTE, name, name)] = {
            "service": name, "hosts": [fqdn], "paths": None, "preserve_host": True,
            "strip_path": False, "tags": list(tags),
        }
    return objects


# -- facts ------------------------------------------------------------------------------------


@dataclass
class Registries:
    """The API clients the registration core writes through."""

    consul: ConsulAPI
    vulcand: VulcandAPI
    kong: KongAPI
    marathon: MarathonAPI = None
    vulcand_store: VulcandStore = None  # None: vulcand is read through its API

    @classmethod
    def from_config(cls, config_get, **client_options):
        """Clients for the URLs in ``config_get(key, default)`` (``config.get`` in Salt)."""
        settings = settings_values(config_get)
        etcd_url = settings["platform:vulcand:etcd_url"]
        store = VulcandStore(etcd_url, settings["platform:vulcand:etcd_prefix"],
                             fields=_VULCAND_COMPARED, **client_options) if etcd_url else None
        return cls(
            consul=ConsulAPI(settings["platform:consul:url"],
                             token=settings["platform:consul:token"], **client_options),
            vulcand=VulcandAPI(settings["platform:vulcand:url"], **client_options),
            kong=KongAPI(settings["platform:kong:admin_url"], **client_options),
            marathon=MarathonAPI(settings["platform:marathon:url"], **client_options),
            vulcand_store=store,
        )


@dataclass
class Snapshot:
    """What the registries hold, as read by :func:`read_snapshot`.

    ``objects``: ``{Ref: comparable body}`` of the owner's objects.
    ``claims``: ``{(Kind, key): why it is not ours}`` of the objects that exist but belong to
    someone else, so that a plan can refuse to take them over.
    ``catalog``: ``{name: [CatalogEntry]}`` of the Consul services, anywhere in the cluster,
    that are not the owner's: the names and ports a plan must not take.
    """

    owner: Owner
    objects: dict = field(default_factory=dict)
    claims: dict = field(default_factory=dict)
    catalog: dict = field(default_factory=dict)

    def service_objects(self, name):
        return self.by_service({name}).get(name, {})

    def by_service(self, names):
        """``{name: {Ref: body}}`` of the owner's objects of ``names``, in one pass."""
        grouped = {}
        for ref, body in self.objects.items():
            if ref.service in names:
                grouped.setdefault(ref.service, {})[ref] = body
        return grouped

    def spec(self, name, domain=DEFAULT_DOMAIN):
        """The :class:`ServiceSpec` the owner's objects of ``name`` describe, or None when the
        owner has not registered ``name`` (no Consul service)."""
        objects = self.service_objects(name)
        consul = objects.get(Ref(CONSUL_SERVICE, name, name))
        if consul is None:
            return None
        instances = {
            ref.key: _instance_of_url(body["URL"])
            for ref, body in objects.items()
            if ref.kind == VULCAND_SERVER
        }
        return ServiceSpec(
            name=name,
            port=consul["Port"],
            domain=domain,
            instances={key: value for key, value in instances.items() if value},
            gateway=Ref(KONG_ROUTE, name, name) in objects,
        )


def _instance_of_url(url):
    match = re.match(r"^http://\[?(?P<address>[^\]]+?)\]?:(?P<port>\d+)/?$", url or "")
    return Instance(match["address"], int(match["port"])) if match else None


def read_snapshot(registries, owner, names=None, max_workers=DEFAULT_MAX_WORKERS, pool=None):
    """Read what exists, concurrently, and sort it into the owner's objects and claims.

    Without ``names``, or with more than :data:`SCOPED_READ_MAX` of them: one listing per
    object type of Consul and Kong, and every vulcand object from one read of vulcand's etcd
    (with no store configured, or none reachable: one listing per collection through the API,
    and one per owned backend of ``names`` for the servers). For a single name (a
    ``microservice.*`` call, one Marathon app's event), only its objects are read, by name, so
    the cost does not grow with everything else registered.

    :param pool: the executor to read with (a long-running caller keeps one, rather than
        starting threads for every read); by default one of ``max_workers`` for this read
    """
    with _executor(pool, max_workers) as pool:
        scoped = names is not None and len(names) <= SCOPED_READ_MAX
        if scoped:
            listed, servers = _read_by_name(registries, sorted(names), pool), None
        else:
            listed, servers = _read_listings(registries, pool)
        snapshot = _classify(listed, owner)
        snapshot.catalog = _read_catalog(
            registries, owner, None if scoped else listed[CONSUL_SERVICE], pool)
        backends = sorted(
            ref.key for ref in snapshot.objects
            if ref.kind == VULCAND_BACKEND and (names is None or ref.key in names)
        )
        if servers is None:
            server_lists = {
                backend: pool.submit(registries.vulcand.list_servers, backend)
                for backend in backends
            }
            servers = {backend: future.result() for backend, future in server_lists.items()}
        for backend in backends:
            for server in servers.get(backend, []):
                snapshot.objects[Ref(VULCAND_SERVER, backend, server["Id"])] = {
                    "URL": server.get("URL"),
                }
    return snapshot


def _executor(pool, max_workers):
    """``pool`` as it is (left running), or a new executor for one ``with`` block."""
    if pool is not None:
        return contextlib.nullcontext(pool)
    return concurrent.futures.ThreadPoolExecutor(max_workers)


# vulcand's collections, as the API lists them (the store gives the same shape).
_VULCAND_COLLECTIONS = {
    VULCAND_HOST: "hosts", VULCAND_BACKEND: "backends", VULCAND_FRONTEND: "frontends",
    VULCAND_LISTENER: "listeners",
}
# The fields of vulcand's objects that _classify reads (ids come from the keys): all that the
# store keeps of them between resyncs.
_VULCAND_COMPARED = {
    "hosts": [], "backends": ["Type"],
    "frontends": ["Type", "BackendId", "Route", "Settings.Hostname"],
    "listeners": ["Protocol", "Address"], "servers": ["URL"],
}


def _read_listings(registries, pool):
    """``({Kind: [raw object]}, {backend: [server]})`` from one listing per object type, all
    at once; vulcand's objects from its store when there is one (servers None without it)."""
    listings = {
        CONSUL_SERVICE: lambda: list(registries.consul.list_services().values()),
        KONG_SERVICE: lambda: registries.kong.list("services"),
        KONG_ROUTE: lambda: registries.kong.list("routes"),
    }
    store = registries.vulcand_store
    stored = pool.submit(store.objects) if store is not None else None
    futures = {kind: pool.submit(listing) for kind, listing in listings.items()}
    vulcand = None
    if stored is not None:
        try:
            vulcand = _vulcands_store(registries, store, stored.result())
        except HTTPRequestError as err:
            # The store is a shortcut: without it, vulcand's API still lists every object.
            log.warning("reading vulcand's objects through its API instead: %s", err)
    if vulcand is None:
        futures.update({kind: pool.submit(registries.vulcand.list, collection)
                        for kind, collection in _VULCAND_COLLECTIONS.items()})
    listed = {kind: future.result() for kind, future in futures.items()}
    if vulcand is None:
        return listed, None
    listed.update({kind: vulcand[collection] for kind, collection in _VULCAND_COLLECTIONS.items()})
    return listed, vulcand["servers"]


def _vulcands_store(registries, store, stored):
    """The objects read from vulcand's store, once it is clear that the store is vulcand's: a
    wrong prefix, or a vulcand on etcd v2, shows no objects at all, and registrations would
    then be rewritten and stale ones kept forever. An empty store is checked against vulcand's
    backends (one more request, only then)."""
    if not stored["backends"]:
        listed_backends = registries.vulcand.list("backends")
        if listed_backends:
            raise CommandExecutionError(
                f"vulcand's etcd store at {store.http.base_url} holds none of the "
                f"{len(listed_backends)} backends vulcand lists (looked under "
                f"{store.backends_prefix}): set platform:vulcand:etcd_prefix to vulcand's "
                f"-etcdKey (vulcand must run with -etcdApiVer=3), or platform:vulcand:etcd_url "
                f"to '' to read vulcand through its API"
            )
    return stored


def _read_by_name(registries, names, pool):
    """``{Kind: [raw object]}`` of the objects named after ``names`` (hosts: the ones their
    frontends name), read one by one."""
    readers = {
        CONSUL_SERVICE: registries.consul.get_service,
        VULCAND_BACKEND: lambda name: registries.vulcand.get("backends", name),
        VULCAND_FRONTEND: lambda name: registries.vulcand.get("frontends", name),
        VULCAND_LISTENER: lambda name: registries.vulcand.get("listeners", name),
        KONG_SERVICE: lambda name: registries.kong.get("services", name),
        KONG_ROUTE: lambda name: registries.kong.get("routes", name),
    }
    futures = {
        (kind, name): pool.submit(_found_or_none, read, name)
        for kind, read in readers.items() for name in names
    }
    listed = {kind: [] for kind in [*readers, VULCAND_HOST]}
    for (kind, _), future in futures.items():
        found = future.result()
        if found is not None:
            listed[kind].append(found)
    hostnames = sorted({(frontend.get("Settings") or {}).get("Hostname")
                        for frontend in listed[VULCAND_FRONTEND]} - {None, ""})
    hosts = [pool.submit(_found_or_none, lambda host: registries.vulcand.get("hosts", host),
                         hostname) for hostname in hostnames]
    listed[VULCAND_HOST] = [host.result() for host in hosts if host.result() is not None]
    return listed


class CatalogEntry(NamedTuple):
    """One instance of a service that is not the owner's, somewhere in the cluster."""

    node: str  # None: on the agent the registrations go through
    port: int
    holder: str  # who registered it, in words

    def __str__(self):
        where = f"node {self.node}" if self.node else "the registrations' agent"
        return f"Consul service on {where} (port {self.port}, {self.holder})"


def _read_catalog(registries, owner, agent_services, pool):
    """``{name: [CatalogEntry]}`` of the services of the whole cluster that are not the
    owner's: the agent's own listing (read here unless given), plus one catalog read for each
    name that the agent does not hold (the other nodes' services: few, the platform's own)."""
    names = pool.submit(registries.consul.list_catalog_services)
    if agent_services is None:
        agent_services = list(registries.consul.list_services().values())
    found = {}
    for service in agent_services:
        if not owner.owns_consul_service(service):
            found.setdefault(service["Service"], []).append(
                CatalogEntry(None, service.get("Port"), describe_consul_owner(service)))
    on_agent = {service["Service"] for service in agent_services}
    elsewhere = {name: pool.submit(registries.consul.catalog_service, name)
                 for name in sorted(set(names.result()) - on_agent)}
    for name, instances in elsewhere.items():
        for instance in instances.result():
            service = {"Meta": instance.get("ServiceMeta")}
            if not owner.owns_consul_service(service):
                found.setdefault(name, []).append(CatalogEntry(
                    instance.get("Node"), instance.get("ServicePort"),
                    describe_consul_owner(service)))
    return found


def _found_or_none(read, name):
    try:
        return read(name)
    except NotFoundError:
        return None


def _classify(listed, owner):
    """The :class:`Snapshot` of raw registry objects: the owner's ones, projected to the shape
    of :func:`desired_objects`, and claims on everyone else's."""
    snapshot = Snapshot(owner)
    owned_names = set()
    for service in listed[CONSUL_SERVICE]:
        ref = Ref(CONSUL_SERVICE, service["ID"], service["ID"])
        if owner.owns_consul_service(service):
            owned_names.add(service["ID"])
            snapshot.objects[ref] = {
                "Name": service["Service"], "Port": service.get("Port"),
                "Tags": service.get("Tags") or [], "Meta": service.get("Meta") or {},
            }
        else:
            snapshot.claims[(CONSUL_SERVICE, ref.key)] = describe_consul_owner(service)

    def add_vulcand(kind, service, key, body):
        if service in owned_names:
            snapshot.objects[Ref(kind, service, key)] = body
        else:
            snapshot.claims[(kind, key)] = f"not registered by {owner}"

    for backend in listed[VULCAND_BACKEND]:
        add_vulcand(VULCAND_BACKEND, backend["Id"], backend["Id"], {"Type": backend.get("Type")})
    host_services = {}
    for frontend in listed[VULCAND_FRONTEND]:
        hostname = (frontend.get("Settings") or {}).get("Hostname") or None
        if frontend["Id"] in owned_names and hostname:
            host_services[hostname] = frontend["Id"]
        add_vulcand(VULCAND_FRONTEND, frontend["Id"], frontend["Id"], {
            "Type": frontend.get("Type"), "BackendId": frontend.get("BackendId"),
            "Route": frontend.get("Route"), "Hostname": hostname,
        })
    for host in listed[VULCAND_HOST]:
        add_vulcand(VULCAND_HOST, host_services.get(host["Name"]), host["Name"],
                    {"Name": host["Name"]})
    for listener in listed[VULCAND_LISTENER]:
        address = listener.get("Address") or {}
        add_vulcand(VULCAND_LISTENER, listener["Id"], listener["Id"], {
            "Protocol": listener.get("Protocol"),
            "Address": f"{address.get('Network')}://{address.get('Address')}",
        })

    kong_service_names = {}
    for entity in listed[KONG_SERVICE]:
        kong_service_names[entity["id"]] = entity.get("name")
        _add_kong(snapshot, owner, KONG_SERVICE, entity, {
            "protocol": entity.get("protocol"), "host": entity.get("host"),
            "port": entity.get("port"), "path": entity.get("path"),
            "tags": sorted(entity.get("tags") or []),
        })
    for entity in listed[KONG_ROUTE]:
        service_id = (entity.get("service") or {}).get("id")
        _add_kong(snapshot, owner, KONG_ROUTE, entity, {
            "service": kong_service_names.get(service_id, service_id),
            "hosts": entity.get("hosts"), "paths": entity.get("paths"),
            "preserve_host": entity.get("preserve_host"), "strip_path": entity.get("strip_path"),
            "tags": sorted(entity.get("tags") or []),
        })
    return snapshot


def _add_kong(snapshot, owner, kind, entity, body):
    name = entity.get("name")
    if name is None:  # unnamed entities can never clash with ours, which are named
        return
    if owner.owns_kong_entity(entity):
        snapshot.objects[Ref(kind, name, name)] = body
    else:
        snapshot.claims[(kind, name)] = describe_kong_owner(entity)


# -- plan -------------------------------------------------------------------------------------

CREATE, UPDATE, DELETE = "create", "update", "delete"


class Change(NamedTuple):
    ref: Ref
    action: str
    old: dict
    new: dict

    def __str__(self):
        return f"{self.action} {self.ref}"


@dataclass
class Plan:
    """The ordered changes that bring the registries to the desired state."""

    steps: list = field(default_factory=list)
    conflicts: list = field(default_factory=list)

    def __bool__(self):
        return bool(self.steps)

    def changes(self):
        return changes_of(self.steps)

    def services(self):
        return sorted({step.ref.service for step in self.steps})


def changes_of(steps):
    """Salt ``changes`` of ``steps``: ``{service: {str(ref): {"old", "new"}}}``."""
    changes = {}
    for step in steps:
        changes.setdefault(step.ref.service, {})[str(step.ref)] = {
            "old": step.old, "new": step.new,
        }
    return changes


def plan(desired, snapshot, owner, prune_instances=True):
    """The :class:`Plan` from ``snapshot`` to ``desired`` (``{name: ServiceSpec or None}``)."""
    result = Plan()
    current_by_service = snapshot.by_service(set(desired))
    port_holders = _port_holders(desired, snapshot)
    for name in sorted(desired):
        spec = desired[name]
        wanted = desired_objects(spec, owner) if spec is not None else {}
        taken = [
            f"{ref} exists and is {snapshot.claims[(ref.kind, ref.key)]}"
            for ref in wanted
            if (ref.kind, ref.key) in snapshot.claims
        ] if snapshot.claims else None
        if taken:
            result.conflicts.append(
                f"service {name!r}: refusing to take over objects that are not ours: "
                + "; ".join(sorted(taken))
            )
            continue
        if spec is not None and name in snapshot.catalog:
            result.conflicts.append(
                f"service {name!r}: the name is taken in Consul's catalog: "
                + "; ".join(map(str, snapshot.catalog[name])))
            continue
        holders = port_holders.get(spec.port) if spec is not None else None
        others = sorted(holder for holder in holders if holder != name) \
            if holders and holders != [name] else None
        if others:
            result.conflicts.append(
                f"service {name!r}: port {spec.port} is already the port of "
                + "; ".join(others))
            continue
        current = current_by_service.get(name, {})
        upserts, deletes = [], []
        for ref, body in wanted.items():
            old = current.get(ref)
            if old is None:
                upserts.append(Change(ref, CREATE, None, body))
            elif old != body:
                upserts.append(Change(ref, UPDATE, old, body))
        for ref, old in current.items():
            if ref in wanted:
                continue
            if ref.kind == VULCAND_SERVER and spec is not None and not prune_instances:
                continue
            deletes.append(Change(ref, DELETE, old, None))
        upserts.sort(key=lambda change: (KIND_ORDER.index(change.ref.kind), change.ref.key))
        deletes.sort(key=lambda change: (-KIND_ORDER.index(change.ref.kind), change.ref.key))
        result.steps += upserts + deletes
    return result


def _port_holders(desired, snapshot):
    """``{port: [who holds it]}``: the services of others anywhere in the cluster (the
    platform's own daemons among them), and the services of ``desired`` (two of them may
    not share a vulcand listener)."""
    holders = {}
    for name, entries in snapshot.catalog.items():
        for entry in entries:
            holders.setdefault(entry.port, []).append(f"{name} ({entry})")
    for name, spec in desired.items():
        if spec is not None:
            holders.setdefault(spec.port, []).append(name)
    return holders


# -- apply ------------------------------------------------------------------------------------


# The writes below need no reply: what they wrote is ``body``.
def _upsert_frontend(registries, ref, body):
    registries.vulcand.upsert("frontends", {
        "Id": ref.key, "Type": body["Type"], "BackendId": body["BackendId"],
        "Route": body["Route"], "Settings": {"Hostname": body["Hostname"]},
    }, reply=False)


def _upsert_listener(registries, ref, body):
    network, address = body["Address"].split("://", 1)
    registries.vulcand.upsert("listeners", {
        "Id": ref.key, "Protocol": body["Protocol"],
        "Address": {"Network": network, "Address": address},
    }, reply=False)


def _upsert_kong_route(registries, ref, body):
    route = {key: value for key, value in body.items() if key != "service"}
    registries.kong.upsert(f"services/{body['service']}/routes", ref.key,
                           {"name": ref.key, **route}, reply=False)


# Kind -> writer(registries, ref, body): the API call that makes the object look like body.
_UPSERTS = {
    CONSUL_SERVICE: lambda registries, ref, body: registries.consul.register_service(
        {"ID": ref.key, **body}),
    VULCAND_HOST: lambda registries, ref, body: registries.vulcand.upsert(
        "hosts", {"Name": ref.key, "Settings": {}}, reply=False),
    VULCAND_BACKEND: lambda registries, ref, body: registries.vulcand.upsert(
        "backends", {"Id": ref.key, **body}, reply=False),
    VULCAND_SERVER: lambda registries, ref, body: registries.vulcand.upsert_server(
        ref.service, {"Id": ref.key, **body}, reply=False),
    VULCAND_FRONTEND: _upsert_frontend,
    VULCAND_LISTENER: _upsert_listener,
    KONG_SERVICE: lambda registries, ref, body: registries.kong.upsert(
        "services", ref.key, {"name": ref.key, **body}, reply=False),
    KONG_ROUTE: _upsert_kong_route,
}

# Kind -> deleter(registries, ref).
_DELETES = {
    CONSUL_SERVICE: lambda registries, ref: registries.consul.deregister_service(ref.key),
    VULCAND_HOST: lambda registries, ref: registries.vulcand.delete("hosts", ref.key),
    VULCAND_BACKEND: lambda registries, ref: registries.vulcand.delete("backends", ref.key),
    VULCAND_SERVER: lambda registries, ref: registries.vulcand.delete_server(ref.service, ref.key),
    VULCAND_FRONTEND: lambda registries, ref: registries.vulcand.delete("frontends", ref.key),
    VULCAND_LISTENER: lambda registries, ref: registries.vulcand.delete("listeners", ref.key),
    KONG_SERVICE: lambda registries, ref: registries.kong.delete("services", ref.key),
    KONG_ROUTE: lambda registries, ref: registries.kong.delete("routes", ref.key),
}


def _write(registries, change):
    """Carry out one change."""
    if change.action == DELETE:
        _DELETES[change.ref.kind](registries, change.ref)
    else:
        _UPSERTS[change.ref.kind](registries, change.ref, change.new)


def dependencies(steps):
    """``{index: {indexes of the steps it waits for}}``: within a service, upserts wait for
    the upserts of their kind's ancestors, deletes for the deletes of their descendants."""
    by_service = {}
    for index, step in enumerate(steps):
        by_service.setdefault(step.ref.service, []).append(index)
    waits = {}
    for indexes in by_service.values():
        for index in indexes:
            step = steps[index]
            waits[index] = {
                other for other in indexes
                if other != index
                and (step.action == DELETE) == (steps[other].action == DELETE)
                and (steps[other].ref.kind in ANCESTORS[step.ref.kind] if step.action != DELETE
                     else step.ref.kind in ANCESTORS[steps[other].ref.kind])
            }
    return waits


@dataclass
class ApplyResult:
    """What :func:`apply` did: steps done, failed (with the error), skipped (with the cause)."""

    done: list = field(default_factory=list)
    failed: list = field(default_factory=list)  # [(Change, error message)]
    skipped: list = field(default_factory=list)  # [(Change, the failed Change it waited for)]

    @property
    def ok(self):
        return not self.failed and not self.skipped

    def changes(self):
        return changes_of(self.done)

    def errors(self):
        messages = [f"{change} failed: {error}" for change, error in self.failed]
        messages += [f"{change} not attempted: {cause} failed" for change, cause in self.skipped]
        return messages


# Which ready steps go first (lowest first): instances, then all the others.
_WRITE_RANK = {VULCAND_SERVER: 0}


def apply(plan_, registries, max_workers=DEFAULT_MAX_WORKERS, pool=None, on_service_done=None):
    """Carry out ``plan_``: independent steps concurrently (at most ``max_workers`` at once),
    each step after the ones it depends on; a failure skips its dependents.

    ``pool``: an executor with ``max_workers - 1`` threads to spare for the writes (by
    default, threads are started for this call); the caller's thread is always one writer.

    ``on_service_done(service, done)``: called (from a writing thread) as soon as every step
    of a service has been written, failed or been skipped, with the ones written, so that
    what one service's changes mean is known without waiting for the others'.

    Of the steps ready to go, instances (vulcand servers) go first: a task is what traffic
    waits for, and a burst of new services must not hold up a task of a service that is
    ready. Then the earliest in the plan, so that services are finished one after another
    (each routable as soon as it can be) instead of every service's first step first; it also
    keeps every registry busy at once rather than one after another.
    """
    steps = plan_.steps
    waits = dependencies(steps)
    dependents = {index: [] for index in waits}
    for index, needed in waits.items():
        for dependency in needed:
            dependents[dependency].append(index)
    unmet = {index: len(needed) for index, needed in waits.items()}
    order = {index: (_WRITE_RANK.get(step.ref.kind, 1), index) for index, step in enumerate(steps)}
    ready = [order[index] for index, count in unmet.items() if count == 0]
    heapq.heapify(ready)
    by_service = {}
    for index, step in enumerate(steps):
        by_service.setdefault(step.ref.service, []).append(index)
    open_steps = {service: len(indexes) for service, indexes in by_service.items()}
    done, result = set(), ApplyResult()
    state = threading.Condition()
    writing = [0]  # steps being written now
    crashed = []  # an exception that is no registry error: a bug, raised to the caller

    def skip(index, cause):
        # A step whose dependency failed is not attempted, nor is anything waiting for it.
        result.skipped.append((steps[index], steps[cause]))
        open_steps[steps[index].ref.service] -= 1
        for dependent in dependents[index]:
            if unmet[dependent] is not None:
                unmet[dependent] = None
                skip(dependent, cause)

    def finish(index, error):
        """Record a written (or failed) step and release what waited for it; under ``state``.
        Returns (steps released, the service's written steps when it has no more to go)."""
        service = steps[index].ref.service
        open_steps[service] -= 1
        released = 0
        if error is not None:
            result.failed.append((steps[index], error))
            for dependent in dependents[index]:
                if unmet[dependent] is not None:
                    unmet[dependent] = None
                    skip(dependent, index)
        else:
            done.add(index)
            for dependent in dependents[index]:
                if unmet[dependent] is None:
                    continue
                unmet[dependent] -= 1
                if unmet[dependent] == 0:
                    heapq.heappush(ready, order[dependent])
                    released += 1
        if open_steps[service]:
            return released, None
        return released, [steps[other] for other in by_service[service] if other in done]

    def work():
        # Each worker takes the next ready step itself: handing every step to a pool and its
        # completion back would cost more CPU than the write's own request.
        while True:
            with state:
                while not ready and writing[0] and not crashed:
                    state.wait()
                if not ready or crashed:
                    state.notify_all()  # nothing left to start: the others stop too
                    return
                _, index = heapq.heappop(ready)
                writing[0] += 1
            error = None
            try:
                _write(registries, steps[index])
            except CommandExecutionError as err:
                error = str(err)
            except Exception as err:  # pylint: disable=broad-except
                with state:
                    crashed.append(err)
                    writing[0] -= 1
                    state.notify_all()
                return
            with state:
                writing[0] -= 1
                released, service_done = finish(index, error)
                if released > 1:
                    state.notify(released - 1)  # this worker takes one itself
                elif not writing[0] and not ready:
                    state.notify_all()
            if service_done is not None and on_service_done is not None:
                on_service_done(steps[index].ref.service, service_done)

    helpers = min(max_workers, len(steps)) - 1  # a one-step plan needs no thread
    with _executor(pool, max(1, helpers)) as executor:
        running = [executor.submit(work) for _ in range(helpers)]
        work()
        for helper in running:
            helper.result()
    if crashed:
        raise crashed[0]
    result.done = [step for index, step in enumerate(steps) if index in done]
    return result


# -- converge ---------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What :func:`converge` found and did."""

    plan: Plan
    applied: ApplyResult = None  # None in test mode or when there was nothing to do
    remaining: Plan = None  # the plan re-computed after applying; empty when converged

    @property
    def result(self):
        """Salt's state result: True, None (test mode with changes) or False."""
        if self.plan.conflicts:
            return False
        if self.applied is None:
            return None if self.plan else True
        return self.applied.ok and not self.remaining

    def changes(self):
        if self.applied is None:
            return self.plan.changes() if not self.plan.conflicts else {}
        return self.applied.changes()

    def comment(self):
        if self.plan.conflicts:
            return "Nothing was changed. " + " ".join(self.plan.conflicts)
        if not self.plan:
            return "All registrations are in the correct state"
        services = ", ".join(self.plan.services())
        if self.applied is None:
            return f"{len(self.plan.steps)} registration changes would be made ({services})"
        if not self.result:
            lines = [f"Registration of {services} failed after {len(self.applied.done)} of "
                     f"{len(self.plan.steps)} changes; the next run converges the rest."]
            lines += self.applied.errors()
            if self.applied.ok and self.remaining:
                lines.append("Still differing after apply: "
                             + ", ".join(str(step) for step in self.remaining.steps))
            return "\n".join(lines)
        return f"{len(self.applied.done)} registration changes made ({services})"


def converge(registries, owner, desired, prune_instances=True, test=False,
             max_workers=DEFAULT_MAX_WORKERS):
    """Read, plan, and unless ``test`` apply and re-read, for the services in ``desired``."""
    names = set(desired)
    snapshot = read_snapshot(registries, owner, names=names, max_workers=max_workers)
    planned = plan(desired, snapshot, owner, prune_instances=prune_instances)
    outcome = Outcome(planned)
    if test or not planned or planned.conflicts:
        return outcome
    outcome.applied = apply(planned, registries, max_workers=max_workers)
    if outcome.applied.ok:
        after = read_snapshot(registries, owner, names=names, max_workers=max_workers)
        outcome.remaining = plan(desired, after, owner, prune_instances=prune_instances)
    return outcome


# -- configuration ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Settings:
    """What a front door needs: the API clients, its owner mark, the default domain and the
    platform's rules for service names and ports."""

    registries: Registries
    owner: Owner
    domain: str
    rules: validationutil.PlatformRules


def settings_values(config_get):
    """``{key: value}`` of :data:`SETTINGS` from ``config_get(key, default)``."""
    values = {key: config_get(key, default) for key, default in SETTINGS.items()}
    # A key set to nothing (``url:`` in YAML) takes the default; "" is a value, e.g. no etcd.
    return {key: SETTINGS[key] if value is None else value for key, value in values.items()}


def configured_registries(config_get, cache=None):
    """The :class:`Registries` for ``config_get(key, default)`` (``config.get``).

    :param cache: a dict (Salt's ``__context__``) in which the clients, and so their HTTP
        sessions, are kept for as long as the configuration does not change
    """
    values = settings_values(config_get)
    cache = {} if cache is None else cache
    key = ("registrationutil.registries", tuple(map(str, values.values())))
    if key not in cache:
        cache[key] = Registries.from_config(lambda name, default: values[name])
    return cache[key]


def configured(config_get, source, cache=None):
    """:class:`Settings` for the front door ``source`` from ``config_get(key, default)``."""
    values = settings_values(config_get)
    return Settings(
        registries=configured_registries(config_get, cache),
        owner=Owner(values["platform:cluster"], source),
        domain=validationutil.domain(values["platform:domain"], "platform:domain"),
        rules=validationutil.PlatformRules(
            validationutil.PortRange.parse(values["platform:listener_ports"])),
    )


def specs_from_pillar(services, settings, domain=None, only=None, path="services"):
    """``{name: ServiceSpec or None}`` from the pillar ``services`` mapping (see pillar.example),
    all of it checked before anything is read or written.

    :param settings: the front door's :class:`Settings` (rules, domain; the Marathon client for
        ``marathon_app`` entries, whose running, healthy tasks are instances)
    :param domain: the services' domain (default: the platform's)
    :param only: names to keep (all when empty); an unknown name is an error
    :param path: the key path of ``services`` in error messages
    """
    entries = validationutil.pillar_services(services, settings.rules, path)
    names = sorted(entries) if not only else list(only)
    unknown = [name for name in names if name not in entries]
    if unknown:
        raise SaltInvocationError(
            f"unknown service(s) {', '.join(map(repr, unknown))}: not in pillar services "
            f"(known: {', '.join(sorted(entries)) or 'none'})")
    desired = {}
    for name in names:
        entry = entries[name]
        if entry.get("absent"):
            desired[name] = None
            continue
        instances = dict(entry["instances"])
        if "marathon_app" in entry:
            if settings.registries.marathon is None:
                raise validationutil.Invalid(
                    f"{path}:{name}:marathon_app", "needs the Marathon URL (platform:marathon:url)")
            app = settings.registries.marathon.get_app(entry["marathon_app"])
            instances.update(marathonutil.instances_from_app(app))
        desired[name] = ServiceSpec(name=name, port=entry["port"],
                                    domain=domain or settings.domain, instances=instances,
                                    gateway=entry["gateway"])
    return desired
