import json

import pandas as pd
import pytest
from perser.config import load_config
from perser.errors import ConfigError
from perser.evaluate import evaluate_data
from perser.evaluate.data import load_eval_data
from perser.evaluate.report import print_summary
from perser.evaluate.scoring import RESULT_COLUMNS, SUMMARY_COLUMNS


@pytest.fixture(scope="module")
def written(tmp_path_factory, toy):
    import perser.methods.base as mbase

    saved = dict(mbase._REGISTRY)
    mbase._REGISTRY.clear()
    mbase._REGISTRY.update({"consensus": "perser_toy_methods:ToyConsensus", "similar": "perser_toy_methods:ToySimilar"})
    try:
        out = tmp_path_factory.mktemp("rep") / "run"
        cfg = load_config(overrides={"corpus": "toy", "space": "emotion", "k": [5, 10], "seeds": [0], "n_folds": 3,
                                     "unseen_column": "new", "out": str(out), "progress": False, "n_bootstrap": 200})
        corpus, X, ids = toy
        data = load_eval_data(cfg, corpora={"train": corpus}, features={"eval": (X, ids)})
        run = evaluate_data(cfg, data, console=False)
        yield cfg, data, run
    finally:
        mbase._REGISTRY.clear()
        mbase._REGISTRY.update(saved)


def test_run_folder_files(written):
    cfg, data, run = written
    folder = run.folder
    assert sorted(p.name for p in folder.iterdir()) == ["config.yaml", "confusion.csv", "listeners.csv",
                                                        "predictions.csv", "report.html", "results.csv", "run.json",
                                                        "summary.csv", "timings.csv"]
    res = pd.read_csv(folder / "results.csv", keep_default_na=False)
    assert list(res.columns) == RESULT_COLUMNS
    summ = pd.read_csv(folder / "summary.csv")
    assert list(summ.columns) == SUMMARY_COLUMNS
    assert summ.columns[7] == "p_vs_consensus" and set(summ["baseline"]) == {"consensus"}
    dec = summ.groupby("metric")["decision"].agg(set)
    assert dec["accuracy_argmax"] == {"argmax"} and dec["uar_balanced"] == {"balanced"}
    assert dec["log_loss"] == dec["brier"] == {"probabilities"} and dec["retrieval"] == {"profile"}
    assert set(summ["scenario"]) == {"unseen", "seen"} and set(summ["k"]) == {5, 10}
    pd.testing.assert_frame_equal(summ, run.summary, check_dtype=False)
    doc = json.loads((folder / "run.json").read_text())
    assert {"numpy", "pandas", "scikit-learn", "python"} <= set(doc["versions"])
    assert doc["config"]["k"] == [5, 10] and doc["listeners"]["unseen"]["evaluated (summed over seeds and folds)"] > 0
    assert doc["chance_retrieval"] == pytest.approx(0.5, abs=0.1)
    again = load_config(folder / "config.yaml")
    assert again.resolved() == cfg.resolved() == doc["config"]
    conf = pd.read_csv(folder / "confusion.csv")
    assert set(conf["decision"]) == {"argmax", "balanced"}
    # every listener-K-method cell of the confusion counts equals that listener's number of test ratings
    n = res[(res["metric"] == "n_test")].groupby(["method", "scenario", "k"])["value"].sum()
    c = conf[conf["decision"] == "argmax"].groupby(["method", "scenario", "k"])["count"].sum()
    pd.testing.assert_series_equal(n.astype(int), c.astype(int), check_names=False)


def test_timings_csv_has_every_stage(written):
    """``timings.csv``: the stages of the run in order, fit/enroll/predict once per method, with
    wall and CPU seconds that add up (the report's own row included) and the peak memory."""
    cfg, data, run = written
    t = pd.read_csv(run.folder / "timings.csv", keep_default_na=False)
    assert list(t.columns) == ["stage", "method", "wall_s", "cpu_s", "calls", "peak_rss_gb"]
    # evaluate_data on loaded data: no load stage (evaluate() adds it)
    assert t["stage"].tolist() == ["split", "fit", "fit", "enroll", "enroll", "predict", "predict", "metrics", "report"]
    per = t[t["stage"].isin(["fit", "enroll", "predict"])]
    assert set(per["method"]) == {"consensus", "similar"} and (t.loc[~t.index.isin(per.index), "method"] == "").all()
    assert (t[["wall_s", "cpu_s"]] >= 0).all().all() and (t["peak_rss_gb"] > 0).all()
    assert t["peak_rss_gb"].is_monotonic_increasing  # a peak never falls
    n_enroll = sum(tm["n_enroll"] for tm in run.output.timings.values())
    assert t.loc[t["stage"] == "enroll", "calls"].sum() == n_enroll > 0
    for stage in ("fit", "enroll", "predict"):
        for m, tm in run.output.timings.items():
            row = t[(t["stage"] == stage) & (t["method"] == m)].iloc[0]
            assert row["wall_s"] == pytest.approx(tm[f"{stage}_s"], abs=1e-3)
            assert row["cpu_s"] == pytest.approx(tm[f"{stage}_cpu_s"], abs=1e-3)
    assert t.loc[t["stage"] == "report", "wall_s"].item() > 0
    pd.testing.assert_frame_equal(t, run.stages.frame(), check_dtype=False)


def test_report_is_self_contained(written):
    _, _, run = written
    page = (run.folder / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 5
    assert "src='http" not in page and 'src="http' not in page and "<script" not in page
    for text in ("balanced decision", "unseen listeners", "seen listeners", "retrieval", "Versions",
                 "Listeners per split", "Wilcoxon"):
        assert text in page


def test_existing_run_folder_is_not_overwritten(written, toy):
    cfg, data, _ = written
    with pytest.raises(ConfigError, match="exists"):
        evaluate_data(cfg, data, console=False)


def test_terminal_summary(written):
    from rich.console import Console

    _, data, run = written
    console = Console(record=True, width=200)
    print_summary(run.summary, data.space.kind, console=console)
    text = console.export_text()
    assert "unseen listeners" in text and "seen listeners" in text and "p: Wilcoxon vs consensus" in text
    assert "similar" in text and "consensus" in text and "retrieval" in text
    assert "accuracy_argmax argmax, uar_balanced balanced, log_loss probabilities" in text
    row = run.summary.query("method == 'similar' and scenario == 'unseen' and k == 10 and metric == 'accuracy_argmax'")
    assert f"{row['mean'].iloc[0]:.3f} [{row['ci_low'].iloc[0]:.3f}, {row['ci_high'].iloc[0]:.3f}]" in text
