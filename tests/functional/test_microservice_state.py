"""The `microservice` states through Salt's real loader (no daemons), in both test modes."""

import pytest

WEB = {"web": {"port": 10000, "instances": {"web1": {"address": "10.0.12.223", "port": 53769}}}}


@pytest.fixture
def states(registry_loaders, consul_clean, vulcand_clean, kong_clean):
    registry_loaders.context.clear()
    return registry_loaders.states


@pytest.fixture(params=(False, True), ids=("real", "test"))
def testmode(request):
    return request.param


def registered(registry_loaders):
    return registry_loaders.modules.consul.list_services()


def test_converged_registers_then_changes_nothing(states, registry_loaders, testmode):
    ret = states.microservice.converged("services", services=WEB, test=testmode)
    assert (ret.result is None) is testmode
    assert sorted(ret.changes["web"]) == [
        "consul service web", "kong route web", "kong service web", "vulcand backend web",
        "vulcand frontend web", "vulcand host web.service.consul", "vulcand listener web",
        "vulcand server web/web1",
    ]
    assert ret.changes["web"]["vulcand server web/web1"] == {
        "old": None, "new": {"URL": "http://10.0.12.223:53769"}}
    assert (registered(registry_loaders) == {}) is testmode

    if not testmode:
        again = states.microservice.converged("services", services=WEB)
        assert again.result is True and again.changes == {}


def test_absent_removes_what_registered_created(states, registry_loaders, testmode):
    assert states.microservice.registered("web", port=10000).result is True

    ret = states.microservice.absent("web", test=testmode)
    assert (ret.result is None) is testmode
    assert len(ret.changes["web"]) == 7
    assert ("web" in registered(registry_loaders)) is testmode


def test_a_bad_spec_fails_before_reading_anything(states, testmode):
    ret = states.microservice.registered("web", port="http", test=testmode)
    assert ret.result is False
    assert ret.comment == ("microservice.registered:web:port: expected an integer from 1 to "
                           "65535, not the string 'http'")
    assert ret.changes == {}
