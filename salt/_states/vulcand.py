"""
vulcand v2 objects as idempotent states: hosts, backends, frontends and listeners, and the
servers of a backend.

Only the fields given are managed: an update writes them over what vulcand holds and keeps the
rest, and the settings vulcand fills in never show as drift (nested mappings such as
``Settings`` are compared on the given keys only).

Ownership: vulcand objects carry no metadata, so they follow the rule of the registration core
(``registrationutil``): a backend, frontend or listener belongs to whoever owns the Consul
service of the same name, a server to the owner of its backend, and a host to the owner of a
frontend whose ``Settings.Hostname`` names it. These states write and delete only objects whose
owner is this state's mark (``platform:cluster``, source ``state``, the mark of
``consul.service_registered``): register the Consul service first and deregister it last, and
create a host after the frontend naming it.

.. code-block:: yaml

    Consul service web is registered:
      consul.service_registered:
        - name: web
        - port: 10000

    vulcand backend web is present:
      vulcand.object_present:
        - name: web
        - collection: backends
        - fields: {Type: http}
        - require:
          - consul: Consul service web is registered

    vulcand server web1 serves web:
      vulcand.server_present:
        - name: web1
        - backend: web
        - url: http://10.0.12.223:53769
        - require:
          - vulcand: vulcand backend web is present

    vulcand frontend web is present:
      vulcand.object_present:
        - name: web
        - collection: frontends
        - fields:
            Type: http
            BackendId: web
            Route: Host("web.service.consul") && PathRegexp("/.*")
            Settings: {Hostname: web.service.consul}
        - require:
          - vulcand: vulcand backend web is present

    vulcand host web.service.consul is present:
      vulcand.object_present:
        - name: web.service.consul
        - collection: hosts
        - require:
          - vulcand: vulcand frontend web is present

    vulcand listener web is present:
      vulcand.object_present:
        - name: web
        - collection: listeners
        - fields:
            Protocol: http
            Address: {Network: tcp, Address: "0.0.0.0:10000"}
        - require:
          - consul: Consul service web is registered

``changes`` are ``{field: {"old", "new"}}`` for an update, ``{"old": None, "new": {...}}``
for a creation and ``{"old": {...}, "new": None}`` for a deletion, the same in test mode as in
a real run.

:configuration: ``platform:vulcand:url``, ``platform:consul:url``, ``platform:consul:token``
    and ``platform:cluster``, read with ``config.get``.

.. versionadded:: 0.1.0
"""

import registrationutil
import statediffutil
from apiclientutil import VULCAND_COLLECTIONS
from httpclientutil import NotFoundError
from salt.exceptions import SaltInvocationError

__virtualname__ = "vulcand"

SOURCE = "state"
# The field holding an object's id, per collection (hosts are known by their name).
ID_FIELDS = {collection: "Id" for collection in VULCAND_COLLECTIONS}
ID_FIELDS["hosts"] = "Name"


def __virtual__():
    return __virtualname__


def _settings():
    return registrationutil.configured(__salt__["config.get"], SOURCE, __context__)


def _consul_owner(settings, service):
    """Why an object owned through the Consul service ``service`` is not ours, or None."""
    try:
        consul_service = settings.registries.consul.get_service(service)
    except NotFoundError:
        return (f"would belong to the owner of Consul service {service}, which is not "
                "registered (register it first)")
    if settings.owner.owns_consul_service(consul_service):
        return None
    return (f"belongs to the owner of Consul service {service}, which is "
            f"{registrationutil.describe_consul_owner(consul_service)}")


def _host_owner(settings, hostname):
    """Why the host ``hostname`` is not ours, or None when a frontend of ours names it."""
    frontends = [frontend["Id"] for frontend in settings.registries.vulcand.list("frontends")
                 if (frontend.get("Settings") or {}).get("Hostname") == hostname]
    if not frontends:
        return ("would belong to the owner of a frontend naming it, and there is none "
                "(create the frontend first)")
    reasons = [_consul_owner(settings, frontend) for frontend in frontends]
    if None in reasons:
        return None
    return "is named by no frontend of ours: " + "; ".join(
        f"frontend {frontend} {reason}" for frontend, reason in zip(frontends, reasons))


def _object_target(name, collection, fields=None):
    if collection not in ID_FIELDS:
        raise SaltInvocationError(f"unknown vulcand collection {collection!r} (expected one "
                                  f"of {', '.join(sorted(ID_FIELDS))})")
    settings = _settings()
    vulcand = settings.registries.vulcand
    id_field = ID_FIELDS[collection]
    what = f"vulcand {collection[:-1]} {name}"

    def foreign(current):
        if collection == "hosts":
            return _host_owner(settings, name)
        return _consul_owner(settings, name)

    return statediffutil.Target(
        what=what,
        read=lambda: vulcand.get(collection, name),
        foreign=foreign,
        wanted=dict(fields or {}),
        write=lambda current: vulcand.upsert(
            collection, statediffutil.merged(current, {**(fields or {}), id_field: name})),
        delete=lambda current: vulcand.delete(collection, name),
    )


def _server_target(name, backend, url=None):
    settings = _settings()
    vulcand = settings.registries.vulcand
    what = f"vulcand server {backend}/{name}"

    def read():
        for server in vulcand.list_servers(backend):
            if server.get("Id") == name:
                return server
        return None

    return statediffutil.Target(
        what=what,
        read=read,
        foreign=lambda current: _consul_owner(settings, backend),
        wanted={"URL": url},
        write=lambda current: vulcand.upsert_server(backend, {"Id": name, "URL": url}),
        delete=lambda current: vulcand.delete_server(backend, name),
    )


def object_present(name, collection, fields=None):
    """
    The vulcand object ``name`` of ``collection`` exists with ``fields``.

    name
        The object's id (a host's name)
    collection
        ``hosts``, ``backends``, ``frontends`` or ``listeners``
    fields
        The object's fields without its id, e.g. ``{Type: http}`` for a backend
    """
    return statediffutil.present(
        name, lambda: _object_target(name, collection, fields), __opts__["test"])


def object_absent(name, collection):
    """
    The vulcand object ``name`` of ``collection`` does not exist (only one of ours is deleted).

    name
        The object's id (a host's name)
    collection
        ``hosts``, ``backends``, ``frontends`` or ``listeners``
    """
    return statediffutil.absent(
        name, lambda: _object_target(name, collection), __opts__["test"])


def server_present(name, backend, url):
    """
    The server ``name`` of the vulcand backend ``backend`` sends traffic to ``url``.

    name
        The server id
    backend
        The backend's id
    url
        Where the server is, e.g. ``http://10.0.12.223:53769``
    """
    return statediffutil.present(
        name, lambda: _server_target(name, backend, url), __opts__["test"])


def server_absent(name, backend):
    """
    The server ``name`` of the vulcand backend ``backend`` does not exist (only a server of a
    backend of ours is deleted).

    name
        The server id
    backend
        The backend's id
    """
    return statediffutil.absent(name, lambda: _server_target(name, backend), __opts__["test"])
