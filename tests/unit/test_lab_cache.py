"""The lab's cache (lab/image.py): an entry is built once and reused; building a new one removes
the entries of its kind unused for a week, and nothing else."""

import os
import time

from lab import image


def entry(cache, name, days_unused):
    path = cache / name
    path.mkdir()
    (path / "content").write_text(name)
    stamp = time.time() - days_unused * 86400
    os.utime(path, (stamp, stamp))
    return path


def test_a_new_build_removes_only_its_kinds_entries_unused_for_a_week(tmp_path, monkeypatch):
    monkeypatch.setattr(image, "CACHE", tmp_path)
    stale = entry(tmp_path, "image-old", image.UNUSED_DAYS + 1)
    recent = entry(tmp_path, "image-recent", image.UNUSED_DAYS - 1)
    unfinished = entry(tmp_path, "image-killed.tmp", image.UNUSED_DAYS + 1)
    other_kind = entry(tmp_path, "mirror-old-image-old", image.UNUSED_DAYS + 1)
    built = []

    def build(directory):
        built.append(directory)
        (directory / "content").write_text("new")

    new = image.cached("image", "new", "a test image", build)
    assert new == tmp_path / "image-new" and (new / "content").read_text() == "new"
    assert not stale.exists()
    assert recent.exists() and unfinished.exists() and other_kind.exists()
    # Reused, not rebuilt, and marked used: a week later it is still there for the next build.
    assert image.cached("image", "recent", "a test image", build) == recent and len(built) == 1
    assert time.time() - recent.stat().st_mtime < 60


def test_an_entry_in_use_is_never_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setattr(image, "CACHE", tmp_path)
    existing = entry(tmp_path, "wheelhouse-abc", image.UNUSED_DAYS + 3)

    def build(directory):
        raise AssertionError("rebuilt an existing entry")

    assert image.cached("wheelhouse", "abc", "a wheelhouse", build) == existing
    assert image.prune("wheelhouse") == []
