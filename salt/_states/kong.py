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

import hashlib
import urllib.parse

import registrationutil
import statediffutil

__virtualname__ = "kong"

SOURCE = "gateway"
DEFAULT_PORTS = {"http": 80, "https": 443}
# How a secret field is reported: the value given, some other value, or (with nothing to
# compare it to) hidden; never the value, nor the form Kong stores.
SECRET_AS_GIVEN = "<as given>"
SECRET_OTHER = "<another value>"
SECRET_HIDDEN = "<hidden>"


def _basic_auth_hash(password, credential):
    """What Kong stores for a basic-auth password: sha1 of the password followed by the
    consumer's id, in hex (the basic-auth plugin's crypto module)."""
    return hashlib.sha1((password + credential["consumer"]["id"]).encode()).hexdigest()


# (last segment of the collection, field) -> stored form of a value, from the value and the entity.
STORED_SECRETS = {
    ("basic-auth", "password"): _basic_auth_hash,
    ("key-auth", "key"): lambda key, credential: key,  # Kong keeps API keys as they are
}


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


def _target(name, collection, fields, secret_fields=()):
    """The :class:`statediffutil.Target` of the entity ``name`` of ``collection``.

    A secret field is compared through the form Kong stores it in where that is known
    (:data:`STORED_SECRETS`: a changed basic-auth password is rewritten) and reported only as
    "as given", "another value" or "hidden"; other secret fields are written on creation only.
    """
    settings = _settings()
    kong, owner = settings.registries.kong, settings.owner
    fields = fields or {}
    kind = collection.rsplit("/", 1)[-1]
    stored_secrets = {field: form for (of, field), form in STORED_SECRETS.items() if of == kind}
    comparable = {field for field in secret_fields if field in stored_secrets and field in fields}
    wanted = {**_expand_url(fields), "tags": owner.kong_tags}
    wanted = {key: value for key, value in wanted.items() if key not in set(secret_fields)}
    wanted.update({field: SECRET_AS_GIVEN for field in comparable})

    def read():
        entity = kong.get(collection, name)
        for field, stored_form in stored_secrets.items():
            if field not in entity:
                continue
            if field not in comparable:
                entity[field] = SECRET_HIDDEN
            elif entity[field] == stored_form(fields[field], entity):
                entity[field] = SECRET_AS_GIVEN
            else:
                entity[field] = SECRET_OTHER
        return {**entity, "tags": sorted(entity.get("tags") or [])}

    def foreign(entity):
        if entity is None or owner.owns_kong_entity(entity):
            return None
        return f"exists and is {registrationutil.describe_kong_owner(entity)}"

    return statediffutil.Target(
        what=f"Kong {collection}/{name}",
        read=read,
        foreign=foreign,
        wanted=wanted,
        write=lambda current: kong.upsert(collection, name, {**fields, "tags": owner.kong_tags}),
        delete=lambda current: kong.delete(collection, name),
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
        Fields never reported as they are. A basic-auth ``password`` (stored hashed) is compared
        through Kong's hash and a key-auth ``key`` as Kong keeps it, so a changed one is
        rewritten; other secret fields are sent when the entity is created only. Name a
        credential whose endpoint key is its secret (key-auth) by an id (a UUID) instead.
    """
    return statediffutil.present(
        name, lambda: _target(name, collection, fields, secret_fields or ()), __opts__["test"])


def entity_absent(name, collection):
    """
    The entity ``name`` of ``collection`` does not exist (only one this cluster's gateway
    created is deleted).

    name
        The entity's endpoint key
    collection
        The collection path, e.g. ``services``
    """
    return statediffutil.absent(
        name, lambda: _target(name, collection, fields=None), __opts__["test"])
