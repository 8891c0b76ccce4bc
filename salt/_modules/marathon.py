"""
Marathon apps and their tasks, through the Marathon v2 REST API.

A thin layer over the project's Marathon client (``apiclientutil.MarathonAPI``).

:configuration: ``platform:marathon:url``, read with ``config.get``.

.. versionadded:: 0.1.0
"""

import marathonutil
import registrationutil

__virtualname__ = "marathon"


def __virtual__():
    return __virtualname__


def _marathon():
    registries = registrationutil.configured_registries(__salt__["config.get"], __context__)
    return registries.marathon


def list_apps(label=None):
    """
    Every app, with its tasks.

    label
        Marathon's label selector, e.g. ``registry.service`` or ``env==prod``

    CLI Example:

    .. code-block:: bash

        salt kong marathon.list_apps label=registry.service
    """
    return _marathon().list_apps(label=label)


def get_app(app_id):
    """
    One app with its tasks. Raises an error naming the URL when it does not exist.

    app_id
        The app id, e.g. ``/web``

    CLI Example:

    .. code-block:: bash

        salt kong marathon.get_app /web
    """
    return _marathon().get_app(app_id)


def app_instances(app_id):
    """
    The registrable instances of an app: ``{instance_id: [address, port]}`` of its running
    tasks (healthy ones, when the app has health checks).

    app_id
        The app id, e.g. ``/web``

    CLI Example:

    .. code-block:: bash

        salt kong marathon.app_instances /web
    """
    return marathonutil.instances_from_app(_marathon().get_app(app_id))


def upsert_app(app_id, definition):
    """
    Create or update an app; returns Marathon's deployment reference.

    app_id
        The app id, e.g. ``/web``
    definition
        The app definition (a mapping)

    CLI Example:

    .. code-block:: bash

        salt kong marathon.upsert_app /web '{"cmd": "./serve $PORT0", "instances": 2}'
    """
    return _marathon().upsert_app(app_id, definition)


def delete_app(app_id):
    """
    Delete an app (and kill its tasks). Returns whether it existed.

    app_id
        The app id, e.g. ``/web``

    CLI Example:

    .. code-block:: bash

        salt kong marathon.delete_app /web
    """
    return _marathon().delete_app(app_id)
