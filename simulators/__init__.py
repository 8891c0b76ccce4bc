"""HTTP simulators of the registries the platform drives (test and sandbox tooling only).

Each simulator speaks the real server's HTTP API as recorded in the project's API reference,
binds loopback only, and shares the server base in :mod:`simulators.base`.
"""

import importlib

# name -> "module:class"; imported lazily so that one simulator's module never loads the others.
REGISTRY = {
    "consul": "simulators.consul:ConsulSimulator",
    "kong": "simulators.kong:KongSimulator",
    "marathon": "simulators.marathon:MarathonSimulator",
    "vulcand": "simulators.vulcand:VulcandSimulator",
}


def simulator_class(name):
    """The simulator class registered under ``name``."""
    try:
        module_name, class_name = REGISTRY[name].split(":")
    except KeyError:
        raise KeyError(f"unknown simulator {name!r}; known: {', '.join(sorted(REGISTRY))}") from None
    return getattr(importlib.import_module(module_name), class_name)
