"""The foundation: real daemons from the repository's configuration, custom code synced."""

import pathlib

import pytest

pytestmark = pytest.mark.slow

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_master_and_minion_exchange_a_ping(salt_cli, salt_minion):
    ret = salt_cli.run("test.ping", minion_tgt=salt_minion.id)
    assert ret.returncode == 0, ret
    assert ret.data is True


def _custom_modules(kind):
    """Names of the project's custom modules of one kind (salt/_<kind>/*.py)."""
    return sorted(path.stem for path in (REPO_ROOT / "salt" / f"_{kind}").glob("*.py"))


@pytest.mark.parametrize("kind", ["modules", "states", "utils", "engines"])
def test_sync_all_reports_the_project_custom_modules(salt_minion, kind):
    expected = _custom_modules(kind)
    if not expected:
        pytest.skip(f"the project has no salt/_{kind} yet")
    synced = salt_minion.synced_modules[kind]
    assert sorted(name.split(".", 1)[1] for name in synced) == expected


def test_minion_has_the_grains_the_gateway_targets(salt_call_cli):
    ret = salt_call_cli.run("grains.get", "roles")
    assert ret.returncode == 0, ret
    assert ret.data == ["kong"]


def test_local_pillar_overrides_reach_the_minion(local_pillar, salt_call_cli):
    local_pillar.write({"harness_probe": {"value": 42}})
    ret = salt_call_cli.run("pillar.get", "harness_probe:value", unmask=True)
    assert ret.data == 42
    local_pillar.clear()
    ret = salt_call_cli.run("pillar.get", "harness_probe:value", unmask=True)
    assert ret.data == ""
