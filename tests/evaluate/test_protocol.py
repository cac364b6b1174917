import numpy as np
import pandas as pd
import pytest

from perser.config import load_config
from perser.errors import ConfigError, PerserError
from perser.evaluate import evaluate_data, make_plan, plan_settings
from perser.evaluate.data import load_eval_data
from perser.evaluate.protocol import check_plan
from perser.evaluate.runner import _train_set
from perser.methods import base as mbase


def _cfg(tmp_path, **over):
    base = {"corpus": "toy", "space": "emotion", "k": [5, 20], "seeds": [0], "n_folds": 3, "unseen_column": "new",
            "out": str(tmp_path / "run"), "progress": False, "n_bootstrap": 200, "report": False, "min_test": 5}
    base.update(over)
    return load_config(overrides=base)


def _data(cfg, toy):
    corpus, X, ids = toy
    return load_eval_data(cfg, corpora={"train": corpus}, features={"eval": (X, ids)})


def test_plan_guarantees(tmp_path, toy):
    cfg = _cfg(tmp_path, seeds=[0, 1])
    data = _data(cfg, toy)
    plan = make_plan(data, plan_settings(cfg))
    assert len(plan) == 6
    spk = data.clips["speaker"]
    new = set(toy[0].annotators.index[toy[0].annotators["new"]])
    for s in plan:
        assert not set(spk[s.test_clips]) & set(spk[s.train_clips])
        assert set(s.unseen) == new and not set(s.seen) & new
        train = _train_set(data, s)
        assert not set(train.annotator_ids) & new                      # unseen listeners never trained on
        assert not set(train.clip_ids) & set(s.test_clips)               # test clips never trained on
        assert s.assignments["unseen"] and s.assignments["seen"]
        for scen, assigns in s.assignments.items():
            for a in assigns:
                assert not set(a.enroll_order) & set(a.test)
                assert set(a.test) <= set(s.test_clips)
                assert set(a.enroll_order) <= set(s.train_clips)         # enrolled on training speakers only
                assert a.ks == [5, 20] and len(a.enroll_order) == 20     # nested: the first K of one order
                assert len(a.test) >= cfg.min_test
    # every clip of a listener is tested exactly once per seed
    a0 = plan[0].assignments["unseen"][0].annotator
    tested = [c for s in plan if s.seed == 0 for a in s.assignments["unseen"] if a.annotator == a0 for c in a.test]
    assert len(tested) == len(set(tested))


def test_check_plan_catches_breaches(tmp_path, toy):
    cfg = _cfg(tmp_path)
    data = _data(cfg, toy)
    plan = make_plan(data, plan_settings(cfg))
    s = plan[0]
    leaked = s.train_clips + [s.test_clips[0]]
    bad = [type(s)(**{**s.__dict__, "train_clips": leaked})]
    with pytest.raises(PerserError, match="test speaker"):
        check_plan(data, bad)
    a = s.assignments["unseen"][0]
    a.enroll_order = a.enroll_order + [a.test[0]]
    with pytest.raises(PerserError, match="in their test set"):
        check_plan(data, [s])


def test_enroll_from_test_fold(tmp_path, toy):
    cfg = _cfg(tmp_path, enroll_from="test", k=[3, 5], min_test=3)
    data = _data(cfg, toy)
    for s in make_plan(data, plan_settings(cfg)):
        for a in s.assignments["unseen"]:
            assert set(a.enroll_order) <= set(s.test_clips)
            assert not set(a.enroll_order) & set(a.test)
        for a in s.assignments["seen"]:  # seen listeners still enroll on training clips
            assert set(a.enroll_order) <= set(s.train_clips)


def test_exclusions_are_counted(tmp_path, toy):
    cfg = _cfg(tmp_path, k=[5, 60], min_test=5)
    data = _data(cfg, toy)
    plan = make_plan(data, plan_settings(cfg))
    # each listener rated 90 clips: with 3 folds about 60 are in the training folds, so K=60 excludes many
    n_eval = sum(len(s.assignments["unseen"]) for s in plan)
    n_excl = sum(sum(s.excluded["unseen"].values()) for s in plan)
    assert n_excl > 0 and n_eval + n_excl == 3 * 10
    reasons = {r for s in plan for r in s.excluded["unseen"]}
    assert reasons == {"fewer than 60 enrollment ratings"}
    cfg2 = _cfg(tmp_path, k=[5, 60], common_listeners=False)
    plan2 = make_plan(_data(cfg2, toy), plan_settings(cfg2))
    assert sum(len(s.assignments["unseen"]) for s in plan2) == 30  # eligible for K=5 at least
    assert any(a.ks == [5] for s in plan2 for a in s.assignments["unseen"])


