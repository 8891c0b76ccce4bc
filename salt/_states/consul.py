"""
One Consul agent service as an idempotent state.

The service's ID is its name. Only the fields given are managed: a field left out keeps
whatever the agent holds, and fields the agent fills in (``Weights``, ``EnableTagOverride``...)
never show as drift. ``Meta`` is compared on the given keys only, plus the ownership mark this
state adds to it (``managed-by``, ``cluster`` = ``platform:cluster``, ``source`` = ``state``):
a service of the same ID without that mark (someone else's, the ``microservice`` states', the
Marathon engine's) is never changed nor deregistered.

``checks`` are the service's whole set of checks when given: each is compared on the fields
given (``Status``, only an initial status, is never compared), checks not listed are removed.
Durations compare as the agent reports them (Go's form: ``1m`` is read back as ``1m0s``), so
any spelling of the same duration is no drift. A check without ``CheckID`` gets the one Consul
assigns: ``service:<name>``, or ``service:<name>:<n>`` (from 1) when there are
several.

.. code-block:: yaml

    Consul service web is registered:
      consul.service_registered:
        - name: web
        - port: 10000
        - tags: [http]
        - meta: {team: web}
        - checks:
          - HTTP: http://localhost:10000/health
            Interval: 10s

    Consul service old is not registered:
      consul.service_absent:
        - name: old

``changes`` are ``{field: {"old", "new"}}`` for an update, ``{"old": None, "new": {...}}``
for a registration and ``{"old": {...}, "new": None}`` for a deregistration, the same in test
mode as in a real run.

:configuration: ``platform:consul:url``, ``platform:consul:token`` and ``platform:cluster``,
    read with ``config.get``.

.. versionadded:: 0.1.0
"""

import re

import registrationutil
import statediffutil
import validationutil
from salt.exceptions import SaltInvocationError

__virtualname__ = "consul"

SOURCE = "state"
# The agent's view of a service that a registration sends back unchanged.
KEPT_FIELDS = ("Tags", "Meta", "Port", "Address", "Weights", "EnableTagOverride",
               "TaggedAddresses", "Kind", "Proxy", "Connect")
# A check's fields that are read back as written (the rest sit in its "Definition").
CHECK_TOP_FIELDS = ("CheckID", "Name", "Notes")
# Check fields holding Go durations, which the agent reports in Go's canonical form.
CHECK_DURATION_FIELDS = ("Interval", "Timeout", "TTL", "DeregisterCriticalServiceAfter")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|ms|s|m|h)")
_NANOSECONDS = {"ns": 1, "us": 10**3, "\u00b5s": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9,
                "h": 3600 * 10**9}


def __virtual__():
    return __virtualname__


def _check_ids(name, checks):
    """``checks`` with the ``CheckID`` Consul gives each one that lacks it."""
    if not isinstance(checks, list) or not all(isinstance(check, dict) for check in checks):
        raise SaltInvocationError(f"checks of Consul service {name!r}: expected a list of "
                                  "check definitions")
    if len(checks) == 1:
        return [{"CheckID": f"service:{name}", **checks[0]}]
    return [{"CheckID": f"service:{name}:{position}", **check}
            for position, check in enumerate(checks, start=1)]


def _decimal(number):
    return f"{number:.9f}".rstrip("0").rstrip(".")


def go_duration(value):
    """``value`` as Go's ``time.Duration.String()`` writes it (``1m`` -> ``1m0s``, ``0.5s`` ->
    ``500ms``), the form the agent reports; anything that is not a duration comes back as is."""
    if not isinstance(value, str):
        return value
    parts = _DURATION_PART.findall(value)
    if not parts or "".join(number + unit for number, unit in parts) != value:
        return value
    nanoseconds = round(sum(float(number) * _NANOSECONDS[unit] for number, unit in parts))
    if nanoseconds < 10**9:
        for unit in ("ms", "\u00b5s", "ns"):
            if nanoseconds >= _NANOSECONDS[unit] or unit == "ns":
                return _decimal(nanoseconds / _NANOSECONDS[unit]) + (unit if nanoseconds else "s")
    hours, rest = divmod(nanoseconds, _NANOSECONDS["h"])
    minutes, rest = divmod(rest, _NANOSECONDS["m"])
    text = f"{hours}h" if hours else ""
    if hours or minutes:
        text += f"{minutes}m"
    return text + _decimal(rest / _NANOSECONDS["s"]) + "s"


