"""Salt commands run from the repository root use the repository's configuration (Saltfile)."""

import json
import os
import pathlib
import subprocess
import sys

import pytest
import salt.utils.yaml

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN_DIR = pathlib.Path(sys.executable).parent

pytestmark = pytest.mark.slow


def run_from_repo_root(*command):
    """Run a Salt command exactly as an operator types it in the repository root."""
    env = dict(os.environ, PATH=f"{BIN_DIR}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run(
        [str(BIN_DIR / command[0]), *command[1:], "--out=json"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr or proc.stdout
    return json.loads(proc.stdout)


def _top_level_keys(pattern):
    keys = set()
    for path in sorted(REPO_ROOT.glob(pattern)):
        keys.update(salt.utils.yaml.safe_load(path.read_text()) or {})
    return keys


def test_salt_call_serves_the_repository_file_roots():
    listed = run_from_repo_root("salt-call", "--local", "cp.list_master")["local"]
    expected = sorted(
        str(path.relative_to(REPO_ROOT / "salt"))
        for path in (REPO_ROOT / "salt").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    )
    assert sorted(listed) == expected


def test_salt_call_compiles_the_repository_pillar():
    keys = run_from_repo_root("salt-call", "--local", "pillar.ls")["local"]
    assert keys, "the repository pillar compiled to nothing"
    assert "_errors" not in keys


def test_salt_cloud_lists_the_repository_providers():
    expected = _top_level_keys("cloud.providers.d/*.conf")
    assert expected, "cloud.providers.d/ defines no provider"
    listed = run_from_repo_root("salt-cloud", "--list-providers")
    assert set(listed) == expected


def test_salt_cloud_lists_the_repository_profiles():
    expected = _top_level_keys("cloud.profiles.d/*.conf")
    assert expected, "cloud.profiles.d/ defines no profile"
    for provider in run_from_repo_root("salt-cloud", "--list-providers"):
        # Output: {profile: {provider: {...}}}
        listed = run_from_repo_root("salt-cloud", "--list-profiles", provider)
        assert set(listed) == expected
        assert all(set(providers) == {provider} for providers in listed.values())
