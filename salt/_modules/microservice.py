"""
Register microservices into vulcand, Consul and Kong, idempotently.

The functions mirror the showcase's helper scripts (``register-service``, ``register-instance``,
``deregister-instance``, ``deregister-service``), but each one reads what exists, plans the
difference and writes only that, through the registration core (``registrationutil``) that the
``microservice`` states and the Marathon engine use too. Calling one twice changes nothing the
second time.

Objects are marked as registered by this cluster (``platform:cluster``) from the source
``pillar``; objects of the same name that carry another mark, or none, are never taken over.

:configuration: read with ``config.get`` (minion config, then pillar):

    .. code-block:: yaml

        platform:
          domain: service.consul
          cluster: showcase
          consul: {url: http://consul.service.consul:8500, token: ''}
          vulcand: {url: http://vulcand.service.consul:8182}
          kong: {admin_url: http://kong.service.consul:8001}
          marathon: {url: http://marathon.service.consul:8080}

.. versionadded:: 0.1.0
"""

import dataclasses
import uuid

import registrationutil
import salt.utils.data
import validationutil
from salt.exceptions import CommandExecutionError

__virtualname__ = "microservice"

SOURCE = "pillar"
GATEWAY_SOURCE = "gateway"


def __virtual__():
    return __virtualname__


def _settings():
    return registrationutil.configured(__salt__["config.get"], SOURCE, __context__)


def _run(desired, prune_instances=True):
    settings = _settings()
    outcome = registrationutil.converge(
        settings.registries, settings.owner, desired, prune_instances=prune_instances
    )
    if outcome.result is False:
        raise CommandExecutionError(outcome.comment(), info={"changes": outcome.changes()})
    return outcome.changes()


def _domain(domain, settings):
    return settings.domain if domain is None else validationutil.domain(domain, "domain")


def _registered_spec(service, domain):
    settings = _settings()
    validationutil.dns_label(service, "service")
    snapshot = registrationutil.read_snapshot(settings.registries, settings.owner,
                                              names={service})
    spec = snapshot.spec(service, _domain(domain, settings))
    if spec is None:
        raise CommandExecutionError(
            f"service {service!r} is not registered by {settings.owner}: "
            "run microservice.register_service first"
        )
    return spec


def register_service(name, port, domain=None, gateway=True):
    """
    Register service ``name`` on ``port``: vulcand host ``<name>.<domain>``, backend, frontend
    and listener ``0.0.0.0:<port>``; Consul service ``name``; Kong service and route (unless
    ``gateway`` is False). Existing instances are kept. Returns the changes made.

    name
        The service name (a DNS label)
    port
        The service port: vulcand's listener and Consul's service port
    domain
        Domain of the service's host name (default: ``platform:domain``)
    gateway
        Whether Kong routes ``<name>.<domain>`` to the service

    CLI Example:

    .. code-block:: bash

        salt kong microservice.register_service web 10000
    """
    settings = _settings()
    spec = registrationutil.ServiceSpec(
        name=settings.rules.service_name(name, "name"),
        port=settings.rules.service_port(port, "port"),
        domain=_domain(domain, settings),
        gateway=validationutil.boolean(gateway, "gateway"),
    )
    return _run({name: spec}, prune_instances=False)


def register_instance(service, instance_id, address, port, domain=None):
    """
    Register instance ``instance_id`` of ``service`` as vulcand server
    ``http://<address>:<port>``. The service must be registered. Returns the changes made.

    service
        The service name
    instance_id
        The instance id (letters, digits, ``.``, ``_``, ``-``)
    address
        The instance's IP address or host name
    port
        The instance's port
    domain
        Domain of the service's host name (default: ``platform:domain``)

    CLI Example:

    .. code-block:: bash

        salt kong microservice.register_instance web web1 10.0.12.223 53769
    """
    instance = (validationutil.address(address, "address"), validationutil.port(port, "port"))
    validationutil.identifier(instance_id, "instance_id")
    spec = _registered_spec(service, domain)
    instances = {**spec.instances, instance_id: instance}
    return _run({service: dataclasses.replace(spec, instances=instances)}, prune_instances=False)


def deregister_instance(service, instance_id, domain=None):
    """
    Remove instance ``instance_id`` from ``service``. Returns the changes made (none when the
    instance is not registered).

    service
        The service name
    instance_id
        The instance id
    domain
        Domain of the service's host name (default: ``platform:domain``)

    CLI Example:

    .. code-block:: bash

        salt kong microservice.deregister_instance web web1
    """
    validationutil.identifier(instance_id, "instance_id")
    spec = _registered_spec(service, domain)
    instances = {key: value for key, value in spec.instances.items() if key != instance_id}
    return _run({service: dataclasses.replace(spec, instances=instances)})


def deregister_service(name):
    """
    Remove service ``name`` from Kong, vulcand (with its instances) and Consul, if this
    cluster registered it. Returns the changes made.

    name
        The service name

    CLI Example:

    .. code-block:: bash

        salt kong microservice.deregister_service web
    """
    return _run({validationutil.dns_label(name, "name"): None})


def plan(service=None):
    """
    What applying the pillar ``services`` would change, without changing anything.

    service
        Only this service (default: every service in pillar)

    CLI Example:

    .. code-block:: bash

        salt kong microservice.plan
        salt kong microservice.plan web
    """
    settings = _settings()
    # Read from the minion's pillar itself: since Salt 3008, pillar.get called from a module
    # returns every value masked ("**********") outside a template render.
    services = salt.utils.data.traverse_dict_and_list(__pillar__, "services", {})
    desired = registrationutil.specs_from_pillar(
        services, settings, only=[validationutil.dns_label(service, "service")] if service
        else None)
    outcome = registrationutil.converge(settings.registries, settings.owner, desired, test=True)
    if outcome.plan.conflicts:
        raise CommandExecutionError(outcome.comment())
    return outcome.changes()


def gateway_settings():
    """
    The pillar ``gateway`` (the Mesos and Marathon UIs behind Kong), checked whole, with its
    defaults, for the ``gateway`` SLS: ``{auth, uis: {name: port}, consumers: {name:
    credential id}}``. The credentials themselves are left out; the id names a consumer's
    key-auth credential in Kong, so that no key ever becomes a state's name.

    CLI Example:

    .. code-block:: bash

        salt kong microservice.gateway_settings
    """
    gateway = validationutil.pillar_gateway(
        salt.utils.data.traverse_dict_and_list(__pillar__, "gateway", {}))
    owner = registrationutil.configured(__salt__["config.get"], GATEWAY_SOURCE,
                                        __context__).owner
    return {
        "auth": gateway["auth"],
        "uis": gateway["uis"],
        "consumers": {
            name: str(uuid.uuid5(uuid.NAMESPACE_URL, f"salt:{owner}/{name}/{gateway['auth']}"))
            for name in gateway["consumers"]
        },
    }
