"""Paper-mode metrics (Tavernor & Mower Provost's CCC_ind / CCC_con, scikit-learn's macro-F1)
computed by hand on small data and compared with perser's numbers, and predictions.csv."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import ttest_rel

from perser.corpus.model import LabelSpace
from perser.evaluate.metrics import ccc, multilabel_metrics
from perser.evaluate.paper_metrics import paper_summary, predictions_frame, tavernor_runs
from perser.evaluate.runner import Block
from perser.evaluate.scoring import score_blocks
from perser.methods.tavernor import tavernor_ccc, tavernor_ccc_np

AV = LabelSpace("av", "dimensional", dimensions=("arousal", "valence"), scale=(1, 5))


def by_hand_ccc(y, p):
    """The authors' formula written out: unbiased (n-1) moments, biased squared mean difference,
    a deviation from the mean that is exactly 0 replaced by 1e-8 inside Pearson's r."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    sy, sp = y.std(ddof=1), p.std(ddof=1)
    dy, dp = y - y.mean(), p - p.mean()
    dy[dy == 0], dp[dp == 0] = 1e-8, 1e-8
    r = (dy * dp).sum() / np.sqrt((dy ** 2).sum() * (dp ** 2).sum())
    return 2 * r * sy * sp / (sy ** 2 + sp ** 2 + (y.mean() - p.mean()) ** 2)


def test_tavernor_ccc_is_the_authors_estimator_not_lins():
    rng = np.random.default_rng(0)
    y, p = rng.normal(size=7), rng.normal(size=7) * 0.5 + 0.3
    assert tavernor_ccc_np(y, p) == pytest.approx(by_hand_ccc(y, p), rel=1e-12)
    # Lin's population-moment CCC differs for small n (the mean term is not rescaled)
    assert abs(tavernor_ccc_np(y, p) - ccc(y, p)) > 1e-3
    # constant ratings: 0, not NaN (the authors' 1e-8 guards)
    assert tavernor_ccc_np(np.full(5, 3.0), p[:5]) == pytest.approx(0.0, abs=1e-6)
    # batched over heads against one target column, as the authors score every head
    P = torch.from_numpy(rng.normal(size=(6, 4, 2)))
    T = torch.from_numpy(rng.normal(size=(6, 1, 2)))
    out = tavernor_ccc(P, T)
    assert out.shape == (4, 2)
    for h in range(4):
        for d in range(2):
            assert float(out[h, d]) == pytest.approx(by_hand_ccc(T[:, 0, d].numpy(), P[:, h, d].numpy()), rel=1e-10)
    with pytest.raises(ValueError, match="at least 2"):
        tavernor_ccc_np([1.0], [2.0])


def _blocks():
    """Two methods x 2 seeds x 2 folds; three listeners per run, one of them with a single test clip."""
    rng = np.random.default_rng(1)
    blocks = []
    for method, noise in (("consensus", 1.0), ("similar", 0.3)):
        for seed in (0, 1):
            for fold in ("0", "1"):
                clips = [f"{fold}-c{i}" for i in range(6)]
                truth = rng.integers(1, 6, size=(6, 2)).astype(float)
                for a, idx in (("A", [0, 1, 2, 3, 4]), ("B", [1, 2, 3, 5]), ("C", [4])):
                    y = np.clip(truth[idx] + rng.integers(-1, 2, size=(len(idx), 2)), 1, 5)
                    v = truth[idx] + rng.normal(scale=noise, size=(len(idx), 2))
                    blocks.append(Block(method, "unseen", 5, seed, fold, a, np.array([clips[i] for i in idx], dtype=object),
                                        y, values=v))
    return blocks


