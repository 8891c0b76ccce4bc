"""Benchmarks, run on demand: ``./run bench registration|sync``.

The package puts salt/_utils and salt/_engines on sys.path, as the Salt loader does for custom
modules, before any benchmark module imports them.
"""

import pathlib
import sys

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO_ROOT / "salt" / "_utils"), str(REPO_ROOT / "salt" / "_engines")]
