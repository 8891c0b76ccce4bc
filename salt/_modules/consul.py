"""
Consul agent services, through the Consul HTTP API.

A thin layer over the project's Consul client (``apiclientutil.ConsulAPI``); registrations of
microservices go through the ``microservice`` module instead, which keeps ownership marks.

:configuration: ``platform:consul:url`` and ``platform:consul:token`` (sent as
    ``X-Consul-Token``), read with ``config.get``.

.. versionadded:: 0.1.0
"""

import registrationutil

__virtualname__ = "consul"


def __virtual__():
    return __virtualname__


def _consul():
    registries = registrationutil.configured_registries(__salt__["config.get"], __context__)
    return registries.consul


def list_services():
    """
    Every service registered on the agent: ``{service_id: definition}``.

    CLI Example:

    .. code-block:: bash

        salt kong consul.list_services
    """
    return _consul().list_services()


def get_service(service_id):
    """
    One service of the agent, by id. Raises an error naming the URL when it does not exist.

    service_id
        The service ID

    CLI Example:

    .. code-block:: bash

        salt kong consul.get_service web
    """
    return _consul().get_service(service_id)


def register_service(name, port, service_id=None, address=None, tags=None, meta=None):
    """
    Register (or replace) a service on the agent. Returns True.

    name
        The service name
    port
        The service port
    service_id
        The service ID (default: ``name``)
    address
        The service address (default: the agent's node address)
    tags
        A list of tags
    meta
        A mapping of metadata

    CLI Example:

    .. code-block:: bash

        salt kong consul.register_service web 10000 tags='[v1]'
    """
    definition = {"ID": service_id or name, "Name": name, "Port": port,
                  "Tags": list(tags or []), "Meta": dict(meta or {})}
    if address:
        definition["Address"] = address
    _consul().register_service(definition)
    return True


def deregister_service(service_id):
    """
    Deregister a service from the agent. Returns whether it existed.

    service_id
        The service ID

    CLI Example:

    .. code-block:: bash

        salt kong consul.deregister_service web
    """
    return _consul().deregister_service(service_id)
