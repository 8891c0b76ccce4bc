"""The sandbox on real hosts: what an operator does on AWS, on five real local Debian 12 hosts.

moto_server plays AWS as in the loopback sandbox; the lab (lab/) plays EC2's machines: its host
provider gives every instance salt-cloud's driver creates in moto a real host with the
instance's addresses, running sshd with the key pair authorised for ``admin``. salt-cloud runs
inside the lab's network namespace (moto relayed to it) and deploys for real: kong over its
public address, the private hosts through kong as SSH gateway, the salt-master on master with
this checkout's tree (``file_map``) and every minion key pre-seeded. The one difference from
AWS: Salt comes from the lab's mirror (the image's Salt, installed from the wheelhouse, as a
onedir archive) through the deploy script option (the provider's ``script``:
lab/deploy.d/salt-wheelhouse.sh), not from the internet.

The salt-master on master then runs ``orch.cluster`` for real. The sandbox reaches it as an
operator does: ``ssh`` through kong.
"""

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import threading
import time

# The sandbox's own lab, apart from the tests' and a developer's ./run hosts.
os.environ.setdefault("SHOWCASE_LAB_NAME", "showcase-sandbox")

import salt.config  # noqa: E402
import salt.utils.event  # noqa: E402
import salt.utils.yaml  # noqa: E402

from lab import cluster, components, image, mirror, network, provider, system  # noqa: E402
from lab import pillar as lab_pillar  # noqa: E402
from sandbox import account, clients, saltconfig, summary  # noqa: E402
from sandbox.stack import tool  # noqa: E402
from sandbox.steps import StepFailed  # noqa: E402
from sandbox.workflow import DEFAULT_MAP, DOMAIN, GATEWAY_USER, HELLO, SCALE_STEPS, WEB, Workflow  # noqa: E402

CLUSTER = "showcase"  # pillar aws:cluster, the provider's cluster
DEPLOY_SCRIPT = image.SALT_DEPLOY_SCRIPT.stem  # the provider's `script` (found in deploy.d)
DEPLOY_TIMEOUT = 1200
ORCHESTRATE_TIMEOUT = 1800
# salt-cloud's events per node (salt/cloud/<node>/<event>) and what they mean to an operator.
CLOUD_EVENTS = {"creating": "launching its instance", "deploying": "deploying Salt over SSH",
                "created": "deployed"}
SSH_OPTIONS = ("-oStrictHostKeyChecking=no", "-oUserKnownHostsFile=/dev/null", "-oLogLevel=ERROR",
               "-oBatchMode=yes", "-oConnectTimeout=10")


def unavailable():
    """Why real hosts cannot run here (one phrase), or None."""
    missing = system.missing_prerequisites()
    missing += [tool for tool in ("ssh", "ssh-keygen") if shutil.which(tool, path=system.TOOL_PATH) is None]
    return f"missing {', '.join(missing)}" if missing else None


