"""Each packaged recipe end to end on tiny format-faithful fixtures of its corpora."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from perser.config import load_config, recipe_path
from perser.evaluate import evaluate

pytestmark = pytest.mark.slow

TINY_NEURAL = {"hidden": [16], "epochs": 2, "patience": 1}


def _tiny(cfg_methods, recipe_params=None):
    """Tiny sizes over the recipe's own method parameters (architecture, score, ... kept)."""
    from perser.methods import get_method

    out = {}
    for m in cfg_methods:
        p = {**TINY_NEURAL, "steps": 2, "meta_epochs": 1, "iters_per_epoch": 2, "first_order_epochs": 1,
             "msl_epochs": 1, "n_inner_steps": 1, "k_support": 2, "k_query": 2, "min_ratings": 2}
        sig = get_method(m).param_names()
        out[m] = {**(recipe_params or {}).get(m, {}), **{k: v for k, v in p.items() if k in sig}}
    return out


def _run(recipe, tmp_path, **over):
    cfg0 = load_config(recipe_path(recipe), {"features": "egemaps",
                                            **{k: v for k, v in over.items() if k in ("corpus", "eval_corpus")}})
    over = {"features": "egemaps", "feature_cache": str(tmp_path / "features"), "out": str(tmp_path / "run"), "seeds": [0],
            "progress": False, "n_bootstrap": 100, "method_params": _tiny(cfg0.methods, cfg0.method_params),
            "workers": 1, "min_fold_train_ratings": min(2, cfg0.min_fold_train_ratings), **over}
    cfg = load_config(recipe_path(recipe), over)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fixtures inject counted quirks on purpose
        return evaluate(cfg, console=False)


@pytest.fixture(scope="module")
def iemocap(tmp_path_factory):
    from perser.testing.corpora import write_iemocap

    root = tmp_path_factory.mktemp("iemocap")
    write_iemocap(root, n_sessions=3, n_dialogs=2, n_clips_per_dialog=6, n_annotators=4, cat_raters_per_clip=3,
                  dim_raters_per_clip=3, seed=0)
    return root


def test_tavernor_recipe(tmp_path, iemocap, monkeypatch):
    from perser.testing.corpora import write_msp_podcast

    pod = tmp_path / "podcast"
    write_msp_podcast(pod, n_clips=30, n_speakers=6, n_annotators=6, ratings_per_clip=4, seed=1)
    monkeypatch.setenv("MSP_PODCAST_ROOT", str(pod))
    monkeypatch.setenv("IEMOCAP_ROOT", str(iemocap))
    run = _run("tavernor-iemocap", tmp_path, k=[2, 4], n_folds=3, min_test=2, min_train_ratings=1)
    r = run.results
    assert set(r["method"]) == {"consensus", "mean-annotator", "random-annotator", "similar", "similar-finetuned",
                                 "consensus-finetuned"}
    assert set(r["scenario"]) == {"unseen"} and set(r["k"]) == {2, 4}
    assert {"ccc/arousal", "ccc/valence", "ccc_con/arousal", "ccc_con/valence"} <= set(r["metric"])
    assert "ccc/dominance" not in set(r["metric"])
    assert run.data.space.scale == (1.0, 5.0) and run.data.cross_corpus
    # MSP-Podcast's 1-7 ratings were rescaled onto IEMOCAP's 1-5
    tr = run.data.ratings[run.data.clips.loc[run.data.ratings["clip_id"], "origin"].to_numpy() == "train"]
    assert tr["arousal"].between(1, 5).all()
    assert (run.folder / "report.html").is_file()
    assert all(s.fold in {"0", "1", "2"} for s in run.plan)  # IEMOCAP sessions as folds
    # MSP-Podcast's Train partition only: no clip of Development or the test sets trains
    from perser.testing.corpora import load_quietly

    pclips = load_quietly(pod).clips
    train_ids = {c.split("/", 1)[-1] for c in run.data.clips.index[run.data.clips["origin"] == "train"]}
    assert train_ids and set(pclips.loc[pclips.index.isin(train_ids), "split"]) == {"train"}
    assert (pclips["split"] != "train").any()
    assert any("split(s) ['train']" in n for n in run.data.notes)
    _check_paper_outputs(run)


