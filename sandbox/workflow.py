"""The operator's workflow, step by step, against the sandbox.

The commands are the ones an operator runs against AWS, printed as typed from the repository
root; the sandbox runs them with ``-c <its config dir>``. Where the sandbox must differ (no
hosts to SSH into, no DNS for ``*.service.consul``), the printed command says so.

A step whose part of the platform is missing from the checkout is reported "not available yet"
and the steps that need it say so too; nothing is faked.
"""

import base64
import concurrent.futures
import json
import os
import secrets
import time
import uuid

import salt.utils.yaml

from sandbox import account, clients, saltconfig, summary
from sandbox.stack import simulator_available, tool
from sandbox.steps import StepFailed, StepUnavailable

DOMAIN = "service.consul"
DEFAULT_MAP = "cloud.maps.d/default.map"
ENGINE = "marathon_registrar"
WEB = {"app": "/web", "service": "web", "spec": "specs/app.json"}
HELLO = {"app": "/hello", "service": "hello", "spec": "specs/hello.json"}
SCALE_STEPS = (3, 2)  # web runs SCALE_STEPS[0] instances, then is scaled to SCALE_STEPS[1]
CONVERGE_TIMEOUT = 60.0
# Pillar keys the operator must supply with the sha256 of a download whose vendor publishes
# none. The sandbox only renders the highstate and downloads nothing, so a marked placeholder
# stands in; on AWS pillar.example says how to compute the real ones.
RENDER_ONLY_HASHES = ("weave",)
RENDER_ONLY_HASH = "sha256=" + "0" * 64
PROBE_REQUESTS_PER_INSTANCE = 4
GATEWAY_USER = "ops"


