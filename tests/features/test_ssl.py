"""Self-supervised encoders through the local-folder route, with tiny random models."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("transformers")
import torch  # noqa: E402

from perser.errors import FeatureError  # noqa: E402
from perser.features import extract  # noqa: E402
from perser.features.base import Job  # noqa: E402
from perser.features.store import FeatureStore, file_digest  # noqa: E402

from .conftest import save_tiny_model, voice, write_voices  # noqa: E402


def manual_pool(model_dir, x: np.ndarray) -> np.ndarray:
    """Mean over frames of every hidden state, computed directly with transformers."""
    from transformers import AutoModel

    model = AutoModel.from_pretrained(model_dir, local_files_only=True).eval()
    x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    with torch.inference_mode():
        out = model(torch.from_numpy(x[None].astype(np.float32)), output_hidden_states=True)
    return torch.stack(out.hidden_states)[:, 0].mean(dim=1).numpy()


@pytest.mark.parametrize("kind", ["wavlm", "hubert", "wav2vec2"])
def test_all_layers_mean_pooled(kind, tmp_path):
    model = save_tiny_model(tmp_path / kind, kind)
    paths = write_voices(tmp_path / "a", 3, seconds=(0.5, 1.2))
    feats = extract(paths, f"ssl:{model}", cache_dir=tmp_path / "s", device="cpu", batch_size=3, progress=False)
    assert feats.X.shape == (3, 3, 32)  # [clips, layers + 1, dim]
    assert feats.spec == f"ssl:{model}"
    # padded batch with attention masks == each clip alone, computed directly
    for i, p in enumerate(paths):
        x, _ = sf.read(p, dtype="float32")
        np.testing.assert_allclose(feats.X[i], manual_pool(model, x), rtol=1e-4, atol=1e-5)
    with pytest.raises(FeatureError, match="frame"):
        feats.frame()


def test_mean_std_pooling_and_cache_keys(tmp_path):
    model = save_tiny_model(tmp_path / "m", "wavlm")
    paths = write_voices(tmp_path / "a", 2, seconds=(0.5, 0.8))
    store = tmp_path / "s"
    mean = extract(paths, f"ssl:{model}", cache_dir=store, device="cpu", progress=False)
    both = extract(paths, f"ssl:{model}", cache_dir=store, device="cpu", pooling="mean+std", progress=False)
    assert both.X.shape == (2, 3, 64) and both.n_computed == 2
    np.testing.assert_allclose(both.X[..., :32], mean.X, rtol=1e-5, atol=1e-6)
    assert (both.X[..., 32:] > 0).all()
    hit = extract(paths, f"ssl:{model}", cache_dir=store, device="cpu", progress=False)
    assert (hit.n_computed, hit.n_reused) == (0, 2)
    # other weights in the same folder: a different key, computed afresh
    save_tiny_model(tmp_path / "m", "wavlm", seed=1)
    new = extract(paths, f"ssl:{model}", cache_dir=store, device="cpu", progress=False)
    assert new.n_computed == 2 and new.key != mean.key and not np.allclose(new.X, mean.X)



def test_stored_mean_and_std_equal_the_hidden_states_statistics(tmp_path):
    from transformers import AutoModel

    model = save_tiny_model(tmp_path / "m", "wav2vec2")
    paths = write_voices(tmp_path / "a", 1, seconds=(1.3, 1.3))
    x, _ = sf.read(paths[0], dtype="float32")
    x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    m = AutoModel.from_pretrained(model, local_files_only=True).eval()
    with torch.inference_mode():
        hs = torch.stack(m(torch.from_numpy(x[None]), output_hidden_states=True).hidden_states)[:, 0].double()
    assert hs.shape[0] == 3 and hs.shape[1] > 50  # [layers + 1, frames, dim]
    mean, std = hs.mean(dim=1).numpy(), hs.std(dim=1, unbiased=False).numpy()
    assert (std > 1e-3).all()  # a real spread over frames, not a constant
    for pooling, expected in [("mean", mean), ("mean+std", np.concatenate([mean, std], axis=-1))]:
        feats = extract(paths, f"ssl:{model}", cache_dir=tmp_path / "s", device="cpu", pooling=pooling, progress=False)
        assert feats.X.shape == (1, 3, expected.shape[-1])
        stored = FeatureStore(tmp_path / "s").get(feats.key, file_digest(paths[0]))  # what the store holds
        assert stored is not None and stored.shape == expected.shape
        np.testing.assert_allclose(stored, expected, rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(feats.X[0], stored)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_half_precision_on_cpu_is_close_to_fp32_under_its_own_key(precision, tmp_path):
    # bf16 runs under CPU autocast; fp16 on a CPU casts the model and inputs to half
    model = save_tiny_model(tmp_path / "m", "wavlm")
    paths = write_voices(tmp_path / "a", 3, seconds=(0.5, 1.5))
    store = tmp_path / "s"
    full = extract(paths, f"ssl:{model}", cache_dir=store, device="cpu", precision="fp32", progress=False)
    auto = extract(paths, f"ssl:{model}", cache_dir=store, device="cpu", precision="auto", progress=False)
    assert auto.key == full.key and auto.n_reused == 3  # auto is fp32 on a CPU
    half = extract(paths, f"ssl:{model}", cache_dir=store, device="cpu", precision=precision, progress=False)
    assert half.key != full.key and half.n_computed == 3
    assert half.X.dtype == np.float32 and np.isfinite(half.X).all()
    assert not np.array_equal(half.X, full.X)  # the reduced precision really ran
    scale = np.abs(full.X).max()
    np.testing.assert_allclose(half.X, full.X, atol=0.02 * scale, rtol=0)


def fake_version(monkeypatch, name: str, fake: str) -> None:
    """Pretend the installed ``name`` is version ``fake`` (as importlib.metadata would report)."""
    import importlib.metadata

    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda n: fake if n == name else real(n))


def test_store_key_records_torch_and_transformers_versions(tmp_path, monkeypatch):
    from importlib.metadata import version

    from perser.features.ssl_models import SSLExtractor

    model = save_tiny_model(tmp_path / "m", "wavlm")
    paths = write_voices(tmp_path / "a", 2, seconds=(0.5, 0.8))
    store = tmp_path / "s"
    first = extract(paths, f"ssl:{model}", cache_dir=store, device="cpu", progress=False)
    ex = SSLExtractor(model, device="cpu")
    assert ex.settings()["transformers"] == version("transformers") and ex.settings()["torch"] == version("torch")
    assert ex.key == first.key
    with monkeypatch.context() as mp:
        fake_version(mp, "transformers", "0.0.1")
        upgraded = extract(paths, f"ssl:{model}", cache_dir=store, device="cpu", progress=False)
        assert upgraded.key != first.key and (upgraded.n_computed, upgraded.n_reused) == (2, 0)
    with monkeypatch.context() as mp:
        fake_version(mp, "torch", "0.0.1")
        assert SSLExtractor(model, device="cpu").key not in (first.key, upgraded.key)
    again = extract(paths, f"ssl:{model}", cache_dir=store, device="cpu", progress=False)
    assert again.key == first.key and again.n_reused == 2

def test_model_without_attention_mask_batches_equal_lengths_only(tmp_path):
    model = save_tiny_model(tmp_path / "g", "wav2vec2", mask=False)
    d = tmp_path / "a"
    d.mkdir()
    lengths = [0.6, 0.9, 0.6, 0.75]
    paths = []
    for i, s in enumerate(lengths):
        paths.append(d / f"c{i}.wav")
        sf.write(paths[-1], voice(s, seed=i), 16000, subtype="FLOAT")
    feats = extract(paths, f"ssl:{model}", cache_dir=tmp_path / "s", device="cpu", batch_size=4, progress=False)
    for i, p in enumerate(paths):
        x, _ = sf.read(p, dtype="float32")
        np.testing.assert_allclose(feats.X[i], manual_pool(model, x), rtol=1e-4, atol=1e-5)


def test_long_clips_are_chunked(tmp_path):
    model = save_tiny_model(tmp_path / "m", "hubert")
    paths = write_voices(tmp_path / "a", 1, seconds=(2.0, 2.0))
    whole = extract(paths, f"ssl:{model}", cache_dir=tmp_path / "s", device="cpu", progress=False)
    chunked = extract(paths, f"ssl:{model}", cache_dir=tmp_path / "s", device="cpu", chunk_seconds=0.5, progress=False)
    assert chunked.key != whole.key and chunked.n_computed == 1
    assert chunked.X.shape == whole.X.shape and np.isfinite(chunked.X).all()
    x, _ = sf.read(paths[0], dtype="float32")
    x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    # frames pooled over four 0.5 s chunks: the frame-weighted mean of the chunks' means
    parts = np.array_split(x, 4)  # the clip is normalised once, then cut
    from transformers import AutoModel

    m = AutoModel.from_pretrained(model, local_files_only=True).eval()
    sums, n = 0.0, 0
    with torch.inference_mode():
        for p in parts:
            hs = torch.stack(m(torch.from_numpy(p[None]), output_hidden_states=True).hidden_states)[:, 0]
            sums = sums + hs.sum(dim=1).numpy()
            n += hs.shape[1]
    np.testing.assert_allclose(chunked.X[0], sums / n, rtol=1e-4, atol=1e-5)


def test_missing_or_invalid_model_says_how_to_supply_one(tmp_path, voices):
    with pytest.raises(FeatureError, match="save_pretrained"):
        extract(voices, f"ssl:{tmp_path / 'nowhere'}", cache_dir=tmp_path / "s", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FeatureError, match="no config.json"):
        extract(voices, f"ssl:{tmp_path / 'empty'}", cache_dir=tmp_path / "s", progress=False)
    model = save_tiny_model(tmp_path / "m", "wavlm")
    for f in model.glob("*.safetensors"):
        f.unlink()
    with pytest.raises(FeatureError, match="no weight file"):
        extract(voices, f"ssl:{model}", cache_dir=tmp_path / "s", progress=False)


def test_bad_and_too_short_clips_fail_alone(tmp_path):
    model = save_tiny_model(tmp_path / "m", "wavlm")
    paths = write_voices(tmp_path / "a", 2, seconds=(0.5, 0.7))
    tiny = tmp_path / "a" / "tiny.wav"
    sf.write(tiny, voice(0.002, seed=5), 16000)
    broken = tmp_path / "a" / "broken.wav"
    broken.write_bytes(b"not audio")
    with pytest.warns(Warning):
        feats = extract(paths + [tiny, broken], f"ssl:{model}", cache_dir=tmp_path / "s", device="cpu", progress=False)
    assert feats.clip_ids.tolist() == [str(p) for p in paths]
    assert "too short" in feats.failures[str(tiny)] and "unreadable" in feats.failures[str(broken)]


# ----------------------------------------------------------- forward passes
def recording_extractor(model_dir, **settings):
    """An SSLExtractor on the CPU whose model records every forward pass's input: ``(rows, padded, valid)``."""
    from perser.features.ssl_models import SSLExtractor

    ex = SSLExtractor(model_dir, device="cpu", **settings)
    passes: list[tuple[int, int, list[int]]] = []

    def hook(module, args, kwargs):
        x = kwargs["input_values"]
        mask = kwargs.get("attention_mask")
        valid = mask.sum(dim=1).tolist() if mask is not None else [x.shape[1]] * x.shape[0]
        passes.append((x.shape[0], x.shape[1], [int(v) for v in valid]))

    ex.model.register_forward_pre_hook(hook, with_kwargs=True)
    return ex, passes