def _check_paper_outputs(run):
    """The authors' metrics beside perser's, and predictions.csv that re-scores to them."""
    from perser.methods.tavernor import tavernor_ccc_np

    sim = run.config.method_params["similar"]
    assert sim["architecture"] == "tavernor" and sim["score"] == "ccc_tavernor"
    assert run.config.method_params["mean-annotator"]["architecture"] == "tavernor"
    assert run.config.method_params["consensus"]["architecture"] == "tavernor"   # the authors' consensus baseline
    # similar-finetuned: the same copy as similar, then the authors' fine-tuning on the fold's training clips
    zero = {(b.seed, b.fold, b.k, b.annotator): b for b in run.blocks if b.method == "similar"}
    tuned = [b for b in run.blocks if b.method == "similar-finetuned"]
    assert tuned and len(tuned) == len(zero)
    for b in tuned:
        z = zero[(b.seed, b.fold, b.k, b.annotator)]
        assert b.profile["finetuned"] and b.profile["copied_from"] == z.profile["heads"]
    assert any(not np.allclose(b.values, zero[(b.seed, b.fold, b.k, b.annotator)].values) for b in tuned)
    base = {(b.seed, b.fold, b.k, b.annotator): b for b in run.blocks if b.method == "consensus"}
    ctuned = [b for b in run.blocks if b.method == "consensus-finetuned"]
    assert len(ctuned) == len(base) and all(b.profile["finetuned"] for b in ctuned)
    assert any(not np.allclose(b.values, base[(b.seed, b.fold, b.k, b.annotator)].values) for b in ctuned)
    paper = pd.read_csv(run.folder / "paper_summary.csv")
    assert {"paper_ccc_ind/arousal", "paper_ccc_ind/valence", "paper_ccc_con/arousal",
            "paper_ccc_con/valence"} <= set(paper["metric"])
    assert set(paper["method"]) == {"consensus", "mean-annotator", "random-annotator", "similar", "similar-finetuned",
                                 "consensus-finetuned"}
    runs = pd.read_csv(run.folder / "paper_runs.csv", dtype={"fold": str})
    pred = pd.read_csv(run.folder / "predictions.csv", dtype={"fold": str, "clip_id": str, "listener": str})
    assert len(pred) == sum(len(b.clip_ids) for b in run.blocks)
    # re-score one run's CCC_ind from predictions.csv alone
    r = runs[(runs.method == "similar") & (runs.metric == "paper_ccc_ind/valence")].dropna().iloc[0]
    sel = pred[(pred.method == "similar") & (pred.k == r.k) & (pred.seed == r.seed) & (pred.fold == r.fold)]
    per = [tavernor_ccc_np(g["valence"], g["pred_valence"]) for _, g in sel.groupby("listener") if len(g) >= 2]
    assert r.value == pytest.approx(sum(per) / len(per)) and r.n_listeners == len(per)


def test_tavernor_msp_improv_recipe(tmp_path, monkeypatch):
    from perser.testing.corpora import write_msp_improv, write_msp_podcast

    pod, imp = tmp_path / "podcast", tmp_path / "improv"
    write_msp_podcast(pod, n_clips=30, n_speakers=6, n_annotators=6, ratings_per_clip=4, seed=1)
    write_msp_improv(imp, n_sessions=3, n_clips_per_session=12, n_annotators=4, ratings_per_clip=3, seed=2)
    # the authors' fixed folds, in the exact format of their stored fold files
    # (LegacyASRUSplits/improv_folds.json: file names with .wav; a validation speaker per fold)
    from perser.testing.corpora import load_quietly

    iclips = load_quietly(imp).clips
    speakers = sorted(iclips["speaker"].astype(str).unique())
    doc = {}
    for i in range(3):
        test, val = set(speakers[i::3]), {speakers[(i + 1) % 3]}
        names = lambda keep: [f"{c}.wav" for c in iclips.index[iclips["speaker"].astype(str).isin(keep)]]  # noqa: E731
        doc[f"fold_{i}"] = {"train_fnames": names(set(speakers) - test - val), "val_fnames": names(val),
                            "test_fnames": names(test)}
    folds_file = tmp_path / "improv_folds.json"
    folds_file.write_text(json.dumps(doc, indent=4))
    run = _run("tavernor-msp-improv", tmp_path, corpus=str(pod), eval_corpus=str(imp), k=[2, 4], n_folds=3,
               min_test=2, min_train_ratings=1, folds_file=str(folds_file))
    assert {"ccc/arousal", "ccc_con/valence"} <= set(run.results["metric"])
    assert {s.fold for s in run.plan} == {"fold_0", "fold_1", "fold_2"}
    pclips = load_quietly(pod).clips
    dev = set(pclips.index[pclips["split"] == "dev"])
    for s in run.plan:   # early stopping on MSP-Podcast's Development partition (valid_splits)
        assert s.valid_clips and {c.split("/", 1)[1] for c in s.valid_clips} <= dev
        assert {c.split("/", 1)[1] + ".wav" for c in s.eval_valid_clips} == set(doc[s.fold]["val_fnames"])
        val = {c for c in run.data.clips.index if c.split("/", 1)[-1] + ".wav" in doc[s.fold]["val_fnames"]}
        assert val and all(not (set(a.pool) | set(a.test)) & val for a in s.assignments["unseen"])
    assert run.summary["n"].min() >= 1
    _check_paper_outputs(run)
    # rater lines without dominance keep their arousal and valence (the recipe asks the loader for it)
    with_dom = load_quietly(imp).ratings_in("avd")
    ev = run.data.ratings[run.data.clips.loc[run.data.ratings["clip_id"], "origin"].to_numpy() == "eval"]
    assert len(ev) > len(with_dom)


