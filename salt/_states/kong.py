"""
Kong 3.x Admin API entities as idempotent states (services, routes, plugins, consumers,
credentials): what the ``gateway`` SLS uses to expose the Mesos and Marathon UIs.

Each entity is addressed by its collection and endpoint key (a service or route name, a
plugin's ``instance_name``, a consumer's username, a basic-auth username) and written with PUT,
so it carries exactly the given fields plus the ownership tags of this cluster (source
``gateway``). An entity of the same key without those tags is never taken over.

.. code-block:: yaml

    Kong service mesos is present:
      kong.entity_present:
        - name: mesos
        - collection: services
        - fields:
            url: http://mesos.service.consul:5050

    Kong route mesos requires basic-auth:
      kong.entity_present:
        - name: mesos-basic-auth
        - collection: routes/mesos/plugins
        - fields:
            name: basic-auth
            config: {hide_credentials: true}

:configuration: ``platform:kong:admin_url`` and ``platform:cluster``, read with ``config.get``.

.. versionadded:: 0.1.0
"""

import urllib.parse

import registrationutil
from httpclientutil import NotFoundError
from salt.exceptions import CommandExecutionError, SaltInvocationError

__virtualname__ = "kong"

SOURCE = "gateway"
DEFAULT_PORTS = {"http": 80, "https": 443}


def __virtual__():
    return __virtualname__


def _settings():
    return registrationutil.configured(__salt__["config.get"], SOURCE, __context__)


def _expand_url(fields):
    """Kong's write-only ``url`` shorthand, as the protocol/host/port/path Kong stores."""
    if "url" not in fields:
        return dict(fields)
    fields = dict(fields)
    url = urllib.parse.urlsplit(fields.pop("url"))
    fields.update(protocol=url.scheme, host=url.hostname,
                  port=url.port or DEFAULT_PORTS.get(url.scheme), path=url.path or None)
    return fields


def _differences(current, wanted):
    """``{field: {"old", "new"}}`` for the ``wanted`` fields ``current`` does not match; nested
    mappings (plugin ``config``) are compared on the given keys only, since Kong fills in
    defaults."""
    changes = {}
    for key, value in wanted.items():
        old = current.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            nested = _differences(old, value)
            if nested:
                changes[key] = {"old": {k: old.get(k) for k in nested}, "new": {
                    k: value[k] for k in nested}}
        elif old != value:
            changes[key] = {"old": old, "new": value}
    return changes


def _refuse_foreign(entity, owner, what):
    if not owner.owns_kong_entity(entity):
        raise CommandExecutionError(
            f"{what} exists and is {registrationutil.describe_kong_owner(entity)}: "
            "refusing to take it over"
        )


def entity_present(name, collection, fields=None, secret_fields=None):
    """
    The entity ``name`` of ``collection`` exists with ``fields``.

    name
        The entity's endpoint key: a service or route name, a plugin's ``instance_name``, a
        consumer's username, a basic-auth credential's username...
    collection
        The collection path, e.g. ``services``, ``services/mesos/routes``,
        ``routes/mesos/plugins``, ``consumers/ops/basic-auth``
    fields
        The entity's fields (without ``tags``: the ownership tags are added)
    secret_fields
        Fields sent when the entity is created but never compared nor reported, because Kong
        does not return them as given (a basic-auth ``password`` is stored hashed)
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    what = f"Kong {collection}/{name}"
    secret_fields = set(secret_fields or ())
    try:
        settings = _settings()
        kong = settings.registries.kong
        wanted = {**_expand_url(fields or {}), "tags": settings.owner.kong_tags}
        try:
            current = kong.get(collection, name)
        except NotFoundError:
            current = None
        compared = {key: value for key, value in wanted.items() if key not in secret_fields}
        if current is None:
            changes = {"old": None, "new": compared}
        else:
            _refuse_foreign(current, settings.owner, what)
            current = {**current, "tags": sorted(current.get("tags") or [])}
            changes = _differences(current, compared)
        if not changes:
            ret["comment"] = f"{what} is in the correct state"
            return ret
        ret["changes"] = changes
        if __opts__["test"]:
            ret.update(result=None, comment=f"{what} would be {_verb(current)}")
            return ret
        kong.upsert(collection, name, {**(fields or {}), "tags": settings.owner.kong_tags})
        ret["comment"] = f"{what} has been {_verb(current)}"
    except (CommandExecutionError, SaltInvocationError) as err:
        ret.update(result=False, changes={}, comment=str(err))
    return ret


def _verb(current):
    return "created" if current is None else "updated"


def entity_absent(name, collection):
    """
    The entity ``name`` of ``collection`` does not exist (only one this cluster's gateway
    created is deleted).

    name
        The entity's endpoint key
    collection
        The collection path, e.g. ``services``
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    what = f"Kong {collection}/{name}"
    try:
        settings = _settings()
        kong = settings.registries.kong
        try:
            current = kong.get(collection, name)
        except NotFoundError:
            ret["comment"] = f"{what} is already absent"
            return ret
        _refuse_foreign(current, settings.owner, what)
        ret["changes"] = {"deleted": name}
        if __opts__["test"]:
            ret.update(result=None, comment=f"{what} would be deleted")
            return ret
        kong.delete(collection, name)
        ret["comment"] = f"{what} has been deleted"
    except (CommandExecutionError, SaltInvocationError) as err:
        ret.update(result=False, changes={}, comment=str(err))
    return ret