def test_unseen_fraction_split_is_seeded(tmp_path, toy):
    cfg = _cfg(tmp_path, unseen_column=None, unseen_fraction=0.3, seeds=[0, 1])
    data = _data(cfg, toy)
    plan = make_plan(data, plan_settings(cfg))
    u0 = {tuple(s.unseen) for s in plan if s.seed == 0}
    u1 = {tuple(s.unseen) for s in plan if s.seed == 1}
    assert len(u0) == 1 and len(u1) == 1 and u0 != u1 and len(next(iter(u0))) == 9
    assert [s.unseen for s in plan] == [s.unseen for s in make_plan(data, plan_settings(cfg))]


class _Spy:
    calls: dict = {}


def _spy_class(base_name):
    import perser_toy_methods as tm

    base = getattr(tm, base_name)

    class Spy(base):
        def fit(self, train, valid=None):
            _Spy.calls.setdefault(self.name, []).append(("fit", tuple(sorted(set(train.annotator_ids))),
                                                         tuple(train.clip_ids)))
            return super().fit(train, valid)

        def enroll(self, X, y, annotator=None):
            _Spy.calls.setdefault(self.name, []).append(("enroll", annotator, X.tobytes(), np.asarray(y).tobytes()))
            return super().enroll(X, y, annotator)

    return Spy


def test_every_method_gets_the_same_splits(tmp_path, toy, monkeypatch):
    import perser_toy_methods as tm

    tm.SpyConsensus = _spy_class("ToyConsensus")
    tm.SpySimilar = _spy_class("ToySimilar")
    monkeypatch.setattr(mbase, "_REGISTRY", {"consensus": "perser_toy_methods:SpyConsensus",
                                             "similar": "perser_toy_methods:SpySimilar"})
    _Spy.calls = {}
    cfg = _cfg(tmp_path)
    run = evaluate_data(cfg, _data(cfg, toy), write=False, console=False)
    assert set(_Spy.calls) == {"consensus", "similar"}
    assert _Spy.calls["consensus"] == _Spy.calls["similar"]
    assert len([c for c in _Spy.calls["similar"] if c[0] == "fit"]) == 3
    # and the same test clips per listener, K, fold
    key = ["scenario", "k", "seed", "fold", "annotator"]
    b = {m: {tuple(getattr(x, f) for f in key): tuple(x.clip_ids) for x in run.blocks if x.method == m}
         for m in ("consensus", "similar")}
    assert b["consensus"] == b["similar"] and len(b["similar"]) > 0


def test_same_seed_same_numbers(tmp_path, toy, toy_methods):
    cfg = _cfg(tmp_path)
    r1 = evaluate_data(cfg, _data(cfg, toy), write=False, console=False)
    r2 = evaluate_data(cfg, _data(cfg, toy), write=False, console=False)
    pd.testing.assert_frame_equal(r1.results, r2.results)
    pd.testing.assert_frame_equal(r1.summary, r2.summary)
    cfg3 = _cfg(tmp_path, seeds=[1])
    r3 = evaluate_data(cfg3, _data(cfg3, toy), write=False, console=False)
    assert not r3.results["value"].equals(r1.results["value"])


def test_personalization_and_retrieval_on_styled_listeners(tmp_path, toy, toy_methods):
    cfg = _cfg(tmp_path, k=[5, 20], n_bootstrap=500)
    run = evaluate_data(cfg, _data(cfg, toy), write=False, console=False)
    s = run.summary.set_index(["method", "scenario", "k", "metric"])
    # half the listeners say the *next* class: consensus is right for them only by accident
    assert s.loc[("similar", "unseen", 20, "accuracy_argmax"), "mean"] > \
        s.loc[("consensus", "unseen", 20, "accuracy_argmax"), "mean"] + 0.15
    assert s.loc[("similar", "unseen", 20, "accuracy_argmax"), "p_vs_baseline"] < 0.01
    assert s.loc[("similar", "unseen", 20, "accuracy_argmax"), "p_vs_consensus"] == \
        s.loc[("similar", "unseen", 20, "accuracy_argmax"), "p_vs_baseline"]
    # gains are signed so that positive is better: for log-loss that is consensus minus method
    ll = s.loc[("similar", "unseen", 20, "log_loss"), "mean"] - s.loc[("consensus", "unseen", 20, "log_loss"), "mean"]
    assert s.loc[("similar", "unseen", 20, "log_loss"), "gain_vs_baseline"] == pytest.approx(-ll)
    acc = s.loc[("similar", "unseen", 20, "accuracy_argmax"), "mean"] - \
        s.loc[("consensus", "unseen", 20, "accuracy_argmax"), "mean"]
    assert s.loc[("similar", "unseen", 20, "accuracy_argmax"), "gain_vs_baseline"] == pytest.approx(acc)
    assert s.loc[("similar", "unseen", 20, "retrieval"), "mean"] > 0.8            # two styles: chance is 0.5
    assert ("consensus", "unseen", 20, "retrieval") not in s.index
    row = s.loc[("similar", "unseen", 20, "accuracy_argmax")]
    assert row["ci_low"] < row["mean"] < row["ci_high"] and row["unit"] == "listener" and row["n"] == 10
    assert np.isnan(s.loc[("consensus", "unseen", 20, "accuracy_argmax"), "p_vs_baseline"])


