"""Fixed folds from a file in the format of Tavernor & Mower Provost's stored folds."""

import json
import warnings

import numpy as np
import pytest

from perser.config import load_config
from perser.errors import ConfigError, PerserWarning
from perser.evaluate import make_plan, plan_settings
from perser.evaluate.data import load_eval_data
from perser.evaluate.fold_file import clip_id_of, read_fold_file
from perser.evaluate.runner import _train_set, _valid_set


def _cfg(tmp_path, **over):
    base = {"corpus": "toy", "space": "emotion", "k": [5, 10], "seeds": [0, 1], "unseen_column": "new",
            "out": str(tmp_path / "run"), "progress": False, "report": False, "min_test": 5}
    base.update(over)
    return load_config(overrides=base)


def _data(cfg, toy):
    corpus, X, ids = toy
    return load_eval_data(cfg, corpora={"train": corpus}, features={"eval": (X, ids)})


def _authors_file(path, corpus, n_folds=3, drop=(), extra=None):
    """A fold file in the authors' exact format (``{"fold_i": {"train_fnames", "val_fnames",
    "test_fnames"}}``, clip file names with ``.wav``) over the toy corpus's speakers: fold i
    tests speakers i, i+3, ...; the next fold's first speaker is its validation speaker."""
    spk = corpus.clips["speaker"].astype(str)
    speakers = sorted(spk.unique())
    doc = {}
    for i in range(n_folds):
        test = set(speakers[i::n_folds])
        val = {speakers[(i + 1) % n_folds]}
        names = lambda keep: [f"{c}.wav" for c in corpus.clips.index[spk.isin(keep)] if c not in drop]  # noqa: E731
        doc[f"fold_{i}"] = {"train_fnames": names(set(speakers) - test - val), "val_fnames": names(val),
                            "test_fnames": names(test)}
    if extra:
        doc["fold_0"]["test_fnames"] += extra
    path.write_text(json.dumps(doc, indent=4))
    return path, doc


def test_fold_file_gives_the_authors_folds_for_every_seed(tmp_path, toy):
    path, doc = _authors_file(tmp_path / "toy_folds.json", toy[0])
    cfg = _cfg(tmp_path, folds_file=str(path))
    data = _data(cfg, toy)
    plan = make_plan(data, plan_settings(cfg))
    assert [s.fold for s in plan] == ["fold_0", "fold_1", "fold_2"] * 2          # the file's folds, every seed
    for s in plan:
        lists = doc[s.fold]
        assert s.test_clips == sorted(clip_id_of(n) for n in lists["test_fnames"])
        assert s.train_clips == sorted(clip_id_of(n) for n in lists["train_fnames"])
        assert s.valid_clips == sorted(clip_id_of(n) for n in lists["val_fnames"])
        val = set(s.valid_clips)
        for assigns in s.assignments.values():
            for a in assigns:
                assert not (set(a.pool) | set(a.test)) & val                    # validation clips never enrolled or tested
        train, valid = _train_set(data, s), _valid_set(data, s)
        assert set(valid.clip_ids) <= val and not set(train.clip_ids) & val      # they stop the fits early instead
        assert set(valid.annotator_ids) <= set(s.seen)
    assert plan[0].test_clips == plan[3].test_clips
    # without the file: perser's own seeded folds
    assert {s.fold for s in make_plan(data, plan_settings(_cfg(tmp_path, n_folds=3)))} == {"0", "1", "2"}


def test_fold_file_names_map_to_clip_ids():
    assert clip_id_of("MSP-IMPROV-S16H-M01-R-MM01.wav") == "MSP-IMPROV-S16H-M01-R-MM01"
    assert clip_id_of("Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.WAV") == "Ses01F_impro01_F000"
    assert clip_id_of("10_DR-100_0074_7_sentence_9") == "10_DR-100_0074_7_sentence_9"


def test_fold_file_names_culprits(tmp_path, toy):
    cfg = _cfg(tmp_path)
    data = _data(cfg, toy)
    # a name that is no clip of the corpus: an error naming it
    path, _ = _authors_file(tmp_path / "a.json", toy[0], extra=["Ses01F_impro01_F000.wav"])
    with pytest.raises(ConfigError, match="1 clip name.*Ses01F_impro01_F000.wav"):
        make_plan(data, plan_settings(_cfg(tmp_path, folds_file=str(path))))
    # a clip in two lists of one fold
    path, doc = _authors_file(tmp_path / "b.json", toy[0])
    doc["fold_1"]["val_fnames"].append(doc["fold_1"]["test_fnames"][0])
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="fold 'fold_1'.*in val_fnames and in test_fnames"):
        make_plan(data, plan_settings(_cfg(tmp_path, folds_file=str(path))))
    # malformed files name the file and the fold
    bad = tmp_path / "c.json"
    for content, msg in [("[1, 2]", "JSON object of folds"), ("{not json", "not a JSON file"),
                         (json.dumps({"f0": {"train_fnames": []}, "f1": {"train_fnames": [], "test_fnames": ["x"]}}),
                          "fold 'f0' lacks \\['test_fnames'\\]"),
                         (json.dumps({"f0": {"test_fnames": ["x"], "train_fnames": [], "dev": []}, "f1": {}}),
                          "unknown key"),
                         (json.dumps({"f0": {"test_fnames": "x", "train_fnames": []}, "f1": {}}),
                          "test_fnames must be a list")]:
        bad.write_text(content)
        with pytest.raises(ConfigError, match=msg):
            read_fold_file(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        read_fold_file(tmp_path / "none.json")


def test_fold_file_counts_clips_in_no_list(tmp_path, toy):
    corpus = toy[0]
    dropped = list(corpus.clips.index[:7])
    path, _ = _authors_file(tmp_path / "d.json", corpus, drop=set(dropped))
    cfg = _cfg(tmp_path, folds_file=str(path))
    data = _data(cfg, toy)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PerserWarning)
        plan = make_plan(data, plan_settings(cfg))
    msgs = [str(w.message) for w in caught if issubclass(w.category, PerserWarning)]
    assert any("21 evaluation clips in no list of a fold" in m for m in msgs), msgs   # 7 clips x 3 folds
    for s in plan:
        assert not set(dropped) & set(s.train_clips + s.test_clips + s.valid_clips)
        for assigns in s.assignments.values():
            assert all(not set(dropped) & (set(a.pool) | set(a.test)) for a in assigns)