def test_paper_ccc_ind_and_con_by_hand():
    blocks = _blocks()
    runs = tavernor_runs(blocks, AV)
    for (method, seed, fold), bs in pd.Series(blocks).groupby(
            [[b.method for b in blocks], [b.seed for b in blocks], [b.fold for b in blocks]]):
        bs = list(bs)
        for j, d in enumerate(AV.dimensions):
            # CCC_ind: listeners with >= 2 test clips only (C has one), mean over them
            expect_ind = np.mean([by_hand_ccc(b.y[:, j], b.values[:, j]) for b in bs if len(b.y) >= 2])
            got = runs[(runs.method == method) & (runs.seed == seed) & (runs.fold == fold)
                       & (runs.metric == f"paper_ccc_ind/{d}")]
            assert got["value"].item() == pytest.approx(expect_ind, rel=1e-10)
            assert got["n_listeners"].item() == 2
            # CCC_con: per clip, mean prediction vs mean rating of the evaluated listeners who rated it
            ys, ps = {}, {}
            for b in bs:
                for c, yy, pp in zip(b.clip_ids, b.y[:, j], b.values[:, j]):
                    ys.setdefault(c, []).append(yy)
                    ps.setdefault(c, []).append(pp)
            order = sorted(ys)
            expect_con = by_hand_ccc([np.mean(ys[c]) for c in order], [np.mean(ps[c]) for c in order])
            got = runs[(runs.method == method) & (runs.seed == seed) & (runs.fold == fold)
                       & (runs.metric == f"paper_ccc_con/{d}")]
            assert got["value"].item() == pytest.approx(expect_con, rel=1e-10)

    summ = paper_summary(runs, baseline="consensus")
    for d in AV.dimensions:
        m = f"paper_ccc_ind/{d}"
        sim = runs[(runs.method == "similar") & (runs.metric == m)].sort_values(["seed", "fold"])["value"].to_numpy()
        con = runs[(runs.method == "consensus") & (runs.metric == m)].sort_values(["seed", "fold"])["value"].to_numpy()
        row = summ[(summ.method == "similar") & (summ.metric == m)].iloc[0]
        assert row["mean"] == pytest.approx(sim.mean()) and row["std"] == pytest.approx(np.std(sim))  # ddof 0
        assert row["n_runs"] == 4
        p = ttest_rel(sim, con).pvalue
        assert row["p_ttest"] == pytest.approx(p)
        assert row["mark"] == ("" if p >= 0.05 else ("*" if sim.mean() > con.mean() else "†"))
        assert np.isnan(summ[(summ.method == "consensus") & (summ.metric == m)]["p_ttest"].item())

    # perser's own view of the same predictions: Lin's CCC per listener, folds pooled
    res = score_blocks(blocks, _Data(blocks), pool_folds=True, style_column=None)
    a = [b for b in blocks if b.method == "similar" and b.seed == 0 and b.annotator == "A"]
    y = np.concatenate([b.y for b in a])
    v = np.concatenate([b.values for b in a])
    got = res[(res.method == "similar") & (res.seed == 0) & (res.annotator == "A") & (res.metric == "ccc/arousal")]
    assert got["value"].item() == pytest.approx(ccc(y[:, 0], v[:, 0]))
    assert got["value"].item() != pytest.approx(
        np.mean([by_hand_ccc(b.y[:, 0], b.values[:, 0]) for b in a]))  # not the paper's per-fold number


class _Data:
    """The little score_blocks needs of EvalData: the space, the ratings (for ccc_con), no annotators."""

    def __init__(self, blocks):
        self.space = AV
        self.annotators = None
        rows = []
        for b in blocks:
            if b.method == "consensus" and b.seed == 0:
                for c, y in zip(b.clip_ids, b.y):
                    rows.append({"clip_id": c, "annotator_id": b.annotator, "arousal": y[0], "valence": y[1]})
        self.ratings = pd.DataFrame(rows)


def test_macro_f1_sklearn_counts_absent_classes_as_zero():
    from sklearn.metrics import f1_score

    y = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0]])
    p = np.array([[0.9, 0.1, 0.2], [0.8, 0.7, 0.1], [0.2, 0.3, 0.1]])  # class 2 neither rated nor predicted
    m = multilabel_metrics(y, p, 0.5)
    f_a, f_b = 1.0, 2 * 1 / (2 * 1 + 0 + 1)  # class a perfect; class b: tp 1, fn 1
    assert m["macro_f1"] == pytest.approx((f_a + f_b) / 2)          # present classes only
    assert m["macro_f1_sklearn"] == pytest.approx((f_a + f_b + 0) / 3)  # absent class counts 0
    assert m["macro_f1_sklearn"] == pytest.approx(f1_score(y, p >= 0.5, average="macro", zero_division=0))


def test_predictions_frame_columns_per_space():
    blocks = _blocks()[:3]
    df = predictions_frame(blocks, AV)
    assert list(df.columns) == ["method", "scenario", "k", "seed", "fold", "listener", "clip_id",
                                "arousal", "valence", "pred_arousal", "pred_valence"]
    assert len(df) == sum(len(b.clip_ids) for b in blocks)
    np.testing.assert_allclose(df["pred_valence"], np.concatenate([b.values[:, 1] for b in blocks]))
    cat = LabelSpace("emo", "categorical", classes=("a", "b"))
    b = Block("m", "seen", 3, 0, "1", "L", np.array(["x", "y"], dtype=object), np.array([1, 0]),
              proba=np.array([[0.2, 0.8], [0.6, 0.4]]))
    df = predictions_frame([b], cat)
    assert df["label"].tolist() == ["b", "a"] and df["p_b"].tolist() == [0.8, 0.4]
    ml = LabelSpace("emos", "multilabel", classes=("a", "b"))
    b = Block("m", "seen", 3, 0, "1", "L", np.array(["x"], dtype=object), np.array([[1, 1]]), proba=np.array([[0.7, 0.2]]))
    assert predictions_frame([b], ml)["label"].tolist() == ["a;b"]


