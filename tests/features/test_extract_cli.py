"""``perser extract``."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from perser.cli import extract_cmd
from perser.features import Features
from perser.testing.cli import command_app

from .conftest import write_voices


@pytest.fixture()
def app():
    return command_app(extract_cmd)


@pytest.fixture()
def cli():
    return CliRunner()


def test_extract_folder_prints_counts(app, cli, tmp_path):
    folder = tmp_path / "audio"
    write_voices(folder, 3, seconds=(0.5, 0.8))
    (folder / "broken.wav").write_bytes(b"nope")
    store = tmp_path / "store"
    args = ["extract", str(folder), "--features", "egemaps", "--cache", str(store), "--no-progress"]
    r = cli.invoke(app, [*args, "--export", str(tmp_path / "f.npz")])
    assert r.exit_code == 0, r.output
    assert "computed 3, reused 0, failed 1" in r.output
    assert str(store) in r.output.replace("\n", "")
    assert "broken" in r.output
    feats = Features.load(tmp_path / "f.npz")
    assert feats.clip_ids.tolist() == ["clip000", "clip001", "clip002"] and feats.X.shape == (3, 88)
    r = cli.invoke(app, args)
    assert "computed 0, reused 3, failed 1" in r.output


def test_extract_shards_and_bad_options(app, cli, tmp_path):
    folder = tmp_path / "audio"
    write_voices(folder, 3, seconds=(0.5, 0.6))
    base = ["extract", str(folder), "-f", "egemaps", "--cache", str(tmp_path / "s"), "--no-progress"]
    r0 = cli.invoke(app, [*base, "--shard", "0/2"])
    r1 = cli.invoke(app, [*base, "--shard", "1/2"])
    assert "computed 2, reused 0" in r0.output and "computed 1, reused 0" in r1.output
    assert "computed 0, reused 3" in cli.invoke(app, base).output
    bad = cli.invoke(app, [*base, "--shard", "2/2"])
    assert bad.exit_code != 0 and "0 <= i < N" in str(bad.exception)
    bad = cli.invoke(app, ["extract", str(folder), "-f", f"ssl:{tmp_path / 'none'}", "--no-progress"])
    assert bad.exit_code != 0 and "save_pretrained" in str(bad.exception)


def test_extract_ssl_pad_unmasked_flag_makes_its_own_entries(app, cli, tmp_path):
    from .conftest import save_tiny_model

    model = save_tiny_model(tmp_path / "g", "wav2vec2", mask=False)
    folder = tmp_path / "audio"
    write_voices(folder, 3, seconds=(0.5, 0.8))
    base = ["extract", str(folder), "-f", f"ssl:{model}", "--cache", str(tmp_path / "s"), "--no-progress", "--device", "cpu"]
    assert "computed 3, reused 0" in cli.invoke(app, base).output
    assert "computed 0, reused 3" in cli.invoke(app, base).output
    r = cli.invoke(app, [*base, "--pad-unmasked"])
    assert r.exit_code == 0, r.output
    assert "computed 3, reused 0" in r.output  # other numbers, other key


def test_extract_passes_loader_options_to_the_corpus(app, cli, tmp_path):
    from perser.testing.corpora import write_crema_d

    fx = write_crema_d(tmp_path / "crema", seed=1, missing_audio=1)
    base = ["extract", str(fx.root), "-f", "egemaps", "--cache", str(tmp_path / "s"), "--no-progress"]
    r = cli.invoke(app, base)  # the clip without audio is dropped by the loader (counted)
    assert r.exit_code == 0, r.output
    assert "failed 0" in r.output
    kept = cli.invoke(app, [*base, "--option", "missing_audio=keep"])  # kept: its extraction fails, named
    assert kept.exit_code == 0, kept.output
    assert "failed 1" in kept.output and "failed:" in kept.output
    bad = cli.invoke(app, [*base, "--option", "missing_audo=keep"])
    assert bad.exit_code != 0 and "missing_audo" in str(bad.exception)
    folder = cli.invoke(app, ["extract", str(tmp_path / "crema" / "AudioWAV"), "-f", "egemaps", "--option", "modality=face"])
    assert folder.exit_code != 0 and "do not apply" in str(folder.exception)