def run_jobs(ex, paths) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    out, errs = {}, {}

    def sink(digest, y, err):
        if err is None:
            out[digest] = y
        else:
            errs[digest] = err

    ex.run([Job(str(p), str(p)) for p in paths], sink)
    return out, errs


def write_lengths(folder, seconds) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, s in enumerate(seconds):
        paths.append(folder / f"c{i}.wav")
        sf.write(paths[-1], voice(s, seed=i), 16000, subtype="FLOAT")
    return paths


def test_chunked_batches_respect_the_cap_and_equal_each_clip_alone(tmp_path):
    model = save_tiny_model(tmp_path / "m", "wavlm")
    # chunks of <= 0.5 s: 2.2 s -> 5 rows (more than the cap alone), 1.4 -> 3, 0.7 -> 2, 0.6 -> 2, 0.3 -> 1
    paths = write_lengths(tmp_path / "a", [0.7, 2.2, 0.3, 1.4, 0.6])
    cap, sr = 1.5, 16000
    ex, passes = recording_extractor(model, chunk_seconds=0.5, max_batch_seconds=cap, batch_size=8)
    batches = ex._batches([Job(str(p), str(p)) for p in paths], None)
    together, errs = run_jobs(ex, paths)
    assert not errs and len(together) == len(paths)
    # a batch of several clips that each need several chunks exists, and so does a clip split over passes
    multi = [b for b in batches if len(b) > 1]
    assert any(all(sf.info(j.path).duration > 0.5 for j in b) for b in multi)
    rows_per_clip = {str(p): int(np.ceil(sf.info(p).duration / 0.5)) for p in paths}
    assert sum(rows_per_clip.values()) == sum(r for r, _, _ in passes)
    assert len(passes) > len(batches)
    for rows, padded, _ in passes:  # no forward pass above the cap, counting padding
        assert rows <= 8 and rows * padded <= cap * sr
    # the same numbers as each clip alone in one pass (no cap to speak of)
    alone_ex, alone_passes = recording_extractor(model, chunk_seconds=0.5, max_batch_seconds=100.0, batch_size=8)
    for p in paths:
        alone, _ = run_jobs(alone_ex, [p])
        np.testing.assert_allclose(together[str(p)], alone[str(p)], rtol=1e-4, atol=1e-5)
    assert len(alone_passes) == len(paths)  # one pass per clip: the cap is what split them above


