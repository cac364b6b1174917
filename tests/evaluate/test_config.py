import pytest

from perser.config import ExperimentConfig, load_config, parse_overrides, recipe_path
from perser.errors import ConfigError


def test_yaml_and_flag_overrides(tmp_path):
    f = tmp_path / "exp.yaml"
    f.write_text("name: x\ncorpus: data/c\nk: [5, 10]\nseeds: [0]\nmethod_params:\n  similar: {top_k: 2}\n")
    over = parse_overrides(["--k", "5,20,30", "--n-folds=3", "--method-params.similar.temperature", "0.5",
                            "--eval", "other", "--no-report", "--seed", "4"])
    assert over == {"k": [5, 20, 30], "n_folds": 3, "method_params.similar.temperature": 0.5,
                    "eval_corpus": "other", "report": False, "seeds": 4}
    cfg = load_config(f, over)
    assert cfg.k == [5, 20, 30] and cfg.n_folds == 3 and cfg.seeds == [4] and cfg.report is False
    assert cfg.method_params == {"similar": {"top_k": 2, "temperature": 0.5}}
    assert cfg.corpus == tmp_path / "data" / "c"          # relative to the file
    assert str(cfg.eval_corpus) == "other"                # flags are relative to the working directory
    assert load_config(f).k == [5, 10]


def test_every_key_is_a_flag():
    for key in ExperimentConfig.model_fields:
        assert parse_overrides([f"--{key.replace('_', '-')}", "1"]) == {key: 1}


def test_bad_config_names_the_key(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="unknown config key 'nfolds'"):
        load_config(overrides={"corpus": "c", "nfolds": 3})
    with pytest.raises(ConfigError, match="n_folds"):
        load_config(overrides={"corpus": "c", "n_folds": 1})
    with pytest.raises(ConfigError, match="enroll_from"):
        load_config(overrides={"corpus": "c", "enroll_from": "dev"})
    with pytest.raises(ConfigError, match="no corpus"):
        load_config(overrides={"k": [5]})
    f = tmp_path / "e.yaml"
    f.write_text("corpus: ${PERSER_TEST_UNSET_ROOT}\n")
    monkeypatch.delenv("PERSER_TEST_UNSET_ROOT", raising=False)
    with pytest.raises(ConfigError, match="PERSER_TEST_UNSET_ROOT"):
        load_config(f)
    monkeypatch.setenv("PERSER_TEST_UNSET_ROOT", str(tmp_path))
    assert load_config(f).corpus == tmp_path
    f.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(f)


def test_config_round_trips_through_yaml(tmp_path):
    import yaml

    cfg = load_config(overrides={"corpus": str(tmp_path), "k": [10, 5], "mapping.classes.fea": None,
                                 "mapping.classes.ang": "angry"})
    assert cfg.k == [5, 10]
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump(cfg.resolved()))
    assert load_config(f).resolved() == cfg.resolved()


def test_recipes_are_packaged():
    for name in ("tavernor-iemocap", "tavernor-msp-improv", "tavernor-muse", "meta-perser-iemocap"):
        doc = recipe_path(name).read_text()
        assert "corpus" in doc
    with pytest.raises(ConfigError, match="no recipe"):
        recipe_path("nope")


def test_several_feature_sets_on_the_command_line(tmp_path):
    from perser.evaluate.data import feature_settings_for

    over = parse_overrides(["--features", "[ssl:/m/wavlm, text:/m/bert]", "--feature-settings",
                            "{ssl:/m/wavlm: {pooling: mean}, text:/m/bert: {pooling: cls}}"])
    cfg = load_config(overrides={"corpus": str(tmp_path), **over})
    assert cfg.features == ["ssl:/m/wavlm", "text:/m/bert"]
    assert feature_settings_for("text:/m/bert", cfg) == {"pooling": "cls"}
    assert feature_settings_for("ssl:/m/wavlm", cfg) == {"pooling": "mean"}
    one = load_config(overrides={"corpus": str(tmp_path), "features": "egemaps", "feature_settings": {"max_duration": 9}})
    assert feature_settings_for("egemaps", one) == {"max_duration": 9}


def test_train_and_eval_flags_name_the_two_corpora(tmp_path):
    over = parse_overrides(["--train", str(tmp_path / "crema"), "--eval=" + str(tmp_path / "iemocap"),
                            "--space", "emotion"])
    assert over == {"corpus": str(tmp_path / "crema"), "eval_corpus": str(tmp_path / "iemocap"), "space": "emotion"}
    cfg = load_config(overrides=over)
    assert cfg.corpus == tmp_path / "crema" and cfg.eval_corpus == tmp_path / "iemocap"
    # a flag overrides the file's training corpus, as --corpus would
    f = tmp_path / "exp.yaml"
    f.write_text("corpus: elsewhere\nk: [5]\n")
    assert load_config(f, parse_overrides(["--train", str(tmp_path / "crema")])).corpus == tmp_path / "crema"
    assert load_config(f).eval_corpus is None


def test_cli_train_eval_flags(tmp_path):
    import yaml
    from typer.testing import CliRunner

    from perser.cli import _register, app

    _register()
    res = CliRunner().invoke(app, ["evaluate", "--train", str(tmp_path / "a"), "--eval", str(tmp_path / "b"),
                                   "--show-config"])
    assert res.exit_code == 0, res.output + repr(res.exception)
    doc = yaml.safe_load(res.output)
    assert doc["corpus"] == str(tmp_path / "a") and doc["eval_corpus"] == str(tmp_path / "b")


def test_paper_recipes_take_the_papers_encoders_from_named_local_copies(monkeypatch):
    """The Tavernor recipes use WavLM + BERT features and the Meta-PerSER recipe an SSL
    stack, from local copies the user names; an unset variable is an error naming it."""
    for var in ("WAVLM_DIR", "BERT_DIR", "SSL_MODEL_DIR"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ConfigError, match="WAVLM_DIR"):
        load_config(recipe_path("tavernor-iemocap"), {"corpus": "x", "eval_corpus": "y"})
    with pytest.raises(ConfigError, match="SSL_MODEL_DIR"):
        load_config(recipe_path("meta-perser-iemocap"), {"corpus": "x"})
    monkeypatch.setenv("WAVLM_DIR", "/m/wavlm-base-plus")
    monkeypatch.setenv("BERT_DIR", "/m/bert-base-uncased")
    monkeypatch.setenv("SSL_MODEL_DIR", "/m/wavlm-base")
    for name in ("tavernor-iemocap", "tavernor-msp-improv", "tavernor-muse"):
        cfg = load_config(recipe_path(name), {"corpus": "x", "eval_corpus": "y"})
        assert cfg.features == ["ssl:/m/wavlm-base-plus", "text:/m/bert-base-uncased"], name
    def specs(cfg):
        return [cfg.features] if isinstance(cfg.features, str) else list(cfg.features)

    assert specs(load_config(recipe_path("meta-perser-iemocap"), {"corpus": "x"})) == ["ssl:/m/wavlm-base"]
    # a flag replaces the variable before it is expanded
    assert specs(load_config(recipe_path("meta-perser-iemocap"), {"corpus": "x", "features": "egemaps"})) == ["egemaps"]
