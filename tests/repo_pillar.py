"""The repository's pillar files as the master renders them (pillar/aws.sls imports
pillar/platform.sls), for tests that read their defaults."""

import pathlib

import jinja2
import salt.utils.jinja
import salt.utils.yaml

PILLAR_ROOT = pathlib.Path(__file__).resolve().parents[1] / "pillar"


def rendered_pillar(name):
    """The data of ``pillar/<name>`` after its Jinja (Salt's ``import_yaml`` included)."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(PILLAR_ROOT),
        extensions=[salt.utils.jinja.SerializerExtension],
    )
    return salt.utils.yaml.safe_load(environment.get_template(name).render())
