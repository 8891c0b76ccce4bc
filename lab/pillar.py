"""The lab's pillar (the salt-master's ``local.sls``): the secrets an operator supplies and the
source keys pointed at the lab's mirror; and the one secret the operator adds to the master's
configuration, the Marathon engine's Consul token. Nothing else differs from AWS."""

from lab import mirror

# Lab-only secrets (fixed: the hosts are disposable and reachable from nowhere).
SECRETS = {
    "consul": {
        "encrypt": "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s=",
        "acl_token": "4c5f0a1e-2b8d-4f6a-9c3e-7d1b2a3c4d5e",
        "agent_token": "0b7e1f52-93c4-4d1a-8e6f-2a5b9c7d3e10",
        "dns_token": "6d2c8a4e-1f3b-4e7a-9b5c-8e0d2f4a6c31",
    },
    "kong": {"database": {"password": "lab-kong-password"}},
    # The gateway's consumer of the Mesos and Marathon UIs (`gateway`, run by orch.cluster).
    "gateway": {"consumers": {"ops": {"password": "lab-ops-password"}}},
}


def lab_pillar(mirror_root):
    consul = f"{mirror.URL}/consul/{mirror.CONSUL_VERSION}/consul_{mirror.CONSUL_VERSION}"
    sources = {
        "consul": {"source": f"{consul}_linux_amd64.zip", "source_hash": f"{consul}_SHA256SUMS"},
        "weave": {"source": mirror.weave_url(),
                  "source_hash": f"sha256={mirror.sha256_of(mirror_root, mirror.weave_url())}"},
        "kong": {"repo": mirror.repo_pillar(mirror_root, mirror.KONG_REPO)},
        "mesos": {"repo": mirror.repo_pillar(mirror_root, mirror.MESOS_REPO)},
        "marathon": {"image": {"name": mirror.image_name("mesosphere/marathon")}},
        "vulcand": {"image": {"name": mirror.image_name("webhippie/vulcand")}},
        # The mirror's registry speaks plain HTTP (a mirror of one's own usually has TLS).
        "docker": {"daemon": {"insecure-registries": [mirror.REGISTRY]}},
    }
    # The kong minion's registrations (`services`, `gateway`) use the bootstrap token, the one
    # token the Consul stand-in honours (on AWS: consul:registrar_token).
    registrar = {"platform": {"consul": {"token": SECRETS["consul"]["acl_token"]}}}
    return _merge(_merge(SECRETS, sources), registrar)


def master_config(profile_master):
    """The profile's master configuration with the engine's ``consul_token``: the bootstrap
    token, the one token the Consul stand-in honours (on AWS: consul:registrar_token)."""
    engines = [{name: {**options, "consul_token": SECRETS["consul"]["acl_token"]}}
               if name == "marathon_registrar" else {name: options}
               for engine in profile_master.get("engines", []) for name, options in engine.items()]
    return {**profile_master, "engines": engines}


def _merge(left, right):
    merged = dict(left)
    for key, value in right.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and key in merged else value
    return merged
