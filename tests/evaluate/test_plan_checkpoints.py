"""A ``checkpoint_dir`` in an evaluation's method parameters: every fit of the plan
(method, seed, fold) has its own folder, so a rerun resumes each fit from its own
checkpoint (one shared folder handed the first split's model to the next, or refused it)."""

import numpy as np
import torch

from perser.config import load_config
from perser.evaluate import make_plan, plan_settings
from perser.evaluate.data import load_eval_data
from perser.evaluate.runner import run_plan

SMALL = {"hidden": [8], "epochs": 2, "batch_size": 128, "patience": 0}


def _blocks_equal(a, b):
    assert len(a) == len(b) > 0
    for x, y in zip(a, b):
        assert (x.method, x.scenario, x.k, x.seed, x.fold, x.annotator) == (y.method, y.scenario, y.k, y.seed, y.fold, y.annotator)
        np.testing.assert_array_equal(x.proba, y.proba)


def test_each_fit_of_the_plan_checkpoints_in_its_own_folder(tmp_path, make_toy):
    torch.set_num_threads(1)
    corpus, X, ids = make_toy(n_speakers=6, clips_per_speaker=12, n_listeners=12, n_new=4, per_listener=40)
    cfg = load_config(overrides={"corpus": "toy", "space": "emotion", "k": [3], "seeds": [0, 1], "n_folds": 2,
                                 "unseen_column": "new", "out": str(tmp_path / "run"), "progress": False,
                                 "report": False, "min_test": 3})
    data = load_eval_data(cfg, corpora={"train": corpus}, features={"eval": (X, ids)})
    plan = make_plan(data, plan_settings(cfg))
    assert len(plan) == 4
    methods = {"consensus": dict(SMALL), "similar": {**SMALL, "min_ratings": 5}}
    plain = run_plan(data, plan, methods, progress=False)
    ck = tmp_path / "ck"
    with_ck = {m: {**p, "checkpoint_dir": str(ck)} for m, p in methods.items()}
    first = run_plan(data, plan, with_ck, progress=False)
    _blocks_equal(plain.blocks, first.blocks)
    folders = sorted(p.parent.relative_to(ck).as_posix() for p in ck.rglob("last"))
    assert folders == sorted(f"{m}/seed{s.seed}-fold{s.fold}" for m in methods for s in plan)
    again = run_plan(data, plan, with_ck, progress=False)  # every fit resumes its own finished checkpoint
    _blocks_equal(plain.blocks, again.blocks)
