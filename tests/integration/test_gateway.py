"""The `gateway` SLS: the Mesos and Marathon UIs behind Kong, with authentication."""

import time

import pytest
import requests

from simulators.webapp import WebApps

pytestmark = pytest.mark.slow

UIS = ("mesos", "marathon")


@pytest.fixture(scope="module")
def uis():
    """Stand-ins for the Mesos and Marathon UIs: {name: port}."""
    with WebApps() as apps:
        yield {name: apps.add(name) for name in UIS}


@pytest.fixture
def gateway(kong_clean, consul, vulcand, local_pillar, salt_call_cli, uis):
    def write(**gateway_pillar):
        local_pillar.write({
            "platform": {"kong": {"admin_url": kong_clean.admin_url}, "cluster": "showcase"},
            "gateway": {"uis": uis, **gateway_pillar},
        })
    write.kong = kong_clean
    return write


def apply(salt_call_cli, sls="gateway", test=False):
    args = ["state.apply", sls] + (["test=True"] if test else [])
    return salt_call_cli.run(*args)


def through_kong(kong, ui, auth=None):
    return requests.get(f"{kong.proxy_url}/", headers={"Host": f"{ui}.service.consul"},
                        auth=auth, timeout=10)


def test_the_uis_are_not_opened_without_credentials(gateway, salt_call_cli):
    gateway()
    ret = apply(salt_call_cli)
    assert ret.returncode != 0
    assert "gateway:consumers: is empty: the Mesos and Marathon UIs would be open" \
        in str(ret.data)
    assert requests.get(f"{gateway.kong.admin_url}/services", timeout=10).json()["data"] == []


def test_the_uis_are_reachable_with_basic_auth_only(gateway, salt_call_cli):
    gateway(consumers={"ops": {"password": "s3cret"}})
    ret = apply(salt_call_cli)
    assert ret.returncode == 0, ret
    assert all(state["result"] is True for state in ret.data.values())
    assert len(ret.data) == 8  # per UI service, route, plugin; consumer and credential

    for ui in UIS:
        assert through_kong(gateway.kong, ui).status_code == 401
        assert through_kong(gateway.kong, ui, auth=("ops", "wrong")).status_code == 401
        reply = through_kong(gateway.kong, ui, auth=("ops", "s3cret"))
        assert reply.status_code == 200 and reply.json()["instance"] == ui

    again = apply(salt_call_cli, test=True)
    assert [state["changes"] for state in again.data.values()] == [{}] * 8
    assert all(state["result"] is True for state in again.data.values())

    ret = apply(salt_call_cli, "gateway.clean")
    assert ret.returncode == 0, ret
    assert requests.get(f"{gateway.kong.admin_url}/services", timeout=10).json()["data"] == []
    assert requests.get(f"{gateway.kong.admin_url}/consumers", timeout=10).json()["data"] == []


def test_a_new_password_in_pillar_replaces_the_old_one(gateway, salt_call_cli):
    gateway(consumers={"ops": {"password": "s3cret"}})
    assert apply(salt_call_cli).returncode == 0
    gateway(consumers={"ops": {"password": "r0tated"}})
    credential = "kong_|-Kong consumer ops has its basic-auth credential_|-ops_|-entity_present"

    predicted = apply(salt_call_cli, test=True).data
    assert [sid for sid, state in predicted.items() if state["changes"]] == [credential]
    expected = {"password": {"old": "<another value>", "new": "<as given>"}}
    assert predicted[credential]["changes"] == expected and predicted[credential]["result"] is None
    assert through_kong(gateway.kong, "mesos", auth=("ops", "s3cret")).status_code == 200

    applied = apply(salt_call_cli)
    assert applied.returncode == 0, applied
    assert applied.data[credential]["changes"] == expected
    assert "r0tated" not in str(applied.data) and "s3cret" not in str(applied.data)
    assert through_kong(gateway.kong, "mesos", auth=("ops", "s3cret")).status_code == 401
    assert through_kong(gateway.kong, "mesos", auth=("ops", "r0tated")).status_code == 200
    assert all(not state["changes"] for state in apply(salt_call_cli).data.values())


