"""
The cloud maps and profiles as salt-cloud reads them: the nodes of each map, their role
grains (what salt/top.sls targets), and the private master (never kong, the host facing the
internet) made the salt-master, only when salt deploys.
"""

import copy
import pathlib

import pytest
import salt.config
import salt.loader
import salt.template
import salt.utils.yaml

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def _render_map(name, deploy):
    opts = copy.deepcopy(salt.config.DEFAULT_MASTER_OPTS)
    opts.update(deploy=deploy, file_client="local")
    renderers = salt.loader.render(opts, {})
    return salt.template.compile_template(
        str(REPO_ROOT / "cloud.maps.d" / name), renderers, "jinja|yaml", [], []
    )


def _providers():
    return salt.config.apply_cloud_providers_config(
        salt.utils.yaml.safe_load((REPO_ROOT / "cloud.providers.d" / "aws.conf").read_text())
    )


def _profiles():
    return salt.config.apply_vm_profiles_config(
        _providers(),
        salt.utils.yaml.safe_load((REPO_ROOT / "cloud.profiles.d" / "showcase.conf").read_text()),
    )


def _nodes(rendered):
    return {
        next(iter(entry)) if isinstance(entry, dict) else entry: profile
        for profile, entries in rendered.items()
        for entry in entries
    }


@pytest.mark.parametrize(
    "name,nodes",
    [
        (
            "default.map",
            {"kong": "kong", "master": "salt_master", **{f"slave{i}": "slave" for i in range(3)}},
        ),
        (
            "ha.map",
            {
                "kong": "kong",
                "master0": "salt_master",
                **{f"master{i}": "master" for i in (1, 2)},
                **{f"slave{i}": "slave" for i in range(3)},
            },
        ),
    ],
)
def test_maps_place_every_node_on_its_role_profile(name, nodes):
    assert _nodes(_render_map(name, deploy=False)) == nodes


@pytest.mark.parametrize("name,salt_master", [("default.map", "master"), ("ha.map", "master0")])
@pytest.mark.parametrize("deploy", [True, False])
def test_the_private_master_becomes_the_salt_master_only_when_salt_deploys(
    name, salt_master, deploy
):
    # salt-cloud refuses make_master together with --no-deploy.
    rendered = _render_map(name, deploy=deploy)
    made_masters = [
        node
        for entries in rendered.values()
        for entry in entries
        if isinstance(entry, dict)
        for node, settings in entry.items()
        if "make_master" in settings
    ]
    assert made_masters == [salt_master]
    assert rendered["salt_master"] == [{salt_master: {"make_master": deploy}}]
    assert rendered["kong"] == ["kong"]


def test_profiles_carry_the_role_grains_and_network_placement():
    profiles = _profiles()
    placement = {
        name: (
            profiles[name]["grains"]["roles"],
            profiles[name]["subnet"],
            profiles[name]["security_groups"],
            profiles[name]["size"],
            profiles[name]["image"],
        )
        for name in ("kong", "master", "salt_master", "slave")
    }
    assert placement == {
        "kong": (["kong"], "showcase-public", ["kong_sg"], "t2.medium", "debian12"),
        "master": (["master"], "showcase-private", ["master_sg"], "t2.medium", "debian12"),
        "salt_master": (["master"], "showcase-private", ["master_sg"], "t2.medium", "debian12"),
        "slave": (["slave"], "showcase-private", ["slave_sg"], "t2.medium", "debian12"),
    }
    for name in ("master", "salt_master", "slave"):
        assert profiles[name]["ssh_interface"] == "private_ips"
        assert profiles[name]["ssh_gateway_node"] == "kong"
    assert profiles["salt_master"]["ssh_gateway_profile"] == "kong"
    assert profiles["kong"]["eip"] == "showcase-kong"


def test_only_the_salt_master_holds_the_tree_the_master_config_and_the_engine():
    profiles = _profiles()
    salt_master = profiles["salt_master"]
    # salt-cloud copies a directory into a target ending with "/" (sftp put -r): salt/ and
    # pillar/ land where the master configuration reads them.
    assert salt_master["file_map"] == {"salt": "/srv/showcase/", "pillar": "/srv/showcase/"}
    assert salt_master["master"]["file_roots"] == {"base": ["/srv/showcase/salt"]}
    assert salt_master["master"]["pillar_roots"] == {"base": ["/srv/showcase/pillar"]}
    assert salt_master["master"]["engines"] == [{"marathon_registrar": {}}]
    for name in ("kong", "master", "slave"):
        assert not {"file_map", "master", "make_master"} & set(profiles[name]), name
    assert _providers()["showcase"]["aws_ec2"]["salt_master_node"] == "master"


def test_debian_12_from_debians_own_account_is_the_only_image():
    # The formulas refuse CentOS 7 and EL9: no alias may still offer them.
    assert _providers()["showcase"]["aws_ec2"]["images"] == {
        "debian12": {"owner": "136693071363", "name": "debian-12-amd64-*", "ssh_username": "admin"}
    }
