"""
Microservice registrations (vulcand, Consul, Kong) as idempotent states.

Every state reads what the registries hold (one listing per object type), plans the difference
with the registration core (``registrationutil``), and writes only that. ``test=True`` reports
exactly the changes a real run would make and writes nothing. The changes are reported per
service and object, e.g. ``web: {"vulcand server web/web1": {"old": None, "new": {...}}}``.

Connection settings come from ``config.get`` (``platform:`` in the minion config or pillar; see
the ``microservice`` execution module). Only objects this cluster registered from pillar are
changed or deleted; a name that someone else holds is refused, with nothing written.

.. code-block:: yaml

    Pillar microservices are registered:
      microservice.converged:
        - services: {{ pillar.get('services', {}) | json }}

    web is registered:
      microservice.registered:
        - name: web
        - port: 10000
        - instances:
            web1: {address: 10.0.12.223, port: 53769}

    old is not registered:
      microservice.absent:
        - name: old

.. versionadded:: 0.1.0
"""

import registrationutil
import validationutil
from salt.exceptions import CommandExecutionError, SaltInvocationError

__virtualname__ = "microservice"

SOURCE = "pillar"


def __virtual__():
    return __virtualname__


def _converge(name, desired_of_settings, prune_instances=True):
    """Run the registration core for the specs ``desired_of_settings(settings)`` returns."""
    ret = {"name": name, "result": False, "changes": {}, "comment": ""}
    try:
        settings = registrationutil.configured(__salt__["config.get"], SOURCE, __context__)
        desired = desired_of_settings(settings)
        outcome = registrationutil.converge(
            settings.registries, settings.owner, desired,
            prune_instances=prune_instances, test=__opts__["test"],
        )
    except (CommandExecutionError, SaltInvocationError) as err:
        ret["comment"] = str(err)
        return ret
    ret.update(result=outcome.result, changes=outcome.changes(), comment=outcome.comment())
    return ret


def converged(name, services, only=None, deregister=False):
    """
    Make the registrations of every service in ``services`` (the pillar ``services`` mapping)
    match it, in one pass: one listing per object type whatever the number of services.

    name
        A label for the state
    services
        ``{name: {port, instances: {id: {address, port}}, marathon_app, gateway, absent}}``
    only
        A service name, or a list of them, to converge alone (all when empty); a name missing
        from ``services`` is an error, reported before anything is written
    deregister
        Deregister every selected service instead (the ``services.clean`` SLS)
    """
    if isinstance(only, str):
        only = [item.strip() for item in only.split(",") if item.strip()]

    def desired(settings):
        specs = registrationutil.specs_from_pillar(services, settings, only=only)
        return {key: None for key in specs} if deregister else specs

    return _converge(name, desired)


def registered(name, port, instances=None, domain=None, gateway=True, marathon_app=None):
    """
    Service ``name`` is registered with exactly ``instances`` (plus, with ``marathon_app``, the
    app's running and healthy tasks).

    name
        The service name (a DNS label)
    port
        The service port (vulcand listener, Consul service)
    instances
        ``{instance_id: {address, port}}``
    domain
        Domain of the service's host name (default: ``platform:domain``)
    gateway
        Whether Kong routes ``<name>.<domain>`` to the service
    marathon_app
        A Marathon app id whose tasks are instances too
    """
    entry = {"port": port, "instances": instances or {}, "gateway": gateway}
    if marathon_app:
        entry["marathon_app"] = marathon_app

    def desired(settings):
        return registrationutil.specs_from_pillar({name: entry}, settings, domain=domain,
                                                  path="microservice.registered")

    return _converge(name, desired)


def absent(name):
    """
    Service ``name`` is not registered (only what this cluster registered from pillar is
    removed).

    name
        The service name
    """
    return _converge(name, lambda settings: {validationutil.dns_label(name, "name"): None})
