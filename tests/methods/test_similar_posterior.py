"""``similar`` with ``combine="posterior"`` and the listener noise a multi-annotator model
fits on its seen listeners and keeps in its model folder."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from perser.enroll import ActiveStrategy
from perser.errors import ConfigError, CountedWarning
from perser.methods import load_model, make_method
from perser.methods.head_posterior import DEFAULT_EPS, EPS_GRID, SIGMA_GRID, fit_noise, head_posterior


@pytest.fixture(scope="module")
def fitted(request):
    """``{kind: (synth, top1 similar, posterior similar)}`` sharing one fit per kind."""
    from .conftest import FAST, Synth

    out = {}
    for kind in ("categorical", "dimensional"):
        s = Synth(kind, n_annotators=6, seed=3)
        top1 = make_method("similar", min_ratings=5, **FAST).fit(s.train)
        post = make_method("similar", min_ratings=5, combine="posterior", **FAST).adopt_fit(top1, s.train)
        out[kind] = (s, top1, post)
    return out


def _values(p):
    return np.asarray(p.proba if p.proba is not None else p.values, dtype=np.float64)


def test_noise_is_fitted_at_training_time_with_the_protocols_estimator(fitted):
    for kind, grid in (("categorical", EPS_GRID), ("dimensional", SIGMA_GRID)):
        s, top1, post = fitted[kind]
        noise = np.asarray(top1.listener_noise_)
        assert noise.shape == ((1,) if kind == "categorical" else (2,))
        assert set(noise.tolist()) <= set(grid)
        np.testing.assert_array_equal(noise, fit_noise(top1, s.train))
        np.testing.assert_array_equal(post.listener_noise_, noise)  # adopted with the fit
        # active selection on the model alone (perser select, the service) uses it
        np.testing.assert_array_equal(ActiveStrategy(criterion="head").fit(top1).noise_, noise)


def test_posterior_reduces_to_the_top1_head_when_one_hot(fitted):
    s, top1, post = fitted["categorical"]
    X, y = s.listener(s.W["a2"], 80, seed=5)
    post.listener_noise_ = [1e-6]  # an almost noiseless listener: the posterior concentrates
    try:
        w = head_posterior(post, X, y, post.listener_noise_)
        assert w.max() > 1 - 1e-9
        prof = post.enroll(X, y)
        ref = top1.enroll(X, y)
        assert prof.data["heads"] == ref.data["heads"][:1] and prof.data["weights"] == [1.0]
        Xt = s.listener(s.W["a2"], 30, seed=6)[0]
        np.testing.assert_array_equal(_values(post.predict(prof, Xt)), _values(top1.predict(ref, Xt)))
    finally:
        post.listener_noise_ = list(top1.listener_noise_)


@pytest.mark.parametrize("kind,noise", [("categorical", [0.3]), ("dimensional", [1.0, 1.0])])
def test_posterior_weighs_the_heads_and_changes_the_prediction(fitted, kind, noise):
    s, top1, post = fitted[kind]
    X, y = s.listener(s.W["a0"], 3, seed=7)
    post.listener_noise_ = noise
    try:
        w = head_posterior(post, X, y, noise)
        assert w.max() < 0.9  # three noisy labels leave several heads plausible
        prof = post.enroll(X, y)
        assert len(prof.data["heads"]) > 1 and prof.data["heads"][0] == post.head_annotators_[int(np.argmax(w))]
        assert sum(prof.data["weights"]) == pytest.approx(1.0)
        Xt = s.listener(s.W["a0"], 40, seed=8)[0]
        got = _values(post.predict(prof, Xt))
        # the posterior mixture of the heads' outputs (native scale for dimensional spaces)
        mix = (post.head_outputs(Xt).numpy().astype(np.float64) * w[None, :, None]).sum(axis=1)
        if kind == "dimensional":
            from perser.methods.nets import from_unit

            mix = np.clip(from_unit(mix, post.space_.scale), *post.space_.scale)  # predictions stay on the scale
        np.testing.assert_allclose(got, mix, atol=1e-3)
        assert np.abs(got - _values(top1.predict(top1.enroll(X, y), Xt))).max() > 1e-2
    finally:
        post.listener_noise_ = list(top1.listener_noise_)


def test_combine_is_checked(fitted):
    s, top1, _ = fitted["dimensional"]
    with pytest.raises(ConfigError, match="unknown combine 'mean'"):
        make_method("similar", min_ratings=5, combine="mean").adopt_fit(top1, s.train)
    with pytest.raises(ConfigError, match="per_dimension"):
        make_method("similar", min_ratings=5, combine="posterior", per_dimension=True).adopt_fit(top1, s.train)


def test_model_folder_keeps_the_noise_and_old_folders_fall_back_to_the_default(fitted, tmp_path):
    s, top1, post = fitted["categorical"]
    post.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.combine == "posterior" and loaded.listener_noise_ == list(top1.listener_noise_)
    X, y = s.listener(s.W["a1"], 6, seed=9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the fitted noise is there: no fallback warning
        assert loaded.enroll(X, y).data == post.enroll(X, y).data
    # a folder saved before the noise was stored
    cfg_path = tmp_path / "m" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    del cfg["state"]["listener_noise"]
    cfg_path.write_text(json.dumps(cfg))
    old = load_model(tmp_path / "m")
    assert old.listener_noise_ is None
    with pytest.warns(CountedWarning, match="without a fitted listener noise level.*default lapse 0.1"):
        s_old = ActiveStrategy(criterion="head").fit(old)
    assert s_old.noise_.tolist() == [DEFAULT_EPS]
    with pytest.warns(CountedWarning, match="without a fitted listener noise level"):
        prof = old.enroll(X, y)
    np.testing.assert_allclose(prof.data["scores"], head_posterior(old, X, y, [DEFAULT_EPS])[
        [old.head_annotators_.index(h) for h in prof.data["heads"]]])