class Workflow:
    """Runs the workflow on a started :class:`~sandbox.stack.Stack`, recording what it saw."""

    converge_timeout = CONVERGE_TIMEOUT  # how long deployments and registrations may take

    def __init__(self, stack, runner):
        self.stack = stack
        self.runner = runner
        self.repo = stack.repo_root
        self.service_ports = {}  # service -> vulcand listener port picked for this sandbox
        self.created = {}  # what the AWS steps created (account inventory)
        self.nodes = {}  # node -> grains, from the map
        self.routing = []  # summary.routing_table() before the teardown
        self.host_report = []  # summary.host_lines() rows: the real hosts (none here)
        # Throw-away credentials, made once: the formulas require them, the gateway uses them.
        self.admin_password = secrets.token_urlsafe(12)
        self.formula_secrets = {
            "consul": {
                "encrypt": base64.b64encode(secrets.token_bytes(32)).decode(),
                "acl_token": str(uuid.uuid4()),
                "agent_token": str(uuid.uuid4()),
                "dns_token": str(uuid.uuid4()),
            },
            "kong": {"database": {"password": secrets.token_urlsafe(16)}},
        }

    # -- helpers -------------------------------------------------------------------------------

    def _need_file(self, relative, what):
        if not (self.repo / relative).exists():
            raise StepUnavailable(f"{what}: {relative} does not exist in this checkout yet")

    def _salt(self, argv, timeout=600, check_json=False):
        """Run a Salt command; fail the step with its output when it fails."""
        returncode, output = self.run_salt(argv, timeout)
        if returncode != 0:
            raise StepFailed(f"{argv[0]} exited with status {returncode}", output)
        if check_json:
            try:
                return json.loads(output)
            except ValueError:
                raise StepFailed(f"{argv[0]} did not print JSON", output) from None
        return output

    def run_salt(self, argv, timeout):
        """``(returncode, output)`` of a Salt command as the operator types it."""
        return self.stack.salt_command(argv, timeout=timeout)

    def _state_apply(self, argv):
        """``salt kong state.apply ...``: every state must succeed."""
        data = self._salt([*argv, "--out=json", "--static"], check_json=True)
        results = data.get(saltconfig.GATEWAY_MINION_ID)
        if not isinstance(results, dict):
            raise StepFailed("the minion returned no state results", json.dumps(data, indent=2))
        failed = [ret for ret in results.values() if not ret.get("result")]
        if failed:
            raise StepFailed(
                f"{len(failed)} state(s) failed",
                "\n".join(f"{ret.get('__id__')}: {ret.get('comment')}" for ret in failed),
            )
        return results

    # -- where the platform's APIs are (the simulators here) ----------------------------------

    @property
    def marathon(self):
        return self.stack.marathon

    def probe_gateway(self, host, count):
        return self.stack.probe_gateway(host, count)

    def gateway_status(self, host, path, credentials):
        return self.stack.gateway_status(host, path, credentials)

    # -- infrastructure ------------------------------------------------------------------------

    def _url(self, simulator, key="url"):
        return self.stack.urls.get(simulator, {}).get(key)

    def _port(self, simulator):
        url = self._url(simulator)
        return int(url.rsplit(":", 1)[1]) if url else None

    def connection_settings(self):
        """The registries the platform drives: the simulators (the ``platform`` pillar keys)."""
        return {
            "domain": DOMAIN,
            "consul": {"url": self._url("consul"), "token": ""},
            "vulcand": {"url": self._url("vulcand"), "etcd_url": self._url("vulcand", "etcd")},
            "kong": {"admin_url": self._url("kong", "admin_url")},
            "marathon": {"url": self._url("marathon")},
        }

    def pillar(self):
        """``local.sls`` of the sandbox: simulator URLs, ports and throw-away credentials."""
        return {
            "platform": self.connection_settings(),
            "services": {
                WEB["service"]: {"port": self.service_ports[WEB["service"]], "marathon_app": WEB["app"]}
            },
            "gateway": {
                "auth": "basic-auth",
                "consumers": {GATEWAY_USER: {"password": self.admin_password}},
                # The Marathon UI is the simulator, on its own port; Mesos has no simulator.
                "uis": {"mesos": 5050, "marathon": self._port("marathon")},
            },
            "aws": {"key_pair": {"public_key_path": str(self.stack.ssh_public_key())}},
            **self.formula_secrets,
        }

    def engines(self):
        """The Marathon engine in the master, pointed at the simulators (when it exists)."""
        if not (self.repo / "salt" / "_engines" / f"{ENGINE}.py").exists():
            return None
        platform = self.connection_settings()
        settings = {
            "marathon_url": platform["marathon"]["url"],
            "consul_url": platform["consul"]["url"],
            "vulcand_url": platform["vulcand"]["url"],
            "vulcand_etcd_url": platform["vulcand"]["etcd_url"],
            "kong_admin_url": platform["kong"]["admin_url"],
            "domain": DOMAIN,
            "resync_interval": 10,
        }
        return [{ENGINE: settings}]

    def _listener_ports(self):
        """The platform's service ports (pillar/platform.sls): the only ones it registers."""
        pillar = salt.utils.yaml.safe_load((self.repo / "pillar" / "platform.sls").read_text())
        first, last = map(int, str(pillar["platform"]["listener_ports"]).split("-"))
        return range(first, last + 1)

    def start_sandbox(self):
        with self.runner.step("Start moto_server, standing in for AWS", "moto_server -H 127.0.0.1"):
            self.stack.start_moto()
        with self.runner.step(
            "Start the Consul, vulcand (with a real etcd), Kong and Marathon simulators",
            "python -m simulators consul|vulcand|kong|marathon --port 0",
        ):
            self.stack.start_simulators(resolve=self._service_names())
        listener_ports = self._listener_ports()
        for service in (WEB["service"], HELLO["service"]):
            self.service_ports[service] = self.stack.ports.take(listener_ports)
        with self.runner.step(
            "Start a salt-master and the minion 'kong' from etc/salt",
            "salt-master & salt-minion    # sandbox: etc/salt with absolute paths and free ports",
        ):
            self.stack.start_salt(engines=self.engines(), pillar=self.pillar())
        with self.runner.step("Sync the custom modules to the minion", "salt kong saltutil.sync_all"):
            self._salt(["salt", saltconfig.GATEWAY_MINION_ID, "saltutil.sync_all"])

    @staticmethod
    def _service_names():
        """What ``*.service.consul`` means to the gateway here: everything is on 127.0.0.1."""
        return {f"*.{DOMAIN}": "127.0.0.1"}

    # -- AWS -----------------------------------------------------------------------------------

    def build_network(self):
        with self.runner.step("Create the AWS network", "salt-run state.orchestrate orch.network"):
            self._need_file("salt/orch/network.sls", "the network orchestration")
            self._salt(["salt-run", "state.orchestrate", "orch.network"])

    def create_instances(self):
        with self.runner.step(
            "Create the instances of the default map",
            f"salt-cloud -m {DEFAULT_MAP} -P -y --no-deploy"
            "    # on AWS without --no-deploy (moto has no hosts to SSH into)",
        ):
            self._need_file(DEFAULT_MAP, "the cluster map")
            self._need_file("salt/_clouds/aws_ec2.py", "the salt-cloud driver")
            output = self._salt(["salt-cloud", "-m", DEFAULT_MAP, "-P", "-y", "--no-deploy"])
            self.created = account.inventory(self.stack.env)
            self.nodes = account.map_nodes(self.repo, DEFAULT_MAP, self.created)
            instances = {instance["name"]: instance for instance in self.created["instances"]}
            missing = sorted(set(self.nodes) - set(instances))
            if missing:
                # salt-cloud reports failed creations in its output but still exits 0.
                raise StepFailed(f"no instance for {', '.join(missing)}", output)
            for node in self.nodes:
                instance = instances[node]
                public = f", public {instance['public_ip']}" if instance["public_ip"] else ""
                self.runner.print(f"    {node:8s} {instance['id']}  {instance['private_ip']}{public}")

    def build_platform(self):
        """What the hosts get: here (no hosts) the highstate of each node, rendered."""
        self.render_highstates()

    def render_highstates(self):
        with self.runner.step(
            "Render the highstate of every node",
            "salt '*' state.show_highstate"
            "    # sandbox: salt-call --local per node, with the node's grains from the map",
        ):
            if not self.nodes:
                raise StepUnavailable("needs the instances of the map (step above)")
            # Without live minions there is no Salt mine: the masters' addresses come from
            # the instances, through the pillar override the formulas provide.
            masters = {
                node: grains["ipv4"][-1]
                for node, grains in self.nodes.items()
                if "master" in grains.get("roles", []) and grains.get("ipv4")
            }
            pillar = {**self.pillar(), "cluster": {"masters": masters}}
            for formula in RENDER_ONLY_HASHES:
                pillar[formula] = {"source_hash": RENDER_ONLY_HASH}
            saltconfig.write_yaml(self.stack.salt.local_pillar, pillar)
            self.runner.print(
                f"    render only: {', '.join(f + ':source_hash' for f in RENDER_ONLY_HASHES)}"
                " are placeholders (nothing is downloaded)"
            )
            with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
                rendered = dict(zip(self.nodes, pool.map(self._render_node, self.nodes.items())))
            for node, formulas in rendered.items():
                self.runner.print(f"    {node:8s} {len(formulas):3d} states  {', '.join(formulas)}")

    def _render_node(self, node_grains):
        node, grains = node_grains
        config_dir = self.stack.salt.node_config_dir(node, grains)
        returncode, output = self.stack.supervisor.run(
            [tool("salt-call"), "-c", config_dir, "--local", "--out=json",
             "state.show_highstate"],
            env=self.stack.env,
            cwd=self.repo,
            timeout=300,
        )
        try:
            highstate = json.loads(output)["local"]
        except (ValueError, KeyError):
            highstate = None
        if isinstance(highstate, list):  # render errors: one per SLS, first line says why
            errors = dict.fromkeys(error.splitlines()[0] for error in highstate)
            raise StepFailed(f"the highstate of {node} does not render", "\n".join(errors))
        if returncode != 0 or not isinstance(highstate, dict):
            raise StepFailed(f"the highstate of {node} does not render", output)
        return sorted({body.get("__sls__", "?") for body in highstate.values()})

    def destroy_instances(self):
        with self.runner.step("Destroy the instances", f"salt-cloud -m {DEFAULT_MAP} -d -y"):
            if not self.created.get("instances"):
                raise StepUnavailable("no instances were created")
            self._salt(["salt-cloud", "-m", DEFAULT_MAP, "-d", "-y"])

    def tear_down_network(self):
        with self.runner.step(
            "Tear the AWS network down", "salt-run state.orchestrate orch.network_teardown"
        ):
            self._need_file("salt/orch/network_teardown.sls", "the network teardown")
            self._salt(["salt-run", "state.orchestrate", "orch.network_teardown"])

    def check_account_empty(self):
        with self.runner.step(
            "Check the AWS account is empty", "aws ec2 describe-instances/-vpcs/-addresses ..."
        ):
            left = account.inventory(self.stack.env)
            remaining = {kind: items for kind, items in left.items() if items}
            for kind, items in remaining.items():
                self.runner.print(f"    left: {kind}: {', '.join(map(str, items))}")
            if remaining:
                raise StepFailed("resources are left in the account", json.dumps(remaining, indent=2))
            self.runner.print("    no instances, VPCs, subnets, gateways, addresses or key pairs left")

    # -- registrations -------------------------------------------------------------------------

    def register_gateway(self):
        with self.runner.step(
            "Register the Mesos and Marathon UIs in the gateway", "salt kong state.apply gateway"
        ):
            self._need_file("salt/gateway/init.sls", "the gateway registrations")
            self._state_apply(["salt", saltconfig.GATEWAY_MINION_ID, "state.apply", "gateway"])

    def check_marathon_ui(self):
        host = f"marathon.{DOMAIN}"
        with self.runner.step(
            f"Check {host} through the gateway (basic-auth)",
            f"curl -u {GATEWAY_USER}:<password> -H 'Host: {host}' http://<kong public address>:8000/v2/leader",
        ):
            if not self.runner.succeeded("Register the Mesos and Marathon UIs in the gateway"):
                raise StepUnavailable("needs the gateway registrations")
            refused, answered = self.gateway_status(host, "/v2/leader", (GATEWAY_USER, self.admin_password))
            self.runner.print(f"    without credentials: HTTP {refused}; with them: HTTP {answered}")
            if (refused, answered) != (401, 200):
                raise StepFailed(f"expected 401 without and 200 with credentials, got {refused} and {answered}")

    def deploy(self, app, instances=None):
        spec = json.loads((self.repo / app["spec"]).read_text())
        labels = spec.get("labels", {})
        if "registry.port" in labels:
            # The spec's service port is fixed; each sandbox listens on a port of its own.
            labels["registry.port"] = str(self.service_ports[app["service"]])
        if instances is not None:
            spec["instances"] = instances
        command = f"curl -X POST $MARATHON/v2/apps -H 'Content-Type: application/json' -d @{app['spec']}"
        note = "    # sandbox: registry.port set to a free port" if "registry.port" in labels else ""
        with self.runner.step(f"Deploy {app['spec']} to Marathon", command + note):
            self.marathon.put_app(spec)
            self.marathon.wait_running(app["app"], spec["instances"], self.converge_timeout)

    def scale(self, app, instances):
        with self.runner.step(
            f"Scale {app['app']} to {instances} instances",
            f"curl -X PUT $MARATHON/v2/apps{app['app']} -d '{{\"instances\": {instances}}}'",
        ):
            self.marathon.scale(app["app"], instances)
            self.marathon.wait_running(app["app"], instances, self.converge_timeout)

    def register_web(self):
        service = WEB["service"]
        with self.runner.step(
            f"Register {service} and its instances",
            f"salt kong state.apply services pillar='{{\"service\": \"{service}\"}}'",
        ):
            self._need_file("salt/services/init.sls", "the services state")
            self._state_apply(
                ["salt", saltconfig.GATEWAY_MINION_ID, "state.apply", "services",
                 f'pillar={{"service": "{service}"}}']
            )

    def check_gateway(self, app, label):
        """Requests through the gateway answer from exactly the app's running tasks."""
        host = f"{app['service']}.{DOMAIN}"
        with self.runner.step(
            f"Check {host} through the gateway ({label})",
            f"curl -H 'Host: {host}' http://<kong public address>:8000/",
        ):
            if not simulator_available("kong") or not simulator_available("marathon"):
                raise StepUnavailable("needs the Kong and Marathon simulators")
            expected = self.marathon.task_ids(app["app"])
            deadline = time.monotonic() + self.converge_timeout
            while True:
                seen = self.probe_gateway(host, PROBE_REQUESTS_PER_INSTANCE * len(expected))
                if seen == expected or time.monotonic() >= deadline:
                    break
                time.sleep(0.5)
            for instance in sorted(seen):
                self.runner.print(f"    answered: {instance}")
            if seen != expected:
                raise StepFailed(
                    f"{host} answered from {sorted(seen)}, expected the tasks {sorted(expected)}"
                )

    def register_by_engine(self):
        """A labelled app, which the Marathon engine registers with no Salt command."""
        self.deploy(HELLO)
        self.check_gateway(HELLO, "registered by the Marathon engine")

    def record_routing(self):
        """Keep the routing table for the summary (the registries go away with the sandbox)."""
        urls = self.stack.urls
        if "kong" in urls and "vulcand" in urls:
            try:
                self.routing = summary.routing_table(urls["kong"]["admin_url"], urls["vulcand"]["url"])
            except (clients.ClientError, OSError) as error:
                self.runner.print(f"    (routing table not available: {error})")

    # -- the whole run -------------------------------------------------------------------------

    def run(self, keep=False):
        """The whole workflow; with ``keep``, everything but the teardown."""
        self.start_sandbox()
        self.build_network()
        self.create_instances()
        self.build_platform()
        self.register_gateway()
        self.check_marathon_ui()
        self.deploy(WEB, instances=SCALE_STEPS[0])
        self.register_web()
        self.check_gateway(WEB, f"{SCALE_STEPS[0]} instances")
        self.scale(WEB, SCALE_STEPS[1])
        self.register_web()
        self.check_gateway(WEB, f"scaled to {SCALE_STEPS[1]}")
        self.register_by_engine()
        self.record_routing()
        if not keep:
            self.tear_down()

    def keep_help(self):
        """What ``--keep`` prints: how to reach the running sandbox from another shell."""
        stack = self.stack
        exports = {**stack.env, "MARATHON": stack.urls.get("marathon", {}).get("url", "")}
        proxy = stack.urls.get("kong", {}).get("proxy_url", "<kong proxy>")
        return [
            "\nThe sandbox keeps running. In another shell, from the repository root:",
            *(f"  export {name}={value}" for name, value in exports.items()),
            f"  . .venv/bin/activate; C='-c {stack.salt.config_dir}'",
            "  salt $C kong test.ping",
            "  salt $C kong pillar.get platform unmask=True",
            "  salt-run $C state.event pretty=True      # follow the Marathon engine",
            "  salt-cloud $C -Q",
            f"  curl -H 'Host: web.service.consul' {proxy}/",
            f"Logs: {stack.supervisor.log_dir}\nPress Ctrl-C to stop it.",
        ]

    def close(self):
        """Release what the workflow holds beyond the supervisor's processes (nothing here)."""

    def tear_down(self):
        self.destroy_instances()
        self.tear_down_network()
        self.check_account_empty()