def test_dimensional_ccc_con(tmp_path, toy, toy_methods):
    cfg = _cfg(tmp_path, space="avd")
    run = evaluate_data(cfg, _data(cfg, toy), write=False, console=False)
    r = run.results
    con = r[r["metric"].str.startswith("ccc_con/")]
    assert (con["annotator"] == "").all() and set(con["metric"]) == {"ccc_con/arousal", "ccc_con/valence",
                                                                     "ccc_con/mean"}
    ind = r[r["metric"] == "ccc/valence"]
    assert (ind["annotator"] != "").all()
    s = run.summary.set_index(["method", "scenario", "k", "metric"])
    assert s.loc[("consensus", "unseen", 20, "ccc_con/mean"), "unit"] == "seed/fold"
    # styles disagree in valence direction: the personal heads win on CCC_ind valence
    assert s.loc[("similar", "unseen", 20, "ccc/valence"), "mean"] > s.loc[("consensus", "unseen", 20, "ccc/valence"), "mean"]


def test_errors_name_the_problem(tmp_path, toy, toy_methods):
    with pytest.raises(ConfigError, match="unknown method"):
        cfg = _cfg(tmp_path, methods=["consensus", "nope"])
        evaluate_data(cfg, _data(cfg, toy), write=False, console=False)
    with pytest.raises(ConfigError, match="no listener has enough"):
        cfg = _cfg(tmp_path, k=[500])
        evaluate_data(cfg, _data(cfg, toy), write=False, console=False)
    with pytest.raises(ConfigError, match="unseen_column"):
        cfg = _cfg(tmp_path, unseen_column="missing")
        make_plan(_data(cfg, toy), plan_settings(cfg))


def test_terminal_reports_exclusions(tmp_path, toy, toy_methods):
    from rich.console import Console

    cfg = _cfg(tmp_path, k=[5, 60])
    console = Console(record=True, width=250)
    run = evaluate_data(cfg, _data(cfg, toy), write=False, console=console)
    text = console.export_text()
    n_excl = sum(sum(s.excluded["unseen"].values()) for s in run.plan)
    assert f"{n_excl} excluded" in text and "fewer than 60 enrollment ratings" in text


def _long(values: dict[str, list[float]], metric: str = "accuracy_argmax") -> pd.DataFrame:
    rows = [(m, "unseen", 5, 0, "all", f"L{i:02d}", metric, v) for m, vs in values.items() for i, v in enumerate(vs)]
    from perser.evaluate.scoring import RESULT_COLUMNS

    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def test_summary_columns_name_what_the_test_is_against():
    from scipy.stats import wilcoxon

    from perser.evaluate.scoring import SUMMARY_COLUMNS, summarize

    rng = np.random.default_rng(0)
    cons = rng.uniform(0.3, 0.5, 12)
    vals = {"consensus": cons, "similar": cons + rng.uniform(0.05, 0.2, 12), "meta": cons + rng.normal(0, 0.05, 12)}
    res = _long({k: list(v) for k, v in vals.items()})
    assert SUMMARY_COLUMNS[:8] == ["method", "scenario", "k", "metric", "mean", "ci_low", "ci_high", "p_vs_consensus"]
    for baseline in ("consensus", "similar"):
        s = summarize(res, baseline=baseline, n_boot=100).set_index("method")
        assert list(s.reset_index().columns) == SUMMARY_COLUMNS and set(s["baseline"]) == {baseline}
        for m in ("similar", "meta"):   # p_vs_consensus is against consensus whatever the baseline
            assert s.loc[m, "p_vs_consensus"] == pytest.approx(wilcoxon(vals[m], cons).pvalue)
        assert np.isnan(s.loc["consensus", "p_vs_consensus"])
        assert np.isnan(s.loc[baseline, "p_vs_baseline"]) and np.isnan(s.loc[baseline, "gain_vs_baseline"])
    s = summarize(res, baseline="similar", n_boot=100).set_index("method")
    assert s.loc["meta", "p_vs_baseline"] == pytest.approx(wilcoxon(vals["meta"], vals["similar"]).pvalue)
    assert s.loc["consensus", "gain_vs_baseline"] == pytest.approx(np.mean(cons - vals["similar"]))
    assert s.loc["meta", "p_vs_baseline"] != s.loc["meta", "p_vs_consensus"]
    # without consensus in the run there is nothing to test against: empty, not a stand-in
    s = summarize(res[res["method"] != "consensus"], baseline="similar", n_boot=100)
    assert s["p_vs_consensus"].isna().all() and s.loc[s["method"] == "meta", "p_vs_baseline"].notna().all()