def test_pad_unmasked_batches_clips_of_different_lengths_under_its_own_key(tmp_path):
    model = save_tiny_model(tmp_path / "g", "wav2vec2", mask=False)
    paths = write_lengths(tmp_path / "a", [0.6, 0.9, 0.75])
    exact, exact_passes = recording_extractor(model, batch_size=4)
    padded, padded_passes = recording_extractor(model, batch_size=4, pad_unmasked=True)
    a, _ = run_jobs(exact, paths)
    b, _ = run_jobs(padded, paths)
    assert [r for r, _, _ in exact_passes] == [1, 1, 1]  # one length, one pass
    assert [(r, n) for r, n, _ in padded_passes] == [(3, int(0.9 * 16000))]  # one zero-padded pass, no mask
    longest = str(paths[1])  # the longest clip has no padding: the same numbers
    np.testing.assert_allclose(b[longest], a[longest], rtol=1e-4, atol=1e-5)
    shorter = str(paths[0])  # padding enters the group normalisation of the shorter clips
    assert not np.allclose(b[shorter], a[shorter], rtol=1e-4, atol=1e-5)
    assert np.isfinite(b[shorter]).all()
    assert exact.key != padded.key
    # with a masked model the option changes nothing, so neither does the key
    masked = save_tiny_model(tmp_path / "m", "wavlm")
    from perser.features.ssl_models import SSLExtractor

    assert SSLExtractor(masked, device="cpu").key == SSLExtractor(masked, device="cpu", pad_unmasked=True).key