def test_meta_perser_recipe(tmp_path, iemocap, monkeypatch):
    monkeypatch.setenv("IEMOCAP_ROOT", str(iemocap))
    run = _run("meta-perser-iemocap", tmp_path, k=[2, 4], seen_k=[2], n_folds=3, min_test=2, unseen_fraction=0.25)
    r = run.results
    assert set(r["method"]) == {"consensus", "similar", "finetune", "meta", "meta-finetune"}
    assert set(r["scenario"]) == {"unseen", "seen"}
    assert run.data.space.kind == "multilabel"
    assert {"macro_f1", "micro_f1"} <= set(r["metric"])
    assert set(r.loc[r["metric"] == "threshold", "value"]) == {0.5}   # every F1 states its threshold
    assert "threshold" not in set(run.summary["metric"])
    s = run.summary
    assert not s[(s["method"] == "meta") & (s["metric"] == "macro_f1")].empty
    # the paper's downstream model: two linear layers, both adapted by MAML, same network for consensus
    params = load_config(recipe_path("meta-perser-iemocap"), {"corpus": "x", "features": "egemaps"}).method_params
    assert params["meta"]["hidden"] == params["consensus"]["hidden"] == [256] and params["meta"]["adapt_layers"] == 1
    # the paper's fine-tune baseline: meta's network, start, inner steps and inner learning rate
    assert params["meta-finetune"] == params["meta"]


def test_crema_d_to_iemocap_recipe(tmp_path, iemocap):
    from perser.testing.corpora import write_crema_d

    crema = tmp_path / "crema"
    write_crema_d(crema, n_actors=4, n_clips_per_actor=8, n_annotators=8, ratings_per_clip=4, seed=3)
    run = _run("crema-d-to-iemocap", tmp_path, corpus=str(crema), eval_corpus=str(iemocap), k=[2, 3], n_folds=3,
               min_test=2, methods=["consensus", "similar"])
    assert run.data.space.classes == ("anger", "happiness", "neutral", "sadness")
    assert any("dropped by the mapping" in n for n in run.data.notes)
    assert set(pd.unique(run.results["scenario"])) == {"unseen"}


def test_tavernor_muse_recipe(tmp_path, monkeypatch):
    from perser.testing.corpora import write_msp_podcast
    from perser.testing.corpora import write_muse

    pod, muse = tmp_path / "podcast", tmp_path / "muse"
    write_msp_podcast(pod, n_clips=30, n_speakers=6, n_annotators=6, ratings_per_clip=4, seed=1)
    write_muse(muse, n_speakers=6, n_clips_per_speaker=6, n_annotators=5, ratings_per_clip=4, seed=3)
    monkeypatch.setenv("MSP_PODCAST_ROOT", str(pod))
    monkeypatch.setenv("MUSE_ROOT", str(muse))
    run = _run("tavernor-muse", tmp_path, k=[2, 4], n_folds=3, min_test=2, min_train_ratings=1)
    assert {"ccc/arousal", "ccc/valence", "ccc_con/arousal"} <= set(run.results["metric"])
    assert run.data.space.scale == (1.0, 9.0)
    ev = run.data.ratings[run.data.clips.loc[run.data.ratings["clip_id"], "origin"].to_numpy() == "eval"]
    assert not ev["annotator_id"].str.startswith("self_report").any()  # self-reports are not listeners
    _check_paper_outputs(run)


def test_tavernor_muse_recipe_without_annotator_file_names_it(tmp_path, monkeypatch):
    from perser.errors import CorpusError
    from perser.testing.corpora import write_msp_podcast
    from perser.testing.corpora import write_muse

    pod, muse = tmp_path / "podcast", tmp_path / "muse"
    write_msp_podcast(pod, n_clips=30, n_speakers=6, n_annotators=6, ratings_per_clip=4, seed=1)
    write_muse(muse, annotators_file=False)
    monkeypatch.setenv("MSP_PODCAST_ROOT", str(pod))
    monkeypatch.setenv("MUSE_ROOT", str(muse))
    with pytest.raises(CorpusError, match="muse_annotators.csv"):
        _run("tavernor-muse", tmp_path, k=[2], n_folds=3, min_test=2)