def test_predictions_frame_of_many_blocks_keeps_every_row_in_order():
    """The frame joined over many blocks (one empty) equals the blocks' rows one after another."""
    rng = np.random.default_rng(0)
    cat = LabelSpace("emo", "categorical", classes=("a", "b", "c"))
    blocks = []
    for i in range(40):
        n = 0 if i == 7 else int(rng.integers(1, 6))
        p = rng.dirichlet(np.ones(3), size=n)
        blocks.append(Block(f"m{i % 3}", ("seen", "unseen")[i % 2], 5 + i % 2, i % 2, str(i % 4), f"L{i}",
                            np.array([f"c{i}-{j}" for j in range(n)], dtype=object), rng.integers(0, 3, size=n), proba=p))
    df = predictions_frame(blocks, cat)
    assert len(df) == sum(len(b.clip_ids) for b in blocks)
    row = 0
    for b in blocks:
        for j in range(len(b.clip_ids)):
            r = df.iloc[row]
            assert (r["method"], r["scenario"], r["k"], r["seed"], r["fold"], r["listener"], r["clip_id"]) == (
                b.method, b.scenario, b.k, b.seed, b.fold, b.annotator, b.clip_ids[j])
            assert r["label"] == "abc"[b.y[j]] and [r["p_a"], r["p_b"], r["p_c"]] == list(b.proba[j])
            row += 1
    assert df["k"].dtype == np.int64 and df["seed"].dtype == np.int64


def test_train_splits_keep_the_named_official_splits_only():
    from perser.errors import ConfigError
    from perser.evaluate.data import _keep_splits

    clips = pd.DataFrame({"split": ["train", "dev", "test1", "train"]}, index=["a", "b", "c", "d"])
    ratings = pd.DataFrame({"clip_id": ["a", "b", "c", "d", "d"], "annotator_id": ["x"] * 5})
    notes = []
    c, r = _keep_splits(clips, ratings, ["train"], "pod", notes)
    assert list(c.index) == ["a", "d"] and r["clip_id"].tolist() == ["a", "d", "d"]
    assert "2 clips of other splits left out" in notes[0]
    with pytest.raises(ConfigError, match="train_splits: corpus 'pod' has no split \\['final'\\]"):
        _keep_splits(clips, ratings, ["final"], "pod", [])
    with pytest.raises(ConfigError, match="no official split"):
        _keep_splits(clips.drop(columns="split"), ratings, ["train"], "pod", [])


def test_valid_splits_keep_the_development_partition_for_early_stopping():
    from perser.errors import ConfigError
    from perser.evaluate.data import _keep_splits

    clips = pd.DataFrame({"split": ["train", "dev", "test1", "train"], "origin": "train"}, index=["a", "b", "c", "d"])
    ratings = pd.DataFrame({"clip_id": ["a", "b", "c", "d"], "annotator_id": ["x"] * 4})
    notes = []
    # MSP-Podcast's names, as its documentation writes them, read as the loader stores them
    c, r = _keep_splits(clips, ratings, ["Train"], "pod", notes, valid=["Development"])
    assert c["origin"].to_dict() == {"a": "train", "b": "valid", "d": "train"}
    assert r["clip_id"].tolist() == ["a", "b", "d"]
    assert "early stopping on its 1 clips of split(s) ['dev']" in notes[0] and "(1 clips of other splits" in notes[0]
    c, _ = _keep_splits(clips, ratings, None, "pod", [], valid=["validation"])   # no train_splits: every other split
    assert c["origin"].to_dict() == {"a": "train", "b": "valid", "c": "train", "d": "train"}
    with pytest.raises(ConfigError, match="valid_splits: corpus 'pod' has no split \\['holdout'\\]"):
        _keep_splits(clips, ratings, ["train"], "pod", [], valid=["holdout"])
    with pytest.raises(ConfigError, match="both name split\\(s\\) \\['train'\\]"):
        _keep_splits(clips, ratings, ["train"], "pod", [], valid=["train"])
