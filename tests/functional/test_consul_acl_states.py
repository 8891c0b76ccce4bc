"""The `consul_acl` states through Salt's real loader (no daemons) against the Consul simulator
with ACLs on (or a real Consul from CONSUL_HTTP_ADDR with a management CONSUL_HTTP_TOKEN): they
create, a second run changes nothing, test mode predicts exactly, a token's secret is never
reported, and objects that are not Salt's are refused."""

import uuid

import pytest
import requests

DNS_RULES = 'node_prefix "" { policy = "read" }\nservice_prefix "" { policy = "read" }\n'


@pytest.fixture
def acl(registry_loaders, consul_clean):
    if not consul_clean.token:
        pytest.skip("needs a Consul with ACLs and its management token")
    registry_loaders.context.clear()
    states = registry_loaders.states.consul_acl
    connection = {"url": consul_clean.url, "token": consul_clean.token}
    suffix = uuid.uuid4().hex[:8]  # a real Consul keeps ACL objects between tests
    policy_name = f"dns-read-{suffix}"

    class Acl:
        name = policy_name

        @staticmethod
        def policy(rules=DNS_RULES, name=policy_name, **kwargs):
            return states.policy_present(name, rules=rules, description="DNS lookups",
                                         **connection, **kwargs)

        @staticmethod
        def token(secret, policies=(policy_name,), **kwargs):
            return states.token_present("agents' DNS lookups", secret_id=secret,
                                        policies=list(policies), **connection, **kwargs)

        @staticmethod
        def request(method, path, **kwargs):
            headers = {"X-Consul-Token": kwargs.pop("token", consul_clean.token)}
            return requests.request(method, f"{consul_clean.url}{path}", headers=headers,
                                    timeout=10, **kwargs)

    return Acl


def test_a_policy_is_created_once_as_predicted_and_updated_in_place(acl):
    predicted = acl.policy(test=True)
    assert predicted.result is None
    created = acl.policy()
    assert created.result is True, created.comment
    assert created.changes == predicted.changes == {"old": None, "new": {
        "Name": acl.name, "Description": "DNS lookups [managed by salt]", "Rules": DNS_RULES,
        "Datacenters": None}}
    assert acl.policy().changes == {}

    rules = DNS_RULES + 'query_prefix "" { policy = "read" }\n'
    predicted = acl.policy(rules=rules, test=True)
    updated = acl.policy(rules=rules)
    assert updated.changes == predicted.changes == {"Rules": {"old": DNS_RULES, "new": rules}}
    named = [p for p in acl.request("GET", "/v1/acl/policies").json() if p["Name"] == acl.name]
    assert len(named) == 1


def test_a_token_is_created_with_its_secret_which_is_never_reported(acl):
    assert acl.policy().result is True
    secret = str(uuid.uuid4())
    predicted = acl.token(secret, test=True)
    created = acl.token(secret)
    assert created.result is True, created.comment
    assert created.changes == predicted.changes == {"old": None, "new": {
        "Description": "agents' DNS lookups [managed by salt]", "Policies": [acl.name],
        "Roles": [], "ServiceIdentities": [], "NodeIdentities": []}}
    assert secret not in str(created.changes) + created.comment
    own = acl.request("GET", "/v1/acl/token/self", token=secret).json()
    assert [link["Name"] for link in own["Policies"]] == [acl.name]
    assert acl.token(secret).changes == {}

    relinked = acl.token(secret, policies=())
    assert relinked.changes == {"Policies": {"old": [acl.name], "new": []}}
    assert acl.request("GET", "/v1/acl/token/self", token=secret).json()["AccessorID"] == own["AccessorID"]


def test_acl_objects_that_are_not_salts_are_refused(acl):
    taken = acl.request("PUT", "/v1/acl/policy", json={"Name": acl.name, "Rules": ""})
    assert taken.status_code == 200
    refused = acl.policy()
    assert refused.result is False
    assert refused.comment == (f"Consul ACL policy {acl.name} exists and is not managed by Salt "
                               "(its description lacks '[managed by salt]'): refusing to take it over")
    secret = str(uuid.uuid4())
    acl.request("PUT", "/v1/acl/token", json={"SecretID": secret, "Description": "by hand"})
    assert acl.token(secret, policies=()).result is False
    assert acl.request("GET", "/v1/acl/token/self", token=secret).json()["Description"] == "by hand"


def test_whatever_is_attached_to_a_token_by_hand_is_reported_and_removed(acl):
    assert acl.policy().result is True
    secret = str(uuid.uuid4())
    assert acl.token(secret).result is True
    own = acl.request("GET", "/v1/acl/token/self", token=secret).json()
    role = f"admin-{acl.name}"
    assert acl.request("PUT", "/v1/acl/role", json={
        "Name": role, "Policies": [{"Name": "global-management"}]}).status_code == 200
    hand_made = {**{key: own[key] for key in ("Description", "Policies")},
                 "SecretID": secret, "Roles": [{"Name": role}],
                 "ServiceIdentities": [{"ServiceName": "web"}],
                 "NodeIdentities": [{"NodeName": "kong", "Datacenter": "dc1"}]}
    reply = acl.request("PUT", f"/v1/acl/token/{own['AccessorID']}", json=hand_made)
    assert reply.status_code == 200, reply.text

    expected = {"Roles": {"old": [role], "new": []},
                "ServiceIdentities": {"old": [{"ServiceName": "web"}], "new": []},
                "NodeIdentities": {"old": [{"NodeName": "kong", "Datacenter": "dc1"}],
                                   "new": []}}
    predicted = acl.token(secret, test=True)
    assert (predicted.result, predicted.changes) == (None, expected)
    repaired = acl.token(secret)
    assert (repaired.result, repaired.changes) == (True, expected), repaired.comment
    assert secret not in str(repaired.changes) + repaired.comment + str(predicted.changes)
    after = acl.request("GET", "/v1/acl/token/self", token=secret).json()
    assert not (after.get("Roles") or after.get("ServiceIdentities")
                or after.get("NodeIdentities"))
    assert acl.token(secret).changes == {}


def test_a_policy_restricted_to_a_datacenter_by_hand_is_made_global_again(acl):
    assert acl.policy().result is True
    policy = next(p for p in acl.request("GET", "/v1/acl/policies").json()
                  if p["Name"] == acl.name)
    full = acl.request("GET", f"/v1/acl/policy/{policy['ID']}").json()
    reply = acl.request("PUT", f"/v1/acl/policy/{policy['ID']}", json={
        **{key: full[key] for key in ("Name", "Description", "Rules")}, "Datacenters": ["dc2"]})
    assert reply.status_code == 200, reply.text
    repaired = acl.policy()
    assert (repaired.result, repaired.changes) == (True, {"Datacenters": {"old": ["dc2"],
                                                                          "new": None}})
    assert acl.policy().changes == {}