def test_fold_file_in_a_cross_corpus_run_sets_validation_clips_aside(tmp_path, toy):
    """Cross-corpus: the file names the evaluation corpus's clips without perser's corpus
    prefix; its val_fnames are neither enrolled nor tested, and the fits stop on the training
    corpus's validation clips (valid_splits) when it has them, else on their own share."""
    corpus, X, ids = toy
    path, doc = _authors_file(tmp_path / "e.json", corpus)
    cfg = _cfg(tmp_path, folds_file=str(path), eval_corpus="toy2")
    data = load_eval_data(cfg, corpora={"train": corpus, "eval": corpus}, features={"train": (X, ids), "eval": (X, ids)})
    assert data.cross_corpus and all(v.startswith("eval/") for v in data.eval_ids.values())
    plan = make_plan(data, plan_settings(cfg))
    assert [s.fold for s in plan] == ["fold_0", "fold_1", "fold_2"] * 2
    for s in plan:
        val = {"eval/" + clip_id_of(n) for n in doc[s.fold]["val_fnames"]}
        assert s.test_clips == sorted("eval/" + clip_id_of(n) for n in doc[s.fold]["test_fnames"])
        assert s.valid_clips == [] and all(c.startswith("train/") for c in s.train_clips)
        for a in s.assignments["unseen"]:
            assert not (set(a.pool) | set(a.test)) & val
            assert set(a.pool) <= {"eval/" + clip_id_of(n) for n in doc[s.fold]["train_fnames"]}
    assert np.all([_valid_set(data, s) is None for s in plan])


def test_valid_splits_stop_the_fits_on_the_training_corpus_development_clips(tmp_path, toy, toy_methods):
    """Cross-corpus ``valid_splits``: each fit gets the seen listeners' ratings of the training
    corpus's Development clips as its validation set, and never trains on them."""
    import dataclasses

    from perser.evaluate import evaluate_data
    from perser.methods import base as mbase

    corpus, X, ids = toy
    clips = corpus.clips.copy()
    clips["split"] = np.where(np.arange(len(clips)) % 5 == 0, "Development", "Train")
    pod = dataclasses.replace(corpus, clips=clips)
    cfg = _cfg(tmp_path, eval_corpus="toy2", valid_splits=["development"], train_splits=["train"], methods=["consensus"],
               seeds=[0], k=[5], n_bootstrap=100, folds_file=str(_authors_file(tmp_path / "f.json", corpus)[0]))
    data = load_eval_data(cfg, corpora={"train": pod, "eval": corpus}, features={"train": (X, ids), "eval": (X, ids)})
    dev = {"train/" + c for c in clips.index[clips["split"] == "Development"]}
    assert set(data.clips.index[data.clips["origin"] == "valid"]) == dev
    got = []
    klass = mbase.get_method("consensus")
    orig = klass.fit

    def fit(self, train, valid=None):
        got.append((set(train.clip_ids), None if valid is None else set(valid.clip_ids)))
        return orig(self, train, valid)

    klass.fit = fit
    try:
        run = evaluate_data(cfg, data, write=False, console=False)
    finally:
        klass.fit = orig
    assert len(got) == 1 and len(run.plan) == 3   # cross-corpus: one fit per seed, shared by the folds
    for tr, va in got:
        assert va and va <= dev and not tr & dev
    with pytest.raises(ConfigError, match="valid_splits applies to a cross-corpus run"):
        load_eval_data(_cfg(tmp_path, valid_splits=["dev"]), corpora={"train": pod}, features={"eval": (X, ids)})


def test_min_fold_train_ratings_keeps_listeners_with_enough_training_fold_ratings(tmp_path, toy):
    """The authors keep a target annotator with at least 30 ratings of the fold's training
    clips (their apply_filters counts on the training split only): min_fold_train_ratings."""
    path, doc = _authors_file(tmp_path / "g.json", toy[0])
    base = _cfg(tmp_path, folds_file=str(path), scenarios=["unseen"], seeds=[0])
    data = _data(base, toy)
    plan0 = make_plan(data, plan_settings(base))
    r = data.ratings
    counts = {s.fold: {a.annotator: int(r[(r.annotator_id == a.annotator) & r.clip_id.isin(set(s.train_clips))].shape[0])
                       for a in s.assignments["unseen"]} for s in plan0}
    cut = int(np.median([n for c in counts.values() for n in c.values()]))
    cfg = _cfg(tmp_path, folds_file=str(path), scenarios=["unseen"], seeds=[0], min_fold_train_ratings=cut)
    plan = make_plan(data, plan_settings(cfg))
    for s in plan:
        kept = {a.annotator for a in s.assignments["unseen"]}
        assert kept == {a for a, n in counts[s.fold].items() if n >= cut}
        n_out = sum(v for k, v in s.excluded["unseen"].items() if "min_fold_train_ratings" in k)
        assert n_out == len(counts[s.fold]) - len(kept) > 0
