"""End to end on real hosts: ``./run sandbox`` deploys the default map with salt-cloud onto real
lab hosts (kong over its public address, the others through kong as SSH gateway, Salt from the
lab's wheelhouse), builds the platform with orch.cluster from the salt-master on master, and
leaves nothing behind: no instance, host, mount, namespace, process or file.

The sandbox runs as a user runs it (``python -m sandbox``), with a lab name of its own beside
the session's lab."""

import os
import pathlib
import re

import pytest

from lab import image
from tests.integration.test_sandbox import assert_steps, sandbox_tmp, start_sandbox  # noqa: F401
from tests.realhosts.conftest import require_lab

RUN_TIMEOUT = 2400
pytestmark = [pytest.mark.slow, pytest.mark.timeout(RUN_TIMEOUT + 120)]
NODES = ("kong", "master", "slave0", "slave1", "slave2")
LAB_NAME = f"{os.environ['SHOWCASE_LAB_NAME']}-sandbox"


def lab_traces():
    """What of the sandbox's lab exists on the machine."""
    root = pathlib.Path("/sys/fs/cgroup")
    cgroups = [path for path in [root / LAB_NAME, *root.glob(f"*/{LAB_NAME}")] if path.is_dir()]
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        mounts = [line.split()[4] for line in handle if f"/{LAB_NAME}/" in line.split()[4]]
    return {"namespace": pathlib.Path(f"/run/netns/{LAB_NAME}").exists(), "mounts": mounts,
            "cgroups": cgroups, "state": (image.CACHE / "state" / LAB_NAME).exists()}


def test_the_sandbox_deploys_real_hosts_through_the_bastion_and_builds_the_platform(
    repo_root, sandbox_tmp, tmp_path  # noqa: F811 - the fixture imported above
):
    require_lab()
    log = tmp_path / "sandbox.out"
    with open(log, "wb") as output:
        process = start_sandbox(repo_root, sandbox_tmp, output, env={"SHOWCASE_LAB_NAME": LAB_NAME})
        returncode = process.wait(timeout=RUN_TIMEOUT)
    text = log.read_text()
    print(text)

    assert returncode == 0, text
    assert "Real hosts cannot run here" not in text
    assert_steps(text, (
        "Create the AWS network",
        "Create and deploy the instances of the default map",
        "Check every minion answers the salt-master on master",
        "Build the platform on the five hosts",
        "Check each host runs the services of its role and resolves the platform's names",
        "Register the Mesos and Marathon UIs in the gateway",
        "Check marathon.service.consul through the gateway (basic-auth)",
        "Register web and its instances",
        "Check web.service.consul through the gateway (3 instances)",
        "Check web.service.consul through the gateway (scaled to 2)",
        "Check hello.service.consul through the gateway (registered by the Marathon engine)",
        "Destroy the instances (the lab removes their hosts)",
        "Tear the AWS network down",
        "Check the AWS account is empty",
        "Remove the lab: no host, mount, namespace or process left",
    ))
    assert "$ salt-cloud -m cloud.maps.d/default.map -P -y" in text
    deploy = text.split("Create and deploy the instances of the default map", 1)[1]
    for node in NODES:
        # Each instance got a host, salt-cloud deployed Salt onto it over SSH, and its minion
        # (Salt installed by the deploy) answers the salt-master that the deploy set up.
        assert re.search(rf"^    {node}: host up at 10\.0\.(5|12)\.\d+ for i-", deploy, re.M), text
        assert re.search(rf"^    {node}: deploying Salt over SSH$", deploy, re.M), text
        assert re.search(rf"^    {node} +Salt {re.escape(image.SALT_VERSION)}$", deploy, re.M), text
        assert re.search(rf"^    {node}: instance terminated, host removed", text, re.M), text
        # orch.cluster's state run on the host, said when it returns.
        build = text.split("Build the platform on the five hosts", 1)[1]
        assert re.search(rf"^    {node}: state\.highstate \d+ states, \d+ changed, 0 failed", build, re.M), text
    assert re.search(r"^    still running state\.highstate on master \(for \d+ s\)", text, re.M), text
    assert "    every host resolves consul.service.consul, marathon.service.consul, vulcand.service.consul, " \
           "kong.service.consul\n" in text, text
    # Marathon runs the tasks on the slaves; requests through kong's proxy are answered by
    # exactly the running web tasks, which follow the scaling.
    tasks = re.findall(r"^    task (\S+) on (\S+) \(", text, re.M)
    assert tasks and {host for _, host in tasks} <= {"slave0", "slave1", "slave2"}, text
    before, after = re.split(r"^==> +\d+\. Scale /web to 2 instances$", text, flags=re.M)
    answered_before = set(re.findall(r"answered: (web\S+)", before))
    answered_after = set(re.findall(r"answered: (web\S+)", after))
    assert len(answered_before) == 3 and len(answered_after) == 2 and answered_after < answered_before, text
    # kong is reached at its elastic IP; the private hosts only through it.
    assert re.search(r"^    kong: public address \S+$", deploy, re.M), text
    assert lab_traces() == {"namespace": False, "mounts": [], "cgroups": [], "state": False}
    assert not list(sandbox_tmp.iterdir()), "the sandbox left files behind"
