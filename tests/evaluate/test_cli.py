"""``perser demo --quick`` and ``perser evaluate --config`` end to end (real methods, tiny settings)."""

import pandas as pd
import pytest
from typer.testing import CliRunner

from perser.cli import _register, app
from perser.errors import ConfigError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    _register()
    out = tmp_path_factory.mktemp("demo") / "d"
    res = CliRunner().invoke(app, ["demo", "--out", str(out), "--quick"])
    assert res.exit_code == 0, res.output + repr(res.exception)
    return out, res.output


def test_demo_quick(demo):
    out, text = demo
    run = out / "run"
    for f in ("results.csv", "summary.csv", "report.html", "config.yaml", "run.json"):
        assert (run / f).is_file()
    assert "unseen listeners" in text and "seen listeners" in text and "demo finished" in text
    s = pd.read_csv(run / "summary.csv")
    from perser.evaluate.demo import QUICK_METHOD_PARAMS
    from perser.methods import default_methods

    # opt-in methods (similar-finetuned, the Meta-PerSER recipe's meta-finetune) only when named
    assert set(s["method"]) == set(QUICK_METHOD_PARAMS) == set(default_methods())
    assert set(s["k"]) == {5, 10}
    assert not s.query("metric == 'retrieval' and method == 'similar'").empty
    # a second run refuses to overwrite the run folder
    res = CliRunner().invoke(app, ["demo", "--out", str(out), "--quick"])
    assert isinstance(res.exception, ConfigError) and "exists" in str(res.exception)


def test_evaluate_config_with_flag_overrides(demo, tmp_path):
    out, _ = demo
    exp = tmp_path / "exp.yaml"
    exp.write_text(
        f"name: cli\ncorpus: {out / 'corpus'}\nspace: emotion\nfeature_cache: {out / 'features'}\n"
        "unseen_column: new\nseeds: [0]\nn_folds: 2\nk: [5, 10]\nmethods: [consensus, similar]\n"
        "method_params:\n  consensus: {hidden: [16], epochs: 1}\n  similar: {hidden: [16], epochs: 1}\n"
    )
    res = CliRunner().invoke(app, ["evaluate", "--config", str(exp), "--k", "5", "--scenarios", "unseen",
                                   "--out", str(tmp_path / "run"), "--no-report", "--n-bootstrap", "100",
                                   "--method-params.similar.top-k", "2"])
    assert res.exit_code == 0, res.output + repr(res.exception)
    r = pd.read_csv(tmp_path / "run" / "results.csv", keep_default_na=False)
    assert set(r["k"]) == {5} and set(r["scenario"]) == {"unseen"} and set(r["method"]) == {"consensus", "similar"}
    assert not (tmp_path / "run" / "report.html").exists()
    import yaml

    cfg = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert cfg["method_params"]["similar"] == {"hidden": [16], "epochs": 1, "top_k": 2}
    res = CliRunner().invoke(app, ["evaluate", "--config", str(exp), "--show-config", "--seeds", "3,4"])
    assert res.exit_code == 0 and "- 3\n- 4" in res.output
    res = CliRunner().invoke(app, ["evaluate", "--config", str(exp), "--n-fold", "3"])
    assert isinstance(res.exception, ConfigError) and "n_fold" in str(res.exception)
