"""perser._io: atomic folder and file writes, JSON coercion, package versions, counted warnings."""

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


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path):
    from perser._io import atomic_write

    f = tmp_path / "a.txt"
    atomic_write(f, "old")

    def boom(fh):
        fh.write(b"half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(f, boom)
    assert f.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
    atomic_write(f, b"new")
    assert f.read_bytes() == b"new"


def test_jsonable_and_json_default():
    import json
    from pathlib import Path

    import numpy as np

    from perser._io import json_default, jsonable

    doc = {1: [np.int64(3), np.float32(0.5), np.bool_(True)], "p": Path("/x"), "nan": float("nan")}
    assert jsonable(doc, nan=None) == {"1": [3, 0.5, True], "p": "/x", "nan": None}
    assert json.loads(json.dumps({"a": np.arange(2)}, default=json_default)) == {"a": [0, 1]}
    with pytest.raises(TypeError, match="set"):
        json_default({1})


def test_package_versions():
    from perser._io import package_versions

    v = package_versions("numpy", "no-such-package-xyz", python=True)
    assert v["numpy"].count(".") >= 1 and v["no-such-package-xyz"] == "unknown" and "python" in v
    assert "no-such-package-xyz" not in package_versions("no-such-package-xyz", missing=None)


def test_counted_warnings_keep_their_parts_and_pickle():
    import pickle
    import warnings

    from perser.errors import CountedWarning, PerserWarning, SkipLog

    log = SkipLog("toy")
    log.add("clips left out", "a")
    log.add("clips left out", "b", n=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        log.emit()
    (w,) = caught
    assert issubclass(w.category, PerserWarning) and str(w.message) == "toy: 3 clips left out (e.g. a, b)"
    c = w.message
    assert isinstance(c, CountedWarning) and (c.source, c.reason, c.n, c.examples) == ("toy", "clips left out", 3, ["a", "b"])
    c2 = pickle.loads(pickle.dumps(c))
    assert str(c2) == str(c) and c2.examples == ["a", "b"]