class RealHostsWorkflow(Workflow):
    """The workflow of :class:`~sandbox.workflow.Workflow` with salt-cloud deploying real hosts."""

    # Tasks start on the slaves' Docker and pass Marathon's health checks (every 10 s) first.
    converge_timeout = 180.0

    def __init__(self, stack, runner):
        super().__init__(stack, runner)
        self.lab = None
        self.provider = None
        self.checkout = self.stack.workdir / "checkout"
        # The specs' own ports and the lab's gateway consumer: no other sandbox shares the hosts.
        for app in (WEB, HELLO):
            labels = json.loads((self.repo / app["spec"]).read_text()).get("labels", {})
            self.service_ports[app["service"]] = int(labels.get("registry.port", WEB_PORT))
        self.admin_password = lab_pillar.SECRETS["gateway"]["consumers"][GATEWAY_USER]["password"]
        self.vpc = None  # runs the operator's HTTP calls where the hosts are (the namespace)

    # -- helpers -------------------------------------------------------------------------------

    @property
    def key_file(self):
        return self.stack.ssh_public_key().with_suffix("")

    def _kong_public(self):
        return self.provider.public.get(saltconfig.GATEWAY_MINION_ID)

    def ssh_argv(self, host, command=None):
        """``ssh`` to a host as salt-cloud reaches it: kong at its public address, the others
        at their private address through kong (a login shell without ``command``)."""
        options = ["-i", str(self.key_file), *SSH_OPTIONS]
        if host == saltconfig.GATEWAY_MINION_ID:
            target = self._kong_public()
        else:
            jump = " ".join(["ssh", *options, "-W", "%h:%p", f"{provider.LOGIN_USER}@{self._kong_public()}"])
            options.append(f"-oProxyCommand={jump}")
            target = self.provider.hosts[host].address
        return system.in_netns(["ssh", *options, f"{provider.LOGIN_USER}@{target}", *([command] if command else [])])

    def on_salt_master(self, argv, timeout=600):
        """``sudo ARGV`` on the salt-master, over SSH through kong: (returncode, output, its
        standard error after the rest: the callers read Salt's JSON in it)."""
        command = "sudo " + " ".join(shlex.quote(arg) for arg in argv)
        return self.stack.supervisor.run(self.ssh_argv(self.salt_master, command), timeout=timeout,
                                         stderr_after=True)

    @property
    def salt_master(self):
        return cluster.Cluster().salt_master  # the map's make_master node

    def _master_salt(self, argv, timeout=600):
        returncode, output = self.on_salt_master(argv, timeout)
        if returncode != 0:
            raise StepFailed(f"{argv[0]} on {self.salt_master} exited with status {returncode}", output)
        return output

    def _master_pillar(self):
        """``local.sls`` the deploy copies to the salt-master (in pillar/, as an operator's
        checkout has it): the lab's pillar (secrets, the mirror's sources) and web's service."""
        return {
            **lab_pillar.lab_pillar(self.lab.mirror),
            "services": {WEB["service"]: {"port": self.service_ports[WEB["service"]], "marathon_app": WEB["app"]}},
        }

    def _write_cloud_config(self):
        """The sandbox's provider: the AWS one with the sandbox's key and the lab's deploy
        script; run from the sandbox's checkout (this one's salt/ and pillar/, and local.sls)."""
        repo_providers = salt.utils.yaml.safe_load((self.repo / "cloud.providers.d" / "aws.conf").read_text())
        provider_name = next(iter(repo_providers))
        repo_providers[provider_name].update(
            ssh_keyfile=str(self.key_file),
            script=DEPLOY_SCRIPT,
            script_args=" ".join(image.salt_onedir_arguments(mirror.onedir_url())),
            display_ssh_output=False,
            # The engine's Consul token in the master configuration, where the engine looks
            # (platform:consul:token). Not as an engine option: salt-cloud updates the
            # provider's `master` with the profile's last, so `engines` would be the profile's.
            master={"platform": {"consul": {"token": lab_pillar.SECRETS["consul"]["acl_token"]}}},
        )
        config_dir = self.stack.salt.config_dir
        (config_dir / "cloud.providers").write_text("# the sandbox's providers: cloud.providers.d/\n")
        saltconfig.write_yaml(config_dir / "cloud.providers.d" / "aws.conf", repo_providers)
        cloud = self.stack.salt.cloud()
        cloud.update(providers_config=str(config_dir / "cloud.providers"),
                     deploy_scripts_search_path=[str(image.DEPLOY_SCRIPTS)])
        saltconfig.write_yaml(config_dir / "cloud", cloud)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "local.sls")
        for tree in ("salt", "pillar"):
            shutil.copytree(self.repo / tree, self.checkout / tree, ignore=ignore)
        (self.checkout / "cloud.maps.d").symlink_to(self.repo / "cloud.maps.d")
        # Secrets: readable by the salt-master alone (salt-cloud's copy keeps the file's mode).
        saltconfig.write_yaml(self.checkout / "pillar" / "local.sls", self._master_pillar()).chmod(0o600)

    def _salt_cloud(self, argv, timeout):
        """salt-cloud inside the lab's namespace (where the hosts are), from the checkout; its
        output is kept in logs/salt-cloud.log too."""
        returncode, output = self.stack.supervisor.run(
            system.in_netns([tool("salt-cloud"), "-c", str(self.stack.salt.config_dir), *argv]),
            env=self.stack.env, cwd=self.checkout, timeout=timeout,
        )
        with open(self.stack.supervisor.log_dir / "salt-cloud.log", "a", encoding="utf-8") as log:
            log.write(f"$ salt-cloud {' '.join(argv)}\n{output}\n")
        return returncode, output

    def _progress(self, line):
        self.runner.print(f"    {line}")

    @contextlib.contextmanager
    def _cloud_events(self):
        """Say, per node, when salt-cloud deploys it and when it is done: salt-cloud's events
        on the operator's salt-master."""
        opts = salt.config.master_config(str(self.stack.salt.config_dir / "master"))
        stopped = threading.Event()

        def follow():
            with salt.utils.event.get_event("master", opts["sock_dir"], opts=opts, listen=True) as events:
                while not stopped.is_set():
                    event = events.get_event(wait=0.5, full=True)
                    tag = (event or {}).get("tag", "").split("/")
                    if len(tag) == 4 and tag[:2] == ["salt", "cloud"] and tag[3] in CLOUD_EVENTS:
                        self._progress(f"{tag[2]}: {CLOUD_EVENTS[tag[3]]}")

        with _in_background(follow, stopped.set):
            yield

    @contextlib.contextmanager
    def _state_returns(self):
        """Say, per host, when its state run is over, and every ``HEARTBEAT_SECONDS`` which
        hosts are still running theirs: the salt-master's job events, followed over SSH
        (``salt-run state.event``). Not the minions' state events (``state_events``): firing
        one costs a state run a quarter of a second a state."""
        follower = subprocess.Popen(
            self.ssh_argv(self.salt_master, "sudo salt-run state.event 'salt/job/*'"),
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
        runs = StateRuns()
        stopped = threading.Event()

        def follow():
            for line in follower.stdout:
                tag, _, data = line.partition("\t")
                try:
                    event = json.loads(data)
                except ValueError:
                    continue
                message = runs.event(tag, event)
                if message:
                    self._progress(message)

        def heartbeat():
            while not stopped.wait(HEARTBEAT_SECONDS):
                message = runs.waiting()
                if message:
                    self._progress(message)

        with _in_background(heartbeat, stopped.set), \
                _in_background(follow, lambda: (os.killpg(follower.pid, signal.SIGTERM), follower.wait())):
            yield

    # -- the platform's APIs, on the hosts -------------------------------------------------------

    def run_salt(self, argv, timeout):
        """``salt`` (the minions') on the salt-master; the AWS network's ``salt-run`` here."""
        if argv[0] == "salt":
            return self.on_salt_master(argv, timeout)
        return super().run_salt(argv, timeout)

    def _gateway_url(self, path="/"):
        return f"http://{self._kong_public()}:8000{path}"

    @property
    def marathon(self):
        """Marathon as the README's operator reaches it: through kong, with the gateway's
        consumer (marathon.service.consul)."""
        marathon = clients.Marathon(self._gateway_url(), host=f"marathon.{DOMAIN}",
                                    auth=(GATEWAY_USER, self.admin_password))
        return _Through(self.vpc, marathon)

    def probe_gateway(self, host, count):
        return self.vpc.submit(clients.probe, self._gateway_url(), host, count).result()

    def gateway_status(self, host, path, credentials):
        url = self._gateway_url(path)
        return self.vpc.submit(lambda: (clients.status(url, host), clients.status(url, host, auth=credentials))).result()

    def deploy(self, app, instances=None):
        super().deploy(app, instances)
        self._print_tasks(app)

    def scale(self, app, instances):
        super().scale(app, instances)
        self._print_tasks(app)

    def _print_tasks(self, app):
        """Where Marathon runs the app's tasks: on the slaves' Mesos agents."""
        hosts = {host.address: name for name, host in self.provider.hosts.items()}
        for task in self.marathon.app(app["app"])["tasks"]:
            ports = ",".join(map(str, task.get("ports", [])))
            self.runner.print(f"    task {task['id']} on {hosts.get(task['host'], '?')} ({task['host']}:{ports})")

    def record_routing(self):
        kong, master = self.provider.hosts[saltconfig.GATEWAY_MINION_ID], self.provider.hosts[self.salt_master]
        try:
            self.routing = self.vpc.submit(summary.routing_table, f"http://{kong.address}:8001",
                                           f"http://{master.address}:8182").result()
        except (clients.ClientError, OSError) as error:
            self.runner.print(f"    (routing table not available: {error})")

    # -- steps ---------------------------------------------------------------------------------

    def start_sandbox(self):
        with self.runner.step("Start moto_server, standing in for AWS", "moto_server -H 127.0.0.1"):
            self.stack.start_moto()
        with self.runner.step(
            "Start a salt-master from etc/salt (the operator's machine)",
            "salt-master    # sandbox: etc/salt with absolute paths and free ports",
        ):
            self.stack.start_salt(engines=None, pillar=self.pillar(), minion=False)
        with self.runner.step(
            "Start the real-host lab: a network namespace for the VPC, its resolver, the lab's mirror",
            "# on AWS: the VPC and EC2's machines; here the lab's host provider gives each instance a host",
        ):
            self.lab = cluster.start_infrastructure({})
            network.relay_loopback_port(int(self.stack.urls["aws"].rsplit(":", 1)[1]))
            self.vpc = network.namespace_executor()
            self.provider = provider.HostProvider(
                account.client(self.stack.env), CLUSTER, self.lab, progress=self._progress
            ).start()
            self._write_cloud_config()

    def pillar(self):
        """The operator's machine needs only the network's key pair (orch.network)."""
        return {"aws": {"key_pair": {"public_key_path": str(self.stack.ssh_public_key())}}}

    def create_instances(self):
        with self.runner.step(
            "Create and deploy the instances of the default map",
            f"salt-cloud -m {DEFAULT_MAP} -P -y"
            "    # sandbox: Salt from the lab's mirror (the provider's script)",
        ):
            self._need_file(DEFAULT_MAP, "the cluster map")
            with self._cloud_events():
                returncode, output = self._salt_cloud(["-m", DEFAULT_MAP, "-P", "-y", "--out=json"], DEPLOY_TIMEOUT)
            self.created = account.inventory(self.stack.env)
            nodes = account.map_nodes(self.repo, DEFAULT_MAP, self.created)
            results = _last_json(output)
            if results is None:
                raise StepFailed(f"salt-cloud exited with status {returncode} and no result", output)
            undeployed = sorted(node for node in nodes if not _deployed(results.get(node)))
            if returncode != 0 or undeployed or self.provider.failures:
                raise StepFailed(f"not deployed: {', '.join(undeployed) or '-'}; hosts that failed: "
                                 f"{self.provider.failures or '-'}", output)
            for instance in self.created["instances"]:
                public = f", public {instance['public_ip']}" if instance["public_ip"] else ""
                self.runner.print(f"    {instance['name']:8s} {instance['id']}  {instance['private_ip']}{public}  deployed")
        with self.runner.step(
            "Check every minion answers the salt-master on master",
            f"ssh -J admin@<kong public address> admin@<master private address> sudo salt '*' test.version",
        ):
            expected = set(nodes)
            deadline = time.monotonic() + 120
            while True:
                returncode, output = self.on_salt_master(["salt", "*", "test.version", "--out=json", "--static", "--timeout=10"])
                try:
                    answered = {name: version for name, version in json.loads(output).items() if isinstance(version, str)}
                except ValueError:
                    answered = {}
                if set(answered) == expected or time.monotonic() > deadline:
                    break
                time.sleep(2)
            if set(answered) != expected:
                raise StepFailed(f"minions {sorted(expected - set(answered))} do not answer", output)
            for name, version in sorted(answered.items()):
                self.runner.print(f"    {name:8s} Salt {version}")

    def orchestrate_cluster(self):
        with self.runner.step(
            "Build the platform on the five hosts",
            "ssh -J admin@<kong public address> admin@<master private address> "
            "sudo salt-run state.orchestrate orch.cluster",
        ):
            with self._state_returns():
                returncode, output = self.on_salt_master(
                    ["salt-run", "state.orchestrate", "orch.cluster", "--out=json"], ORCHESTRATE_TIMEOUT)
            try:
                steps = next(iter(_last_json(output)["data"].values()))
            except (TypeError, KeyError, StopIteration):
                raise StepFailed(f"salt-run exited with status {returncode} and no result", output) from None
            if not isinstance(steps, dict):  # the orchestration did not render: its errors
                raise StepFailed("orch.cluster did not run", "\n".join(map(str, steps)))
            for state in sorted(steps.values(), key=lambda state: state.get("__run_num__", 0)):
                mark = "ok" if state.get("result") else "FAILED"
                self.runner.print(f"    {mark:6s} {state.get('__id__')} ({state.get('duration', 0) / 1000:.1f} s)")
            failed = [state for state in steps.values() if not state.get("result")]
            if returncode != 0 or failed:
                raise StepFailed(f"{len(failed)} orchestration step(s) failed", _failed_details(failed) or output)

    def check_hosts(self):
        with self.runner.step(
            "Check each host runs the services of its role and resolves the platform's names",
            f"ssh ... systemctl is-active <service>; getent ahostsv4 <name>.{DOMAIN}",
        ):
            profiles = cluster.Cluster().profiles
            roles = {name: profiles[name]["grains"]["roles"][0] for name in self.provider.hosts}
            by_role = {}
            for name, role in roles.items():
                by_role.setdefault(role, set()).add(self.provider.hosts[name].address)
            problems = []
            self.host_report = []
            for name, host in sorted(self.provider.hosts.items()):
                found = components.running(host, roles[name])
                self.host_report.append((name, roles[name], host.address, self.provider.public.get(name), found))
                problems += [f"{name}: {service} is {state}" for service, state, _, _ in found if state != "active"]
                self.runner.print(f"    {name:8s} {roles[name]:7s} " + ", ".join(
                    f"{service} {version}" for service, _, version, _ in found))
            unresolved = self._wait_for_names(by_role)
            problems += unresolved
            if not unresolved:
                self.runner.print(f"    every host resolves {', '.join(f'{service}.{DOMAIN}' for service in RESOLVED_SERVICES)}")
            if problems:
                raise StepFailed("services not running or names not resolving", "\n".join(problems))

    def _wait_for_names(self, by_role, timeout=60):
        """Each host resolves each of RESOLVED_SERVICES, through its resolver (dnsmasq,
        forwarding the domain to Consul), to the hosts of the role that runs it; a check that
        has not passed yet keeps a name out of Consul's answers, so this waits a little. The
        names still wrong at the end."""
        deadline = time.monotonic() + timeout
        while True:
            wrong = []
            for name, host in sorted(self.provider.hosts.items()):
                for service, role in RESOLVED_SERVICES.items():
                    lookup = host.run(["getent", "ahostsv4", f"{service}.{DOMAIN}"], check=False).stdout
                    answered = {line.split()[0] for line in lookup.splitlines()}
                    if answered != by_role.get(role, set()):
                        wrong.append(f"{name}: {service}.{DOMAIN} resolves to {sorted(answered) or 'nothing'}, "
                                     f"not the {role} hosts {sorted(by_role.get(role, set()))}")
            if not wrong or time.monotonic() > deadline:
                return wrong
            time.sleep(2)

    def destroy_instances(self):
        with self.runner.step(
            "Destroy the instances (the lab removes their hosts)", f"salt-cloud -m {DEFAULT_MAP} -d -y"
        ):
            returncode, output = self._salt_cloud(["-m", DEFAULT_MAP, "-d", "-y"], 300)
            if returncode != 0:
                raise StepFailed(f"salt-cloud exited with status {returncode}", output)
            self.provider.wait_until_removed()

    def remove_lab(self):
        with self.runner.step(
            "Remove the lab: no host, mount, namespace or process left", "# on AWS: nothing to do"
        ):
            self.close()
            left = {"mounts": system.lab_mounts(), "processes": system.cgroup_pids(""),
                    "namespace": system.NETNS_PATH.exists()}
            if any(left.values()):
                raise StepFailed(f"the lab left {left}")

    def keep_help(self):
        lines = ["\nThe hosts keep running. In another shell (as root), a shell on each over SSH:"]
        for name in sorted(self.provider.hosts):
            lines.append(f"  {name:8s} {shlex.join(self.ssh_argv(name))}")
        lines += [
            f"  salt on the salt-master ({self.salt_master}): add a command to its ssh line, for example",
            f"           ... sudo salt '*' test.version    or    ... sudo salt-run state.orchestrate orch.cluster",
            f"  a root shell on a host without SSH: SHOWCASE_LAB_NAME={system.NAME} ./run hosts shell NAME",
            f"  export {' '.join(f'{name}={value}' for name, value in self.stack.env.items())}",
            f"  salt-cloud -c {self.stack.salt.config_dir} -Q    # the instances, from {self.checkout}",
            f"Logs: {self.stack.supervisor.log_dir} and {system.STATE / 'logs'}\nPress Ctrl-C to stop it.",
        ]
        return lines

    def close(self):
        """Stop the host provider and remove the lab (whatever is left of it)."""
        if self.provider is not None:
            self.provider.stop()
        if self.vpc is not None:
            self.vpc.shutdown()
        system.remove_all()

    def build_platform(self):
        self.orchestrate_cluster()
        self.check_hosts()

    def tear_down(self):
        super().tear_down()
        self.remove_lab()


# Names Consul answers once orch.cluster ran (consul:services), and the role whose hosts they are.
RESOLVED_SERVICES = {"consul": "master", "marathon": "master", "vulcand": "master", "kong": "kong"}
HEARTBEAT_SECONDS = 30  # how often the hosts still running their states are named
WEB_PORT = 10000  # the seed's port for web: on real hosts no other sandbox shares it


@contextlib.contextmanager
def _in_background(follow, stop):
    """``follow()`` in a thread of its own for the ``with`` block; then ``stop()``, and join."""
    thread = threading.Thread(target=follow, name=follow.__qualname__, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop()
        thread.join()


class _Through:
    """``target``'s methods, each called in ``executor``'s thread."""

    def __init__(self, executor, target):
        self._executor, self._target = executor, target

    def __getattr__(self, name):
        method = getattr(self._target, name)
        return lambda *args, **kwargs: self._executor.submit(method, *args, **kwargs).result()


def _last_json(output):
    """The JSON documents salt-cloud printed (``--out=json``, one per node with -P) amid the
    deploy's output, merged."""
    documents, lines = {}, output.splitlines(keepends=True)
    for index, line in enumerate(lines):
        if line.rstrip() == "{":
            try:
                document = json.JSONDecoder().raw_decode("".join(lines[index:]))[0]
            except ValueError:
                continue
            if isinstance(document, dict):
                documents.update(document)
    return documents or None


class StateRuns:
    """The state runs (``state.*`` jobs) the salt-master's events show: what to say when one
    host's run returns, and which hosts are still running one."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.running = {}  # jid -> (function, hosts not returned yet, started)
        self._lock = threading.Lock()

    def event(self, tag, event):
        """The line to print for the event of tag ``tag``, if any."""
        parts = tag.split("/")
        if len(parts) < 4 or parts[:2] != ["salt", "job"] or not str(event.get("fun", "")).startswith("state."):
            return None
        jid = parts[2]
        with self._lock:
            if parts[3] == "new" and event.get("minions"):
                self.running[jid] = (event["fun"], set(event["minions"]), self.clock())
            elif parts[3] == "ret" and len(parts) == 5:
                host, result = parts[4], event.get("return")
                hosts = self.running.get(jid, (None, set(), None))[1]
                hosts.discard(host)
                if not hosts:
                    self.running.pop(jid, None)
                if isinstance(result, dict):
                    return f"{host}: {event['fun']} {_state_counts(result)}"
                # Render errors (a list of them), as the orchestration's result shows them too.
                return f"{host}: {event['fun']} did not run ({len(result) if isinstance(result, list) else 1} errors)"
        return None

    def waiting(self):
        """``still running state.highstate on kong, slave0 (for 30 s)``, or None."""
        with self._lock:
            lines = [f"still running {function} on {', '.join(sorted(hosts))} (for {self.clock() - started:.0f} s)"
                     for function, hosts, started in self.running.values() if hosts]
        return "; ".join(lines) or None


def _state_counts(states):
    """``N states, M changed, F failed (T s)`` of one host's state results."""
    results = [state for state in states.values() if isinstance(state, dict)]
    changed = sum(1 for state in results if state.get("changes"))
    failed = sum(1 for state in results if state.get("result") is False)
    seconds = sum(float(state.get("duration", 0) or 0) for state in results) / 1000
    return f"{len(results)} states, {changed} changed, {failed} failed ({seconds:.0f} s)"


def _deployed(result):
    return isinstance(result, dict) and result.get("deployed") is True


def _failed_details(failed):
    lines = []
    for state in failed:
        lines.append(f"{state.get('__id__')}: {state.get('comment', '')}")
        for minion, ret in (state.get("changes", {}).get("ret") or {}).items():
            for key, sub in (ret.items() if isinstance(ret, dict) else []):
                if isinstance(sub, dict) and sub.get("result") is False:
                    lines.append(f"  {minion}: {sub.get('__id__', key)}: {sub.get('comment', '').strip()[:300]}")
    return "\n".join(lines)
