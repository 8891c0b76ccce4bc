"""The `microservice` states through Salt's real loader (no daemons), in both test modes."""

import pathlib

import pytest
from saltfactories.utils import random_string
from saltfactories.utils.functional import Loaders

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
WEB = {"web": {"port": 10000, "instances": {"web1": {"address": "10.0.12.223", "port": 53769}}}}


@pytest.fixture(scope="module")
def minion_opts(salt_factories, consul, vulcand, kong):
    """Minion options with the project's custom code and the platform settings in the config
    (config.get reads the minion config before pillar)."""
    factory = salt_factories.salt_minion_daemon(
        random_string("functional-"),
        overrides={
            "file_client": "local",
            "module_dirs": [str(REPO_ROOT / "salt")],
            "platform": {
                "cluster": "showcase",
                "consul": {"url": consul.url, "token": consul.token or ""},
                "vulcand": {"url": vulcand.url},
                "kong": {"admin_url": kong.admin_url},
            },
        },
    )
    return factory.config.copy()


@pytest.fixture(scope="module")
def loaders(minion_opts):
    return Loaders(minion_opts)


@pytest.fixture
def states(loaders, consul_clean, vulcand_clean, kong_clean):
    loaders.context.clear()
    return loaders.states


@pytest.fixture(params=(False, True), ids=("real", "test"))
def testmode(request):
    return request.param


def registered(loaders):
    return loaders.modules.consul.list_services()


def test_converged_registers_then_changes_nothing(states, loaders, testmode):
    ret = states.microservice.converged("services", services=WEB, test=testmode)
    assert (ret.result is None) is testmode
    assert sorted(ret.changes["web"]) == [
        "consul service web", "kong route web", "kong service web", "vulcand backend web",
        "vulcand frontend web", "vulcand host web.service.consul", "vulcand listener web",
        "vulcand server web/web1",
    ]
    assert ret.changes["web"]["vulcand server web/web1"] == {
        "old": None, "new": {"URL": "http://10.0.12.223:53769"}}
    assert (registered(loaders) == {}) is testmode

    if not testmode:
        again = states.microservice.converged("services", services=WEB)
        assert again.result is True and again.changes == {}


def test_absent_removes_only_what_present_registered(states, loaders, testmode):
    assert states.microservice.present("web", port=10000).result is True

    ret = states.microservice.absent("web", test=testmode)
    assert (ret.result is None) is testmode
    assert len(ret.changes["web"]) == 7
    assert ("web" in registered(loaders)) is testmode


def test_a_bad_spec_fails_before_reading_anything(states, testmode):
    ret = states.microservice.present("web", port="http", test=testmode)
    assert ret.result is False
    assert ret.comment == "invalid port of service 'web' 'http': expected an integer from 1 to 65535"
    assert ret.changes == {}
