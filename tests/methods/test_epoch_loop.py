"""The epoch loop shared by ``fit_model`` and ``meta``'s meta-training: resume, the
fingerprint check, patience with ``min_delta``, the old checkpoint after a kill
between the two renames of an atomic swap."""

from __future__ import annotations

import shutil

import pytest
import torch

from perser.errors import ConfigError
from perser.methods.base import make_method
from perser.methods.training import epoch_loop, find_checkpoint

from .test_meta import CONS, META, crowd


class Counter:
    """A trainee whose weight is the number of epochs it has run."""

    def __init__(self):
        self.w = torch.zeros(1)

    def state(self):
        return {"w": self.w.clone()}, {"note": "x"}

    def load_state(self, tensors, doc):
        assert doc["note"] == "x"
        self.w = tensors["w"].clone()

    def snapshot(self):
        return {"w": self.w.clone()}


def run(trainee, scores, **kw):
    it = iter(scores)

    def one_epoch(epoch):
        trainee.w += 1
        return {"train_loss": float(epoch)}

    return epoch_loop(trainee, one_epoch, valid_loss=lambda: next(it), progress=False, **kw)


def test_min_delta_decides_what_counts_as_better():
    scores = [1.0, 0.95, 0.91, 0.5, 0.4]
    small = run(Counter(), scores, epochs=5, patience=2, min_delta=0.01)
    assert not small.stopped_early and small.best_epoch == 4 and small.best_score == 0.4
    big = run(Counter(), scores, epochs=5, patience=2, min_delta=0.1)  # 0.95 and 0.91 are no gain of 0.1
    assert big.stopped_early and [h["epoch"] for h in big.history] == [0, 1, 2]
    assert big.best_epoch == 0 and float(big.best["w"]) == 1.0


def test_resume_continues_and_a_kill_between_the_renames_recovers_the_old_checkpoint(tmp_path):
    ck = tmp_path / "last"
    first = run(Counter(), [3.0, 2.0], epochs=2, checkpoint=ck, fingerprint={"a": 1})
    assert first.history[-1]["epoch"] == 1
    # a process killed between atomic_dir's renames leaves only the old folder
    ck.rename(tmp_path / ".last.old")
    assert find_checkpoint(ck) == tmp_path / ".last.old"
    t = Counter()
    res = run(t, [1.0, 0.5], epochs=4, checkpoint=ck, fingerprint={"a": 1})
    assert res.resumed_from == 2 and [h["epoch"] for h in res.history] == [0, 1, 2, 3]
    assert float(t.w) == 4.0 and float(res.best["w"]) == 4.0 and res.best_score == 0.5
    with pytest.raises(ConfigError, match="other settings or data"):
        run(Counter(), [1.0], epochs=5, checkpoint=ck, fingerprint={"a": 2})


def test_meta_takes_the_base_hyper_parameters_as_keywords():
    m = make_method("meta", device="cpu", min_delta=0.5, hidden=(8,))
    assert m.device == "cpu" and m.min_delta == 0.5 and m.hidden == (8,)
    assert {"device", "min_delta", "hidden", "meta_epochs"} <= set(m.get_params())


def test_meta_resumes_from_the_old_checkpoint_left_by_a_kill_between_renames(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    rs, _ = crowd("dimensional", n_clips=50, n_ann=8)
    cons = make_method("consensus", **{**CONS, "epochs": 3}).fit(rs)
    cfg = {**META, "meta_epochs": 4, "iters_per_epoch": 3}
    ref = make_method("meta", init_model=cons, **cfg).fit(rs)

    from perser.methods import maml

    calls = {"n": 0}
    real = maml.MAMLPlusPlus.apply

    def dying(self, gp, ga):
        calls["n"] += 1
        if calls["n"] == 8:  # in the third epoch
            raise KeyboardInterrupt
        return real(self, gp, ga)

    monkeypatch.setattr(maml.MAMLPlusPlus, "apply", dying)
    with pytest.raises(KeyboardInterrupt):
        make_method("meta", init_model=cons, checkpoint_dir=str(tmp_path), **cfg).fit(rs)
    shutil.move(tmp_path / "meta", tmp_path / ".meta.old")  # killed between the two renames
    steps = []

    def counting(self, gp, ga):
        steps.append(1)
        return real(self, gp, ga)

    monkeypatch.setattr(maml.MAMLPlusPlus, "apply", counting)
    c = make_method("meta", init_model=cons, checkpoint_dir=str(tmp_path), **cfg).fit(rs)
    assert [r["epoch"] for r in c.meta_history_] == [0, 1, 2, 3]
    assert len(steps) == 2 * 3  # epochs 2 and 3 only: the two finished epochs came from .meta.old
    for k in ref.theta_:
        torch.testing.assert_close(ref.theta_[k], c.theta_[k], rtol=0, atol=1e-6)
        torch.testing.assert_close(ref.inner_lrs_[k], c.inner_lrs_[k], rtol=0, atol=1e-6)
