import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, brier_score_loss, f1_score
from sklearn.metrics import log_loss as sk_log_loss

from perser.evaluate import metrics as M


@pytest.fixture
def cat():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, 60)
    y[y == 3] = 2  # class 3 never said by this listener
    logits = rng.normal(size=(60, 4)) + np.eye(4)[y] * 1.5
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return y, p


@pytest.mark.filterwarnings("ignore:y_pred contains classes")
def test_categorical_against_sklearn(cat):
    y, p = cat
    m = M.categorical_metrics(y, p)
    arg = p.argmax(1)
    assert m["accuracy_argmax"] == pytest.approx(np.mean(arg == y))
    assert m["log_loss"] == pytest.approx(sk_log_loss(y, p, labels=[0, 1, 2, 3]))
    onehot = np.eye(4)[y]
    assert m["brier"] == pytest.approx(np.mean(((p - onehot) ** 2).sum(1)))
    # sklearn's binary Brier per class, summed over classes, is the same quantity
    assert m["brier"] == pytest.approx(sum(brier_score_loss(onehot[:, c], p[:, c]) for c in range(4)))
    assert m["macro_f1_argmax"] == pytest.approx(f1_score(y, arg, average="macro"))
    assert m["uar_argmax"] == pytest.approx(balanced_accuracy_score(y, arg))
    bal = (p / p.mean(0)).argmax(1)
    assert m["uar_balanced"] == pytest.approx(balanced_accuracy_score(y, bal))
    assert m["macro_f1_balanced"] == pytest.approx(f1_score(y, bal, average="macro"))


def test_uar_and_f1_by_hand():
    y = np.array([0, 0, 0, 1])
    pred = np.array([0, 0, 1, 1])
    # recalls 2/3 and 1 -> 5/6; F1 class0 = 2*2/(4+0+1)=0.8, class1 = 2/(2+1+0)=2/3
    assert M.uar(y, pred, 2) == pytest.approx(5 / 6)
    assert M.macro_f1(y, pred, 2) == pytest.approx((0.8 + 2 / 3) / 2)
    # a class predicted but never said counts in macro-F1 (as in scikit-learn) but not in UAR
    assert M.uar(np.array([0, 0]), np.array([0, 1]), 3) == pytest.approx(0.5)
    assert M.macro_f1(np.array([0, 0]), np.array([0, 1]), 3) == pytest.approx((2 / 3 + 0) / 2)


def test_balanced_decision_recovers_rare_class():
    # a listener who rarely says class 1: argmax never predicts it, the balanced decision does
    p = np.array([[0.7, 0.3]] * 8 + [[0.55, 0.45]] * 2)
    y = np.array([0] * 8 + [1] * 2)
    assert (p.argmax(1) == 0).all()
    assert M.uar(y, p.argmax(1), 2) == 0.5
    bal = M.balanced_decision(p)
    assert bal.tolist() == [0] * 8 + [1] * 2
    m = M.categorical_metrics(y, p)
    assert m["uar_balanced"] == 1.0 and m["uar_argmax"] == 0.5


def test_log_loss_hand():
    y = np.array([0, 1])
    p = np.array([[0.5, 0.5], [0.2, 0.8]])
    assert M.log_loss(y, p) == pytest.approx(-(np.log(0.5) + np.log(0.8)) / 2)
    assert M.brier(y, p) == pytest.approx((0.25 + 0.25 + 0.04 + 0.04) / 2)


def test_multilabel_against_sklearn():
    rng = np.random.default_rng(0)
    y = (rng.random((40, 5)) < 0.3).astype(np.float32)
    y[:, 4] = 0  # never ticked
    p = np.clip(y * 0.6 + rng.random((40, 5)) * 0.5, 0, 1)
    p[:, 4] = 0.1  # never predicted
    m = M.multilabel_metrics(y, p, threshold=0.5)
    pred = p >= 0.5
    assert m["macro_f1"] == pytest.approx(f1_score(y[:, :4], pred[:, :4], average="macro", zero_division=0))
    assert m["micro_f1"] == pytest.approx(f1_score(y, pred, average="micro"))
    # a higher threshold changes the decision
    assert M.multilabel_metrics(y, p, threshold=0.9)["macro_f1"] != m["macro_f1"]


def test_ccc_hand_and_properties():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    assert M.ccc(y, y) == pytest.approx(1.0)
    assert M.ccc(y - 2.5, 2.5 - y) == pytest.approx(-1.0)
    # shift by 1: var 1.25 each, cov 1.25, mean diff 1 -> 2*1.25/(2.5+1)
    assert M.ccc(y, y + 1) == pytest.approx(2.5 / 3.5)
    p = np.array([2.0, 2.0, 3.0, 5.0])
    my, mp = y.mean(), p.mean()
    cov = np.mean((y - my) * (p - mp))
    assert M.ccc(y, p) == pytest.approx(2 * cov / (y.var() + p.var() + (my - mp) ** 2))
    assert np.isnan(M.ccc(np.ones(3), np.ones(3)))
    d = M.dimensional_metrics(np.c_[y, y], np.c_[y, y + 1], ("a", "v"))
    assert d["ccc/a"] == pytest.approx(1.0) and d["ccc/mean"] == pytest.approx((1 + 2.5 / 3.5) / 2)


def test_bootstrap_ci_and_wilcoxon():
    from scipy.stats import wilcoxon

    v = np.arange(50, dtype=float)
    lo, hi = M.bootstrap_ci(v, n_boot=2000, seed=0)
    assert lo < v.mean() < hi
    assert (lo, hi) == M.bootstrap_ci(v, n_boot=2000, seed=0)  # same seed, same interval
    lo2, hi2 = M.bootstrap_ci(v, n_boot=2000, level=0.5, seed=0)
    assert lo < lo2 < hi2 < hi
    assert M.bootstrap_ci(np.array([np.nan, 2.0])) == (2.0, 2.0)
    a = np.linspace(0, 1, 20)
    b = a - 0.1 + np.random.default_rng(0).normal(scale=0.02, size=20)
    assert M.paired_wilcoxon(a, b) == pytest.approx(wilcoxon(a, b).pvalue)
    assert M.paired_wilcoxon(a, b) < 0.001
    assert M.paired_wilcoxon(a, a) == 1.0
