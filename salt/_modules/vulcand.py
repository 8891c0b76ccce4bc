"""
vulcand v2 API objects: hosts, backends and their servers, frontends, listeners.

A thin layer over the project's vulcand client (``apiclientutil.VulcandAPI``); microservice
registrations go through the ``microservice`` module, which keeps ownership.

:configuration: ``platform:vulcand:url``, read with ``config.get``.

.. versionadded:: 0.1.0
"""

import registrationutil
import salt.utils.args

__virtualname__ = "vulcand"


def __virtual__():
    return __virtualname__


def _vulcand():
    registries = registrationutil.configured_registries(__salt__["config.get"], __context__)
    return registries.vulcand


def list_objects(collection):
    """
    Every object of a collection.

    collection
        ``hosts``, ``backends``, ``frontends`` or ``listeners``

    CLI Example:

    .. code-block:: bash

        salt kong vulcand.list_objects frontends
    """
    return _vulcand().list(collection)


def get_object(collection, key):
    """
    One object by id (hosts: by name). Raises an error naming the URL when it does not exist.

    collection
        ``hosts``, ``backends``, ``frontends`` or ``listeners``
    key
        The object's id or host name

    CLI Example:

    .. code-block:: bash

        salt kong vulcand.get_object backends web
    """
    return _vulcand().get(collection, key)


def upsert_object(collection, **fields):
    """
    Create or replace an object by its ``Id`` (hosts: ``Name``); returns it.

    collection
        ``hosts``, ``backends``, ``frontends`` or ``listeners``
    fields
        The object, as vulcand's API spells it (``Id``, ``Type``, ``Route``, ``BackendId``...)

    CLI Example:

    .. code-block:: bash

        salt kong vulcand.upsert_object backends Id=web Type=http
    """
    return _vulcand().upsert(collection, salt.utils.args.clean_kwargs(**fields))


def delete_object(collection, key):
    """
    Delete an object (a backend or frontend with everything under it). Returns whether it
    existed.

    collection
        ``hosts``, ``backends``, ``frontends`` or ``listeners``
    key
        The object's id or host name

    CLI Example:

    .. code-block:: bash

        salt kong vulcand.delete_object frontends web
    """
    return _vulcand().delete(collection, key)


def list_servers(backend_id):
    """
    The servers of a backend.

    backend_id
        The backend's id

    CLI Example:

    .. code-block:: bash

        salt kong vulcand.list_servers web
    """
    return _vulcand().list_servers(backend_id)


def upsert_server(backend_id, server_id, url):
    """
    Create or replace a server of a backend; returns it.

    backend_id
        The backend's id
    server_id
        The server's id
    url
        Where the server listens, e.g. ``http://10.0.12.223:53769``

    CLI Example:

    .. code-block:: bash

        salt kong vulcand.upsert_server web web1 http://10.0.12.223:53769
    """
    return _vulcand().upsert_server(backend_id, {"Id": server_id, "URL": url})


def delete_server(backend_id, server_id):
    """
    Delete a server of a backend. Returns whether it existed.

    backend_id
        The backend's id
    server_id
        The server's id

    CLI Example:

    .. code-block:: bash

        salt kong vulcand.delete_server web web1
    """
    return _vulcand().delete_server(backend_id, server_id)