def _check_view(check):
    """An agent check in the shape of a check definition."""
    return {**(check.get("Definition") or {}),
            **{key: check[key] for key in CHECK_TOP_FIELDS if key in check}}


def _checks_as_wanted(current_checks, wanted_checks):
    """The service's checks lined up with ``wanted_checks``: each wanted one narrowed to the
    fields given (None when missing), then the unwanted ones whole."""
    by_id = {check["CheckID"]: check for check in current_checks}
    lined_up = [
        statediffutil.selected(by_id.pop(check["CheckID"]), check)
        if check["CheckID"] in by_id else None
        for check in wanted_checks
    ]
    return lined_up + [by_id[check_id] for check_id in sorted(by_id)]


def _target(name, port=None, address=None, tags=None, meta=None, checks=None):
    """The :class:`statediffutil.Target` of the Consul service ``name``."""
    validationutil.dns_label(name, "name")
    settings = registrationutil.configured(__salt__["config.get"], SOURCE, __context__)
    consul, owner = settings.registries.consul, settings.owner
    meta = meta or {}
    taken = sorted(set(meta) & set(owner.consul_meta))
    if taken:
        raise SaltInvocationError(f"meta of Consul service {name!r}: {', '.join(taken)} "
                                  "carry the ownership mark and cannot be set")
    wanted = {"Meta": {**meta, **owner.consul_meta}}
    if port is not None:
        wanted["Port"] = validationutil.port(port, "port")
    if address is not None:
        wanted["Address"] = validationutil.address(address, "address")
    if tags is not None:
        wanted["Tags"] = list(tags)
    definitions = _check_ids(name, checks) if checks is not None else None
    if definitions is not None:
        definitions = [{key: go_duration(value) if key in CHECK_DURATION_FIELDS else value
                        for key, value in check.items()} for check in definitions]
    if definitions is not None:
        # A check's Status only seeds a new check: the agent reports its latest result.
        wanted["Checks"] = [{key: value for key, value in check.items() if key != "Status"}
                            for check in definitions]

    def read():
        service = consul.get_service(name)
        if definitions is None:
            return service
        current_checks = [_check_view(check) for check in consul.list_checks().values()
                          if check.get("ServiceID") == name]
        return {**service, "Checks": _checks_as_wanted(current_checks, wanted["Checks"])}

    def foreign(service):
        if service is None or owner.owns_consul_service(service):
            return None
        return f"exists and is {registrationutil.describe_consul_owner(service)}"

    def write(service):
        kept = {key: service[key] for key in KEPT_FIELDS if service and key in service}
        body = statediffutil.merged(kept, {key: value for key, value in wanted.items()
                                           if key != "Checks"})
        if definitions is not None:
            body["Checks"] = definitions
        consul.register_service({"ID": name, "Name": name, **body},
                                replace_existing_checks=definitions is not None)

    return statediffutil.Target(
        what=f"Consul service {name}",
        read=read,
        foreign=foreign,
        wanted=wanted,
        write=write,
        delete=lambda service: consul.deregister_service(name),
    )


def service_registered(name, port=None, address=None, tags=None, meta=None, checks=None):
    """
    The Consul agent service ``name`` is registered with the given fields.

    name
        The service name, also its ID (a DNS label)
    port
        The service port
    address
        The service address (empty: the agent's node address)
    tags
        The service tags, in order
    meta
        Service metadata; only the given keys are managed. ``managed-by``, ``cluster`` and
        ``source`` are reserved for the ownership mark
    checks
        The service's check definitions (``HTTP``/``TCP``/``TTL``, ``Interval``...), the whole
        set: checks not listed are removed
    """
    return statediffutil.present(
        name, lambda: _target(name, port, address, tags, meta, checks), __opts__["test"])


def service_absent(name):
    """
    The Consul agent service ``name`` is not registered (only one registered by this state for
    this cluster is deregistered).

    name
        The service ID
    """
    return statediffutil.absent(name, lambda: _target(name), __opts__["test"])