def test_clips_reach_the_model_longest_first(tmp_path):
    model = save_tiny_model(tmp_path / "m", "hubert")
    seconds = [0.45, 0.9, 0.3, 0.75, 0.6, 1.05]
    paths = write_lengths(tmp_path / "a", seconds)
    ex, passes = recording_extractor(model, batch_size=2)
    out, errs = run_jobs(ex, paths)
    assert not errs and len(out) == len(paths)
    fed = [v for _, _, valid in passes for v in valid]
    assert fed == sorted((int(round(s * 16000)) for s in seconds), reverse=True)
    assert [r for r, _, _ in passes] == [2, 2, 2]



def test_progress_covers_weight_hashing_store_lookup_and_extraction(tmp_path):
    import io

    from rich.console import Console

    model = save_tiny_model(tmp_path / "m", "wavlm")
    paths = write_voices(tmp_path / "a", 3, seconds=(0.5, 0.8))

    def run():
        buf = io.StringIO()
        feats = extract(paths, f"ssl:{model}", cache_dir=tmp_path / "s", device="cpu",
                        progress=Console(file=buf, force_terminal=True, width=400))
        return feats, buf.getvalue()

    cold, shown = run()
    assert cold.n_computed == 3
    for task in ("hashing model weights", "hashing audio", "loading stored features", f"extracting ssl:{model}"):
        assert task in shown, task
    warm, shown = run()  # a warm store: every clip loaded from it, with a bar, and nothing extracted
    assert (warm.n_computed, warm.n_reused) == (0, 3)
    assert "hashing model weights" in shown and "loading stored features" in shown and "3/3" in shown
    assert "extracting" not in shown
    np.testing.assert_array_equal(warm.X, cold.X)
