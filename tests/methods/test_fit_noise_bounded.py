"""The listener-noise fit of a multi-annotator model at scale: computed a few clips at a
time (the same numbers as all at once) and from at most ``max_clips`` ratings per
listener, so that a corpus whose busiest listeners rate tens of thousands of clips does
not build a ``[clips x heads x classes]`` array of tens of gigabytes."""

from __future__ import annotations

import numpy as np
import pytest

from perser.methods import make_method
from perser.methods.head_posterior import EPS_GRID, fit_noise, logmeanexp


@pytest.fixture(scope="module")
def fitted():
    from .conftest import FAST, Synth

    out = {}
    for kind in ("categorical", "dimensional"):
        s = Synth(kind, n_annotators=6, n_clips=150, seed=4)
        out[kind] = (s, make_method("similar", min_ratings=5, **{**FAST, "epochs": 3}).fit(s.train))
    return out


def _spy_head_outputs(m, monkeypatch):
    """Record the number of clips of every ``head_outputs`` call of ``m``'s class:
    ``(sizes, the real method)``."""
    sizes = []
    real = type(m).head_outputs

    def head_outputs(self, X, activated=True):
        sizes.append(len(X))
        return real(self, X, activated)

    monkeypatch.setattr(type(m), "head_outputs", head_outputs)
    return sizes, real


@pytest.mark.parametrize("kind", ["categorical", "dimensional"])
def test_chunks_give_the_same_noise_and_bound_the_rows_per_product(fitted, kind, monkeypatch):
    s, m = fitted[kind]
    whole = fit_noise(m, s.train, chunk=10_000)
    sizes, real = _spy_head_outputs(m, monkeypatch)
    np.testing.assert_array_equal(fit_noise(m, s.train, chunk=7), whole)
    assert max(sizes) <= 7 and sum(sizes) == len(s.train)  # every rating once, 7 clips at a time


def test_at_most_max_clips_per_listener(fitted, monkeypatch):
    """Each listener's clips are capped at ``max_clips`` (evenly spaced), and the noise is
    what the capped ratings give when fitted in full."""
    s, m = fitted["categorical"]
    sizes, real = _spy_head_outputs(m, monkeypatch)
    capped = fit_noise(m, s.train, max_clips=20, chunk=1000)
    n_listeners = len(set(s.train.annotator_ids))
    assert sizes == [20] * n_listeners
    # by hand: the same listeners, each on its 20 evenly spaced ratings, all heads but its own
    from perser.methods.head_posterior import answer_codes, factor_probs, loglik_classes

    monkeypatch.setattr(type(m), "head_outputs", real)
    ids = np.asarray(s.train.annotator_ids).astype(str)
    totals = np.zeros(len(EPS_GRID))
    for a in sorted(set(ids)):
        rows = np.flatnonzero(ids == a)
        rows = rows[np.unique(np.linspace(0, len(rows) - 1, 20).round().astype(np.int64))]
        keep = np.array([h != a for h in m.head_annotators_])
        out = m.head_outputs(s.train.X[s.train.clip_index[rows]]).numpy().astype(np.float64)[:, keep]
        for g, e in enumerate(EPS_GRID):
            totals[g] += logmeanexp(loglik_classes(factor_probs(out, "categorical", e), answer_codes(s.train.y[rows], "categorical")))
    assert capped[0] == EPS_GRID[int(np.argmax(totals))]


def test_categorical_answer_probability_path_equals_the_factor_form(fitted):
    """The categorical branch takes the answer's probability once ([clips, heads]) instead of
    a factor array per lapse value; per listener and lapse it gives the factor form's
    log-likelihood."""
    from perser.methods.head_posterior import answer_codes, factor_probs, loglik_classes

    s, m = fitted["categorical"]
    X, y = s.train.X[s.train.clip_index[:50]], s.train.y[:50]
    out = m.head_outputs(X).numpy().astype(np.float64)
    py = np.take_along_axis(out, answer_codes(y, "categorical")[:, None, :], axis=2)[..., 0]
    for e in EPS_GRID:
        np.testing.assert_allclose(np.log((1 - e) * py + e / out.shape[-1]).sum(axis=0),
                                   loglik_classes(factor_probs(out, "categorical", e), answer_codes(y, "categorical")),
                                   rtol=1e-12)
