"""The closing report: what was created, how requests are routed, how long each step took, and
the same workflow on a real AWS account."""

from sandbox import clients

AWS_COMMANDS = """\
aws configure --profile showcase              # credentials of a dedicated IAM user
ssh-keygen -t rsa -b 2048 -f ~/.ssh/showcase  # the key pair the network imports
salt-run state.orchestrate orch.network
salt-cloud -m cloud.maps.d/default.map -P
salt '*' state.apply                          # or: salt-run state.orchestrate orch.cluster
salt kong state.apply gateway
curl -X POST http://marathon.service.consul:8080/v2/apps -H 'Content-Type: application/json' -d @specs/app.json
salt kong state.apply services pillar='{"service": "web"}'
curl -H 'Host: web.service.consul' http://<kong public address>:8000/
salt-cloud -m cloud.maps.d/default.map -d
salt-run state.orchestrate orch.network_teardown"""


def routing_table(admin_url, vulcand_url):
    """``[(service, gateway hosts, router listener, instances)]`` read from Kong and vulcand."""
    table = []
    for service, hosts, upstream in clients.kong_routes(admin_url):
        try:
            instances = clients.vulcand_servers(vulcand_url, service)
        except clients.ClientError:
            instances = []  # not routed through vulcand (the Mesos and Marathon UIs)
        table.append((service, hosts, upstream, instances))
    return table


def _created_lines(created):
    counts = ", ".join(f"{len(items)} {kind.replace('_', ' ')}" for kind, items in created.items() if items)
    yield f"  Created in the AWS account (moto): {counts or 'nothing'}"
    for instance in created.get("instances", []):
        public = f", public {instance['public_ip']}" if instance.get("public_ip") else ""
        yield f"    {instance['name']:8s} {instance['id']}  private {instance['private_ip']}{public}"


def _routing_lines(table):
    yield "  Routing (service -> gateway host -> router listener -> instances):"
    if not table:
        yield "    (nothing registered)"
    for service, hosts, upstream, instances in table:
        yield f"    {service}: {', '.join(hosts)} -> {upstream} -> {', '.join(instances) or '-'}"


def _timing_lines(results):
    yield "  Steps:"
    for result in results:
        detail = f"  ({result.detail})" if result.detail and result.status != "ok" else ""
        yield f"    {result.number:2d}. {result.title:62s} {result.seconds:6.1f} s  {result.status}{detail}"
    yield f"    total {sum(result.seconds for result in results):.1f} s"


def _host_lines(hosts):
    if not hosts:
        return
    yield "  Real hosts (role, address; services running, version, real or lab stand-in):"
    for name, role, address, public, services in hosts:
        public = f", public {public}" if public else ""
        yield f"    {name:8s} {role:7s} {address}{public}"
        for service, state, version, kind in services:
            yield f"      {service:13s} {state:8s} {version:28s} {kind}"


def render(created, table, results, hosts=()):
    lines = ["", "Summary", *_created_lines(created), *_host_lines(hosts), *_routing_lines(table),
             *_timing_lines(results)]
    lines += ["", "The same on a real AWS account (from the repository root; costs money):"]
    lines += [f"  {line}" for line in AWS_COMMANDS.splitlines()]
    return "\n".join(lines)
