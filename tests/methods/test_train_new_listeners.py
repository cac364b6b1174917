"""``perser train`` leaves out the listeners annotators.csv marks as new, unless asked."""

from __future__ import annotations

import json

import pandas as pd
from typer.testing import CliRunner

from perser.cli import method_cmd
from perser.testing.cli import command_app

from .test_cli import TRAIN, write_corpus


def test_train_uses_seen_listeners_only_unless_asked(tmp_path):
    write_corpus(tmp_path / "toy")
    pd.DataFrame({"annotator_id": ["w0", "w1", "w2", "w3"], "new": [False, False, True, True]}).to_csv(
        tmp_path / "toy" / "annotators.csv", index=False)
    app, cli = command_app(method_cmd), CliRunner()
    feats = str(tmp_path / "toy" / "feats.npz")
    base = ["train", str(tmp_path / "toy"), "--features", feats, "--method", "similar", "-p", "min_ratings=50", *TRAIN]
    r = cli.invoke(app, [*base, "--out", str(tmp_path / "seen")])
    assert r.exit_code == 0, r.output
    assert "left out 2 listeners" in r.output
    assert json.loads((tmp_path / "seen" / "config.json").read_text())["seen_annotators"] == ["w0", "w1"]
    r = cli.invoke(app, [*base, "--out", str(tmp_path / "all"), "--new-listeners"])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "all" / "config.json").read_text())["seen_annotators"] == ["w0", "w1", "w2", "w3"]
