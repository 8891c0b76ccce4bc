"""
Consul ACL policies and tokens (Consul 1.4 and later) as idempotent states: what the consul
formula uses to give the agents a DNS token that may only read.

Each object is marked as Salt's in its ``Description`` (it ends with ``[managed by salt]``);
one of the same name (policy) or secret (token) without that mark is never changed. The whole
object is compared (a policy's rules and datacenters; a token's description, policies, roles,
service and node identities). A token's secret is never reported, in ``changes`` or comments.

.. code-block:: yaml

    Consul policy dns-read is present:
      consul_acl.policy_present:
        - name: dns-read
        - description: DNS lookups
        - rules: |
            node_prefix "" { policy = "read" }
            service_prefix "" { policy = "read" }
        - url: http://127.0.0.1:8500
        - token: {{ pillar['consul']['acl_token'] }}

    Consul DNS token is present:
      consul_acl.token_present:
        - name: agents' DNS lookups
        - secret_id: {{ pillar['consul']['dns_token'] }}
        - policies: [dns-read]
        - url: http://127.0.0.1:8500
        - token: {{ pillar['consul']['acl_token'] }}

:configuration: ``url`` and ``token`` (a token with ``acl:write``) given to the state, else
    ``platform:consul:url`` and ``platform:consul:token`` read with ``config.get``.

.. versionadded:: 0.2.0
"""

import registrationutil
import statediffutil
from apiclientutil import ConsulAPI

__virtualname__ = "consul_acl"

MARK = "[managed by salt]"


def __virtual__():
    return __virtualname__


def _consul(url, token):
    values = registrationutil.settings_values(__salt__["config.get"])
    return ConsulAPI(url or values["platform:consul:url"],
                     token=token or values["platform:consul:token"])


def _marked(description):
    return f"{description} {MARK}".strip()


def _foreign(current):
    if current is None or (current.get("Description") or "").endswith(MARK):
        return None
    return f"exists and is not managed by Salt (its description lacks {MARK!r})"


def policy_present(name, rules, description="", url=None, token=None):
    """
    The ACL policy ``name`` exists with ``rules``.

    name
        The policy's name
    rules
        Its rules, in Consul's HCL or JSON rule language
    description
        What it is for (the ownership mark is appended)
    url, token
        The Consul agent and a token allowed ``acl:write`` (default: the platform settings)
    """

    def target():
        consul = _consul(url, token)

        def read():
            found = next((policy for policy in consul.list_acl_policies()
                          if policy.get("Name") == name), None)
            return consul.get_acl_policy(found["ID"]) if found else None

        # Datacenters: a policy valid everywhere (a restriction added by hand is undone).
        wanted = {"Name": name, "Description": _marked(description), "Rules": rules,
                  "Datacenters": None}
        return statediffutil.Target(
            what=f"Consul ACL policy {name}",
            read=read,
            foreign=_foreign,
            wanted=wanted,
            write=lambda current: consul.put_acl_policy(
                wanted, current["ID"] if current else None),
        )

    return statediffutil.present(name, target, __opts__["test"])


def token_present(name, secret_id, policies, url=None, token=None):
    """
    The ACL token whose secret is ``secret_id`` exists, described as ``name`` and linked to
    ``policies`` (names) exactly: no role, service identity or node identity either (one added
    by hand is reported and removed).

    name
        What the token is for: its description (the ownership mark is appended)
    secret_id
        The token's secret, a UUID chosen by the operator (pillar), never reported
    policies
        Names of the policies the token carries
    url, token
        The Consul agent and a token allowed ``acl:write`` (default: the platform settings)
    """

    def target():
        consul = _consul(url, token)

        def read():
            found = consul.get_acl_token_by_secret(secret_id)
            if found is None:
                return None
            # The whole of what grants the token anything, so that a link added by hand shows.
            return {
                "AccessorID": found.get("AccessorID"),
                "Description": found.get("Description") or "",
                **{field: sorted(link.get("Name") for link in found.get(field) or [])
                   for field in ("Policies", "Roles")},
                **{field: sorted(found.get(field) or [], key=repr)
                   for field in ("ServiceIdentities", "NodeIdentities")},
            }

        wanted = {"Description": _marked(name), "Policies": sorted(policies), "Roles": [],
                  "ServiceIdentities": [], "NodeIdentities": []}

        def write(current):
            body = {"SecretID": secret_id, "Description": wanted["Description"],
                    "Policies": [{"Name": policy} for policy in wanted["Policies"]],
                    "Roles": [], "ServiceIdentities": [], "NodeIdentities": []}
            consul.put_acl_token(body, current["AccessorID"] if current else None)

        return statediffutil.Target(
            what=f"Consul ACL token {name!r}",
            read=read,
            foreign=_foreign,
            wanted=wanted,
            write=write,
        )

    return statediffutil.present(name, target, __opts__["test"])
