"""
Kong 3.x Admin API entities (services, routes, plugins, consumers, ...).

A thin layer over the project's Kong client (``apiclientutil.KongAPI``); microservice
registrations go through the ``microservice`` module, which keeps ownership marks.

:configuration: ``platform:kong:admin_url``, read with ``config.get``.

.. versionadded:: 0.1.0
"""

import registrationutil
import salt.utils.args

__virtualname__ = "kong"


def __virtual__():
    return __virtualname__


def _kong():
    registries = registrationutil.configured_registries(__salt__["config.get"], __context__)
    return registries.kong


def list_entities(collection, tags=None):
    """
    Every entity of a collection, through all pages.

    collection
        The collection path: ``services``, ``routes``, ``services/web/routes``, ``consumers``...
    tags
        Kong's tag filter: ``a,b`` (all of) or ``a/b`` (any of)

    CLI Example:

    .. code-block:: bash

        salt kong kong.list_entities services tags=managed-by:salt
    """
    return _kong().list(collection, tags=tags)


def get_entity(collection, key):
    """
    One entity by name (or id). Raises an error naming the URL when it does not exist.

    collection
        The collection path, e.g. ``services``
    key
        The entity's name (username for consumers) or id

    CLI Example:

    .. code-block:: bash

        salt kong kong.get_entity services web
    """
    return _kong().get(collection, key)


def upsert_entity(collection, key, **fields):
    """
    Create or replace (wholesale, as Kong's PUT does) an entity by name or id; returns it.

    collection
        The collection path, e.g. ``services`` or ``services/web/routes``
    key
        The entity's name or id
    fields
        The entity's fields

    CLI Example:

    .. code-block:: bash

        salt kong kong.upsert_entity services web url=http://vulcand.service.consul:10000
    """
    return _kong().upsert(collection, key, salt.utils.args.clean_kwargs(**fields))


def delete_entity(collection, key):
    """
    Delete an entity (Kong answers the same whether it existed or not). Returns True.

    collection
        The collection path, e.g. ``routes``
    key
        The entity's name or id

    CLI Example:

    .. code-block:: bash

        salt kong kong.delete_entity routes web
    """
    _kong().delete(collection, key)
    return True
