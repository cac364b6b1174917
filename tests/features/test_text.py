"""Text features (``text:DIR``) with a tiny randomly initialised BERT written in the test."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("transformers")

from perser.errors import FeatureError  # noqa: E402
from perser.features import extract  # noqa: E402
from perser.features.text import combine, read_transcripts  # noqa: E402
from perser.testing.corpora import load_quietly  # noqa: E402
from perser.testing.corpora import write_muse  # noqa: E402

WORDS = ["sentence", "spoken", "by", "speaker", "excuse", "me", "."] + [str(i) for i in range(60)] + \
        [f"{i:02d}" for i in range(60)]


def tiny_bert(folder, seed=0):
    """A one-layer BERT of width 16 and a word-level vocabulary, saved with save_pretrained."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n", encoding="utf-8")
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=5 + len(WORDS), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=64)
    BertModel(cfg).save_pretrained(folder)
    BertTokenizer(str(vocab)).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return tiny_bert(tmp_path_factory.mktemp("bert") / "tiny-bert")


@pytest.fixture(scope="module")
def muse(tmp_path_factory):
    fx = write_muse(tmp_path_factory.mktemp("muse") / "m", n_speakers=4, n_clips_per_speaker=5, n_annotators=6,
                    ratings_per_clip=3, seed=4)
    return load_quietly(fx.root)


def _cls(bert, text):
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(bert))
    m = AutoModel.from_pretrained(str(bert)).eval()
    with torch.no_grad():
        return m(**tok(text, return_tensors="pt")).last_hidden_state[0, 0].numpy()


def test_text_features_are_the_cls_vector_of_each_transcript(bert, muse, tmp_path):
    tr = read_transcripts(muse)
    assert len(tr) == len(muse.clips) - 1  # the fixture leaves the last clip without a transcript
    with pytest.warns(Warning, match="without a transcript"):
        f = extract(muse, f"text:{bert}", cache_dir=tmp_path / "store", progress=False)
    missing = sorted(set(muse.clips.index) - set(tr))
    assert list(f.failures) == missing and "no transcript" in f.failures[missing[0]]
    assert f.X.shape == (len(muse.clips) - 1, 16) and f.n_computed == len(f)
    c = f.clip_ids[3]
    np.testing.assert_allclose(f.X[3], _cls(bert, tr[c]), rtol=1e-5, atol=1e-6)
    # stored by text: a second run computes nothing
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = extract(muse, f"text:{bert}", cache_dir=tmp_path / "store", progress=False)
        mean = extract(muse, f"text:{bert}", cache_dir=tmp_path / "store", progress=False, pooling="mean")
    assert again.n_reused == len(again) and again.n_computed == 0
    np.testing.assert_array_equal(again.X, f.X)
    assert mean.key != f.key and not np.allclose(mean.X, f.X)


def test_iemocap_transcripts_are_read_from_the_release(tmp_path):
    from perser.testing.corpora import write_iemocap

    root = tmp_path / "iemocap"
    write_iemocap(root, n_sessions=1, n_dialogs=1, n_clips_per_dialog=4, n_annotators=3, seed=0)
    c = load_quietly(root)
    tr = read_transcripts(c)
    assert set(tr) == set(map(str, c.clips.index)) and set(tr.values()) == {"Excuse me."}


def test_text_model_folder_must_hold_a_model(muse, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FeatureError, match="config.json"):
        extract(muse, f"text:{tmp_path / 'empty'}", cache_dir=tmp_path / "s", progress=False)


def test_feature_sets_combine_per_clip(bert, muse, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = extract(muse, f"text:{bert}", cache_dir=tmp_path / "s", progress=False)
        b = extract(muse, "egemaps", cache_dir=tmp_path / "s", progress=False)
    both = combine([b, a])
    assert both.X.shape == (len(a), b.X.shape[1] + 16)
    c = a.clip_ids[0]
    np.testing.assert_array_equal(both.X[list(both.clip_ids).index(c)], np.concatenate([b.select([c])[0], a.select([c])[0]]))
    lacking = set(map(str, b.clip_ids)) - set(map(str, a.clip_ids))
    assert lacking and lacking <= set(both.failures)


def test_evaluate_with_speech_and_text_features(bert, muse, tmp_path):
    from perser.config import load_config
    from perser.evaluate import evaluate

    cfg = load_config(overrides={
        "corpus": str(muse.root), "format": "muse", "space": "avd", "features": ["egemaps", f"text:{bert}"],
        "feature_cache": str(tmp_path / "s"), "methods": ["consensus", "similar"], "k": [2], "seeds": [0],
        "n_folds": 2, "fold_by": "speaker", "min_test": 1, "scenarios": ["unseen"], "unseen_fraction": 0.3,
        "progress": False, "n_bootstrap": 100, "out": str(tmp_path / "run"),
        "method_params": {"consensus": {"hidden": [8], "epochs": 2}, "similar": {"hidden": [8], "epochs": 2, "min_ratings": 2}},
    })
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = evaluate(cfg, console=False)
    assert run.data.X.shape[1] == 88 + 16  # eGeMAPS + the text encoder's width
    assert (run.folder / "predictions.csv").is_file()
    assert any("transcript" in n for n in run.data.notes) or len(run.data.clips) < len(muse.clips)


def test_perser_extract_text_on_the_command_line(bert, muse, tmp_path):
    from typer.testing import CliRunner

    from perser.cli import extract_cmd
    from perser.testing.cli import command_app

    res = CliRunner().invoke(command_app(extract_cmd), ["extract", str(muse.root), "--features", f"text:{bert}", "--cache",
                                   str(tmp_path / "s"), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert f"{len(muse.clips) - 1} clips x 16" in res.output and "failed 1" in res.output


def test_ssl_stack_and_text_combine_through_the_last_layer(bert, muse, tmp_path):
    from perser.errors import ConfigError
    from perser.testing.ssl import save_tiny_model

    ssl = save_tiny_model(tmp_path / "wavlm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = extract(muse, f"ssl:{ssl}", cache_dir=tmp_path / "s", progress=False)
        t = extract(muse, f"text:{bert}", cache_dir=tmp_path / "s", progress=False)
    assert s.X.ndim == 3 and s.X.shape[1] > 1
    with pytest.raises(ConfigError, match="one vector"):
        combine([s, t])
    both = combine([s, t], last_layer=True)
    c = t.clip_ids[0]
    np.testing.assert_array_equal(both.X[list(both.clip_ids).index(c)], np.concatenate([s.select([c])[0][-1], t.select([c])[0]]))
