"""One listener's labels and a model's input features (perser.methods.inputs)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from perser.corpus.model import LabelSpace
from perser.errors import ConfigError, CorpusError
from perser.methods.inputs import encode_ratings, read_ratings

CAT = LabelSpace("emotion", "categorical", classes=("ang", "hap", "sad"))
MULTI = LabelSpace("emotion", "multilabel", classes=("ang", "hap", "sad"))
DIM = LabelSpace("avd", "dimensional", dimensions=("arousal", "valence"), scale=(1.0, 5.0))


def test_encode_ratings_per_kind():
    assert encode_ratings(["sad", "ang"], CAT).tolist() == [2, 0]
    assert encode_ratings([["ang", "sad"], [], "hap;sad"], MULTI).tolist() == [[1, 0, 1], [0, 0, 0], [0, 1, 1]]
    y = encode_ratings([{"arousal": 2, "valence": "4.5"}], DIM)
    assert y.dtype == np.float32 and y.tolist() == [[2.0, 4.5]]


@pytest.mark.parametrize("space, labels, error, match", [
    (CAT, ["ang", ["hap"]], ConfigError, r"r\[1\]: space 'emotion' is categorical"),
    (CAT, ["ang", "joy"], CorpusError, r"label 'joy' \(rating row 'r\[1\]'\)"),
    (MULTI, [["a;b"]], ConfigError, r"r\[0\]: class 'a;b' contains ';'"),
    (DIM, [{"arousal": 2}], ConfigError, r"r\[0\]: needs exactly the dimensions.*missing \['valence'\]"),
    (DIM, [{"arousal": 2, "valence": 3, "x": 1}], ConfigError, r"unknown \['x'\]"),
    (DIM, [{"arousal": "high", "valence": 3}], CorpusError, r"r\[0\]: arousal value 'high' is not a number"),
    (DIM, [{"arousal": 6, "valence": 3}], CorpusError, r"r\[0\]: arousal value 6.0 is outside the scale"),
    (DIM, [{"arousal": float("nan"), "valence": 3}], CorpusError, "is not a number"),
])
def test_encode_ratings_errors_name_the_rating(space, labels, error, match):
    with pytest.raises(error, match=match):
        encode_ratings(labels, space, [f"r[{i}]" for i in range(len(labels))])


def test_read_ratings_csv_and_json_agree(tmp_path):
    pd.DataFrame({"path": ["a.wav", "/abs/b.wav"], "arousal": ["2", "3"], "valence": ["1", "5"]}).to_csv(
        tmp_path / "r.csv", index=False)
    (tmp_path / "r.json").write_text(json.dumps([
        {"path": "a.wav", "values": {"arousal": 2, "valence": 1}},
        {"path": "/abs/b.wav", "values": {"arousal": 3, "valence": 5}}]))
    a, b = read_ratings(tmp_path / "r.csv", DIM), read_ratings(tmp_path / "r.json", DIM)
    assert a.clip_ids is None and a.paths == [str(tmp_path / "a.wav"), "/abs/b.wav"]
    assert a.paths == b.paths and np.array_equal(a.y, b.y) and len(a) == 2


def test_read_ratings_errors_name_file_and_line(tmp_path):
    f = tmp_path / "r.csv"
    f.write_text("clip_id,arousal,valence\nc1,2,3\nc2,9,3\n")
    with pytest.raises(CorpusError, match=r"r\.csv:3: arousal value 9\.0 is outside the scale"):
        read_ratings(f, DIM)
    f.write_text("clip_id,arousal\nc1,2\n")
    with pytest.raises(ConfigError, match=r"missing label column\(s\) \['valence'\]"):
        read_ratings(f, DIM)
    f.write_text("clip_id,emotion\n")
    with pytest.raises(ConfigError, match="no ratings"):
        read_ratings(f, CAT)
    j = tmp_path / "r.json"
    j.write_text(json.dumps([{"clip_id": "c1", "label": "ang"}, {"clip_id": "c2", "values": {"x": 1}}]))
    with pytest.raises(ConfigError, match=r"r\.json: ratings\[1\]: space 'emotion' is categorical: give 'label'"):
        read_ratings(j, CAT)
    j.write_text(json.dumps([{"clip_id": "c1", "label": "ang"}, {"path": "x.wav", "label": "hap"}]))
    with pytest.raises(ConfigError, match="every rating a 'clip_id', or every rating a 'path'"):
        read_ratings(j, CAT)
