"""
The platform's render-time checks of this node, rendered once per state run.

Every formula's ``map.jinja`` needs them: the problems that refuse the node and the cluster
topology (``salt://platform/checks.jinja``). Rendered by each SLS file of a highstate, they
cost a Salt mine lookup (a new channel to the master, whose key exchange alone is half a
second) and every formula's parameters (the pillar check), some 25 times a highstate. Here
they are rendered from the same template once and kept in ``__context__``, which lives as
long as the state run's modules (a new state run starts with new ones).

Where custom modules are not synced yet (the top file, which a highstate renders before it
syncs them, and ``state.sls`` on a new minion), ``platform/libmap.jinja`` renders the template
itself: the same checks, only slower.

CLI Example:

.. code-block:: bash

    salt master platform_checks.checks
"""

import copy

import salt.utils.json

__virtualname__ = "platform_checks"

TEMPLATE = '{%- import "platform/checks.jinja" as checks with context %}{{ checks.as_json() }}'


def __virtual__():
    return __virtualname__


def checks(saltenv="base"):
    """
    This node's platform checks: ``{"problems": [sentence, ...], "topology": {...}}``.
    """
    key = f"{__virtualname__}.checks:{saltenv}"
    if key not in __context__:
        rendered = __salt__["slsutil.renderer"](string=TEMPLATE, default_renderer="jinja", saltenv=saltenv)
        __context__[key] = salt.utils.json.loads(rendered)
    return copy.deepcopy(__context__[key])
