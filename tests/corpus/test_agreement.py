import krippendorff
import numpy as np
import pandas as pd
import pytest

from perser.corpus import agreement as A
from perser.corpus.model import Corpus, LabelSpace, make_clips, make_ratings

EMO = LabelSpace("emotion", "categorical", ("a", "b", "c", "d"))

# Fleiss (1971)-style worked example: 10 subjects, 14 raters each, 5 categories
FLEISS_TABLE = np.array([
    [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
])


def test_fleiss_kappa_matches_hand_computation():
    n = 14
    p_i = [(sum(x * x for x in row) - n) / (n * (n - 1)) for row in FLEISS_TABLE.tolist()]
    p_bar = sum(p_i) / len(p_i)
    p_j = [sum(col) / (n * len(FLEISS_TABLE)) for col in FLEISS_TABLE.T.tolist()]
    p_e = sum(p * p for p in p_j)
    assert A.fleiss_kappa(FLEISS_TABLE) == pytest.approx((p_bar - p_e) / (1 - p_e), abs=1e-12)
    assert A.fleiss_kappa(FLEISS_TABLE) == pytest.approx(0.2099, abs=5e-5)  # the published figure


def test_fleiss_kappa_variable_raters_by_hand_and_edge_cases():
    m = np.array([[3, 0], [1, 1], [0, 2], [1, 0]])  # last item has one rating: left out
    n = np.array([3, 2, 2])
    p_bar = np.mean([(9 - 3) / 6, (2 - 2) / 2, (4 - 2) / 2])
    p = np.array([4, 3]) / 7
    expect = (p_bar - (p**2).sum()) / (1 - (p**2).sum())
    assert A.fleiss_kappa(m) == pytest.approx(expect)
    assert n.sum() == 7
    assert A.fleiss_kappa(np.array([[3, 0], [2, 0]])) == 1.0
    assert np.isnan(A.fleiss_kappa(np.array([[1, 0], [0, 1]])))
    assert A.fleiss_kappa(np.array([[2, 0], [0, 2], [2, 0], [0, 2]])) == pytest.approx(1.0)


def _random_reliability(seed, n_raters=8, n_units=40, n_values=4, missing=0.45):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, n_values, n_units)
    data = np.where(rng.random((n_raters, n_units)) < 0.6, truth, rng.integers(0, n_values, (n_raters, n_units))).astype(float)
    data[rng.random(data.shape) < missing] = np.nan
    return data


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_krippendorff_nominal_matches_reference_package(seed):
    data = _random_reliability(seed)
    counts = np.zeros((data.shape[1], 4))
    for r, u in zip(*np.nonzero(~np.isnan(data))):
        counts[u, int(data[r, u])] += 1
    expect = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    assert A.krippendorff_alpha_nominal(counts) == pytest.approx(expect, abs=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_krippendorff_interval_matches_reference_package(seed):
    rng = np.random.default_rng(seed)
    data = rng.normal(size=(6, 30)) + rng.normal(size=30)[None, :] * 1.5 + 3
    data[rng.random(data.shape) < 0.4] = np.nan
    units = np.broadcast_to(np.arange(30), data.shape)
    expect = krippendorff.alpha(reliability_data=data, level_of_measurement="interval")
    assert A.krippendorff_alpha_interval(units.ravel(), data.ravel()) == pytest.approx(expect, abs=1e-10)
    # shifting all values by a large constant changes nothing (numerically stable)
    assert A.krippendorff_alpha_interval(units.ravel(), data.ravel() + 1e6) == pytest.approx(expect, abs=1e-7)


def _corpus_from_matrix(data, classes=None):
    rows = []
    for r, u in zip(*np.nonzero(~np.isnan(data))):
        v = data[r, u]
        row = {"clip_id": f"u{u:03d}", "annotator_id": f"r{r}"}
        if classes:
            row["emotion"] = classes[int(v)]
        else:
            row["arousal"] = float(v)
        rows.append(row)
    clips = make_clips([{"clip_id": f"u{u:03d}", "path": "/x.wav", "speaker": "s"} for u in range(data.shape[1])])
    space = EMO if classes else LabelSpace("av", "dimensional", dimensions=("arousal",), scale=(-100, 100))
    return Corpus("t", clips, make_ratings(rows), {space.name: space}).validate(), space


def test_agreement_on_a_corpus_matches_reference_package():
    data = _random_reliability(5)
    corpus, _ = _corpus_from_matrix(data, classes=EMO.classes)
    ag = A.agreement(corpus)
    assert ag["krippendorff_alpha"] == pytest.approx(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))
    assert ag["n_ratings"] == int((~np.isnan(data)).sum())
    assert ag["n_clips_pairable"] == int(((~np.isnan(data)).sum(axis=0) >= 2).sum())
    assert 0 < ag["plurality_share"] <= 1 and -1 < ag["fleiss_kappa"] < 1

    vals = np.random.default_rng(1).normal(size=(5, 25)) * 10
    vals[np.random.default_rng(2).random(vals.shape) < 0.3] = np.nan
    corpus, _ = _corpus_from_matrix(vals)
    ag = A.agreement(corpus)
    expect = krippendorff.alpha(reliability_data=vals, level_of_measurement="interval")
    assert ag["krippendorff_alpha"]["arousal"] == pytest.approx(expect)


def test_multilabel_agreement_is_per_class_binary():
    ml = LabelSpace("tags", "multilabel", ("x", "y"))
    r = make_ratings(pd.DataFrame(
        [("c1", "a", "x"), ("c1", "b", "x;y"), ("c1", "c", "x"), ("c2", "a", "y"), ("c2", "b", "y"), ("c2", "c", "x;y")],
        columns=["clip_id", "annotator_id", "tags"],
    ))
    ag = A.agreement(r, ml)
    x_counts = np.array([[3, 0], [1, 2]])  # ticked / not ticked per clip
    y_counts = np.array([[1, 2], [3, 0]])
    assert ag["per_class"]["x"]["fleiss_kappa"] == pytest.approx(A.fleiss_kappa(x_counts))
    assert ag["per_class"]["y"]["krippendorff_alpha"] == pytest.approx(A.krippendorff_alpha_nominal(y_counts))
    assert ag["fleiss_kappa"] == pytest.approx((A.fleiss_kappa(x_counts) + A.fleiss_kappa(y_counts)) / 2)


def test_undefined_agreement_is_none():
    r = make_ratings(pd.DataFrame([("c1", "a", "a"), ("c2", "a", "b")], columns=["clip_id", "annotator_id", "emotion"]))
    ag = A.agreement(r, EMO)
    assert ag["fleiss_kappa"] is None and ag["krippendorff_alpha"] is None and ag["n_clips_pairable"] == 0
