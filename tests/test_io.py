"""Atomic folder writes (perser._io.atomic_dir), used by every writer of a folder."""

import pytest

from perser._io import atomic_dir


def test_creates_the_folder_only_when_the_block_ends(tmp_path):
    out = tmp_path / "sub" / "out"
    with atomic_dir(out) as tmp:
        (tmp / "a.txt").write_text("new")
        assert not out.exists()
        assert tmp.parent == out.parent and tmp.name.startswith(".out.")
    assert (out / "a.txt").read_text() == "new"
    assert sorted(p.name for p in out.parent.iterdir()) == ["out"]


def test_replaces_an_existing_folder_and_clears_a_stale_old_one(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.txt").write_text("old")
    stale = tmp_path / ".out.old"
    stale.mkdir()
    (stale / "junk").write_text("x")
    with atomic_dir(out) as tmp:
        (tmp / "b.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_failing_block_leaves_the_old_folder_and_no_temporary(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.txt").write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_dir(out) as tmp:
            (tmp / "b.txt").write_text("half")
            raise RuntimeError("boom")
    assert (out / "a.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_the_methods_module_re_exports_it():
    from perser.methods import persist

    assert persist.atomic_dir is atomic_dir


def test_written_folder_gets_plain_mkdir_permissions(tmp_path):
    import os

    from perser._io import atomic_dir

    mask = os.umask(0o022)
    try:
        with atomic_dir(tmp_path / "out") as tmp:
            (tmp / "f.txt").write_text("x")
    finally:
        os.umask(mask)
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o755
