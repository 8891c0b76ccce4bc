"""The Marathon simulator with another task launcher: the lab's Mesos stand-ins
(lab/standins/mesos.py), a master and two agents on loopback addresses of their own standing
for the slave hosts. Tasks are placed on the agents, bound to their addresses in their ports
resource, probed there, and killed there; the real-host tests run the same on the lab's hosts."""

import json
import pathlib
import time

import pytest
import requests

from lab.standins import mesos
from simulators.base import serve_forever_on
from simulators.marathon import MarathonSimulator
from tests.fixtures.waiting import wait_for

WAIT = 10

HELLO = json.loads((pathlib.Path(__file__).resolve().parents[2] / "specs" / "hello.json").read_text())
AGENT_ADDRESSES = ("127.0.0.2", "127.0.0.3")
PORTS = {"127.0.0.2": (41000, 41002), "127.0.0.3": (41100, 41102)}


@pytest.fixture
def cluster():
    servers = [serve_forever_on(mesos.Master(), "127.0.0.1", 0)]
    masters = [f"http://127.0.0.1:{servers[0].server_address[1]}"]
    agents = {}
    for address in AGENT_ADDRESSES:
        first, last = PORTS[address]
        agent = mesos.Agent(address, 0, address, f"cpus:2;mem:1024;ports(*):[{first}-{last}]", masters)
        servers.append(serve_forever_on(agent, address, 0))
        agent.agent_port = servers[-1].server_address[1]
        agent.run()
        agents[address] = agent
    wait_for(lambda: len(requests.get(f"{masters[0]}/master/slaves", timeout=5).json()["slaves"]) == 2,
             "both agents registered", WAIT)
    with MarathonSimulator(launcher=mesos.MesosTasks(masters), health_interval_seconds=0.1) as marathon:
        yield masters[0], agents, marathon
    for agent in agents.values():
        agent.stop()
    for server in servers:
        server.shutdown()
        server.server_close()


def agent_tasks(agent):
    return requests.get(f"http://{agent.address}:{agent.agent_port}/lab/tasks", timeout=5).json()


def deploy(marathon, instances):
    assert requests.post(f"{marathon.url}/v2/apps", json={**HELLO, "instances": instances}, timeout=5).status_code == 201


def scale(marathon, instances):
    assert requests.put(f"{marathon.url}/v2/apps/hello?force=true", json={"instances": instances}, timeout=5).status_code == 200


def test_tasks_run_on_the_agents_bound_to_their_addresses(cluster):
    master, agents, marathon = cluster
    deploy(marathon, 2)
    assert marathon.wait_for_deployments()
    listed = requests.get(f"{master}/master/slaves", timeout=5).json()["slaves"]
    agent_ids = {agent["hostname"]: agent["id"] for agent in listed}
    tasks = marathon.tasks_of("/hello")
    assert sorted(task["host"] for task in tasks) == list(AGENT_ADDRESSES)  # one on each
    for task in tasks:
        first, last = PORTS[task["host"]]
        assert first <= task["ports"][0] <= last
        assert task["slaveId"] == agent_ids[task["host"]]
        assert agent_tasks(agents[task["host"]]) == [{"id": task["id"], "ports": task["ports"]}]
        answer = requests.get(f"http://{task['host']}:{task['ports'][0]}/", timeout=5).json()
        assert answer["instance"] == task["id"]
        assert task["healthCheckResults"][0]["alive"] is True


def test_health_checks_probe_the_task_on_its_agent(cluster):
    _, agents, marathon = cluster
    deploy(marathon, 1)
    assert marathon.wait_for_deployments()
    task = marathon.tasks_of("/hello")[0]
    agent = agents[task["host"]]
    url = f"http://{agent.address}:{agent.agent_port}/lab/tasks/{task['id']}/failing"
    assert requests.put(url, json={"failing": True}, timeout=5).status_code == 204
    wait_for(lambda: marathon.tasks_of("/hello")[0]["healthCheckResults"][0]["alive"] is False,
             "the task found failing", WAIT)
    marathon.set_task_healthy(task["id"], True)  # the simulator's control reaches the agent too
    wait_for(lambda: marathon.tasks_of("/hello")[0]["healthCheckResults"][0]["alive"] is True,
             "the task found passing", WAIT)


def test_tasks_wait_for_free_ports_and_are_killed_on_their_agents(cluster):
    _, agents, marathon = cluster
    deploy(marathon, 7)  # the two agents offer six ports
    wait_for(lambda: sum(len(agent_tasks(agent)) for agent in agents.values()) == 6, "six tasks started", WAIT)
    time.sleep(0.3)
    assert len(marathon.tasks_of("/hello")) == 6
    scale(marathon, 1)
    assert marathon.wait_for_deployments()
    running = marathon.tasks_of("/hello")
    assert len(running) == 1
    assert [task["id"] for agent in agents.values() for task in agent_tasks(agent)] == [running[0]["id"]]
    assert requests.delete(f"{marathon.url}/v2/apps/hello", timeout=5).status_code == 200
    assert marathon.wait_for_deployments()
    assert all(agent_tasks(agent) == [] for agent in agents.values())