def test_auth_false_opens_the_uis_explicitly(gateway, salt_call_cli):
    gateway(auth=False)
    ret = apply(salt_call_cli)
    assert ret.returncode == 0, ret
    assert through_kong(gateway.kong, "marathon").json()["instance"] == "marathon"


def test_a_kong_service_of_someone_else_is_not_taken_over(gateway, salt_call_cli):
    requests.put(f"{gateway.kong.admin_url}/services/mesos",
                 json={"url": "http://elsewhere.example:5050"}, timeout=10).raise_for_status()
    gateway(consumers={"ops": {"password": "s3cret"}})
    ret = apply(salt_call_cli)
    assert ret.returncode != 0
    mesos = ret.data["kong_|-Kong service mesos is present_|-mesos_|-entity_present"]
    assert mesos["result"] is False
    assert "Kong services/mesos exists and is not registered by Salt: refusing to take it over" \
        == mesos["comment"]
    service = requests.get(f"{gateway.kong.admin_url}/services/mesos", timeout=10).json()
    assert service["host"] == "elsewhere.example"


@pytest.mark.parametrize(
    "gateway_pillar, message",
    [
        ({"auth": "false"}, "gateway:auth: expected one of 'basic-auth', 'key-auth', False, "
                            "not the string 'false'"),
        ({"consumers": {"ops": {"pasword": "s3cret"}}},
         "gateway:consumers:ops: unknown key(s) pasword (allowed: password)"),
        ({"consumers": ["ops"]}, "gateway:consumers: expected a mapping, not ['ops']"),
        ({"auth": False, "uis": {"mesos": "5050"}},
         "gateway:uis:mesos: expected an integer from 1 to 65535, not the string '5050'"),
    ],
)
def test_a_wrong_gateway_pillar_is_refused_and_nothing_is_written(
    gateway, salt_call_cli, gateway_pillar, message
):
    gateway(**gateway_pillar)
    ret = apply(salt_call_cli)
    assert ret.returncode != 0
    assert message in str(ret.data)
    for collection in ("services", "routes", "consumers", "plugins"):
        assert requests.get(f"{gateway.kong.admin_url}/{collection}",
                            timeout=10).json()["data"] == []


def test_an_api_key_is_in_no_state_name_output_or_event(
    gateway, salt_cli, salt_master, salt_minion, event_listener
):
    key = "k3y-4uth-s3cret-value"
    gateway(auth="key-auth", consumers={"ops": {"key": key}})
    started = time.time()
    ret = salt_cli.run("state.apply", "gateway", minion_tgt=salt_minion.id)
    assert ret.returncode == 0, ret
    assert len(ret.data) == 8 and all(state["result"] is True for state in ret.data.values())
    assert key not in str(ret.data)
    assert through_kong(gateway.kong, "mesos").status_code == 401
    reply = requests.get(f"{gateway.kong.proxy_url}/", timeout=10,
                         headers={"Host": "mesos.service.consul", "apikey": key})
    assert reply.status_code == 200

    # A new key is rewritten, and reported without either value.
    gateway(auth="key-auth", consumers={"ops": {"key": key + "-2"}})
    rotated = salt_cli.run("state.apply", "gateway", minion_tgt=salt_minion.id)
    changed = {sid: state["changes"] for sid, state in rotated.data.items() if state["changes"]}
    assert list(changed.values()) == [{"key": {"old": "<another value>", "new": "<as given>"}}]
    assert key not in str(rotated.data)

    returns = event_listener.wait_for_events(
        [(salt_master.id, f"salt/job/*/ret/{salt_minion.id}")],
        after_time=started, timeout=30)
    assert returns.found_all_events, returns.missed
    events = event_listener.get_events([(salt_master.id, "*")], after_time=started)
    assert events and not [event.tag for event in events if key in str(event.data)]