def test_every_listener_is_evaluated_or_counted_with_a_reason(tmp_path, toy, toy_methods):
    import json
    from dataclasses import replace

    from rich.console import Console

    from perser.evaluate.protocol import NO_FOLD_RATINGS, cap_reason

    corpus, X, ids = toy
    r = corpus.ratings
    # a new listener rated clips of speaker s00 only: in the other folds they have nothing to be tested on
    narrow = r["annotator_id"].eq("L27") & ~r["clip_id"].isin(set(corpus.clips.index[corpus.clips["speaker"] != "s00"]))
    keep = ~r["annotator_id"].eq("L27") | narrow
    few = replace(corpus, ratings=r[keep].reset_index(drop=True))
    cfg = _cfg(tmp_path, k=[5], min_test=3, max_listeners=6, report=False)
    data = load_eval_data(cfg, corpora={"train": few}, features={"eval": (X, ids)})
    console = Console(record=True, width=250)
    run = evaluate_data(cfg, data, console=console)
    n_new = 10
    for s in run.plan:
        ex = s.excluded["unseen"]
        assert ex[cap_reason(6)] == n_new - 6                   # dropped by the cap, in every fold
        assert len(s.assignments["unseen"]) + sum(ex.values()) == n_new
        assert len(s.assignments["seen"]) + sum(s.excluded["seen"].values()) == len(s.seen)
    assert "L27" in run.plan[0].unseen                         # drawn under the cap
    # s00 is in one of the 3 folds: in the other two L27 has nothing to be tested on
    assert sum(s.excluded["unseen"].get(NO_FOLD_RATINGS, 0) for s in run.plan) == 2
    # the same counts in the terminal, listeners.csv and run.json
    text = console.export_text()
    n_excl = sum(sum(s.excluded["unseen"].values()) for s in run.plan)
    assert f"{n_excl} excluded" in text and f"{cap_reason(6)}: {3 * (n_new - 6)}" in text
    lst = pd.read_csv(run.folder / "listeners.csv", keep_default_na=False)
    un = lst[lst["scenario"] == "unseen"]
    assert (un["evaluated"] + un["excluded"] == n_new).all() and un["reasons"].str.contains("max_listeners=6").all()
    doc = json.loads((run.folder / "run.json").read_text())["listeners"]["unseen"]
    assert doc["excluded (summed over seeds and folds)"] == n_excl
    assert doc["excluded by reason (summed over seeds and folds)"][cap_reason(6)] == 3 * (n_new - 6)


def test_a_listener_without_ratings_in_a_fold_is_counted(tmp_path, toy):
    from dataclasses import replace

    from perser.evaluate.protocol import NO_FOLD_RATINGS

    corpus, X, ids = toy
    r = corpus.ratings
    s00 = set(corpus.clips.index[corpus.clips["speaker"] == "s00"])
    keep = ~r["annotator_id"].eq("L29") | r["clip_id"].isin(s00)
    cfg = _cfg(tmp_path, k=[2], min_test=1, enroll_from="test")
    data = load_eval_data(cfg, corpora={"train": replace(corpus, ratings=r[keep].reset_index(drop=True))},
                          features={"eval": (X, ids)})
    plan = make_plan(data, plan_settings(cfg))
    # L29 is tested only in the fold of speaker s00; in the two other folds they are counted, not skipped
    assert sum(s.excluded["unseen"].get(NO_FOLD_RATINGS, 0) for s in plan) == 2
    assert sum(a.annotator == "L29" for s in plan for a in s.assignments["unseen"]) == 1
    for s in plan:
        assert len(s.assignments["unseen"]) + sum(s.excluded["unseen"].values()) == 10
