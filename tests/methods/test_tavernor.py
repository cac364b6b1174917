"""``similar`` with ``score="ccc_tavernor"``: heads scored with Tavernor & Mower Provost's CCC."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from perser.errors import ConfigError
from perser.methods import make_method
from perser.methods.nets import to_unit


def _by_hand(y, p):
    y, p = np.asarray(y, float), np.asarray(p, float)
    dy, dp = y - y.mean(), p - p.mean()
    dy[dy == 0], dp[dp == 0] = 1e-8, 1e-8
    r = (dy * dp).sum() / np.sqrt((dy ** 2).sum() * (dp ** 2).sum())
    sy, sp = y.std(ddof=1), p.std(ddof=1)
    return 2 * r * sy * sp / (sy ** 2 + sp ** 2 + (y.mean() - p.mean()) ** 2)


def test_ccc_tavernor_scores_each_head_with_the_authors_estimator(synth, fast):
    s = synth("dimensional", n_annotators=4)
    m = make_method("similar", score="ccc_tavernor", **fast).fit(s.train)
    X, y = s.listener(s.W["a2"], n=6)
    crit, scores, _ = m.score_heads(X, y)
    assert crit == "ccc_tavernor"
    with torch.no_grad():
        out = m.head_outputs(X, activated=False).double().numpy()  # [K, H, D]
    t = to_unit(y.astype(np.float32), s.space.scale).astype(np.float64)
    expect = [sum(_by_hand(t[:, d], out[:, h, d]) for d in range(2)) for h in range(out.shape[1])]
    np.testing.assert_allclose(scores, expect, rtol=1e-5)
    # perser's default CCC (Lin's, population moments) gives other scores on 6 clips
    _, lin, _ = make_method("similar", score="ccc", **fast).adopt_fit(m, s.train).score_heads(X, y)
    assert np.max(np.abs(lin - scores)) > 1e-4
    # one enrollment clip: the authors' absolute-error choice
    crit1, s1, _ = m.score_heads(X[:1], y[:1])
    assert crit1 == "mae"
    profile = m.enroll(X, y, annotator="new")
    assert profile.data["heads"][0] in m.seen_annotators_


def test_ccc_tavernor_needs_a_dimensional_space(synth, fast):
    s = synth("categorical", n_annotators=3)
    with pytest.raises(ConfigError, match="ccc_tavernor"):
        make_method("similar", score="ccc_tavernor", **fast).fit(s.train)
