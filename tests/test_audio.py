"""perser.audio: reading, downmixing, resampling and rejecting bad audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from perser.audio import audio_info, check_signal, list_audio_files, read_audio, resample, split_chunks, to_mono
from perser.errors import FeatureError

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def tone(seconds=0.5, sr=16000, f=220.0):
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32)


def test_reads_mono_float32(tmp_path):
    p = tmp_path / "a.wav"
    sf.write(p, tone(), 16000, subtype="PCM_16")
    x, sr = read_audio(p, return_rate=True)
    assert sr == 16000 and x.dtype == np.float32 and x.shape == (8000,)
    assert np.allclose(x, tone(), atol=1 / 32768 * 1.01)


def test_downmixes_stereo_by_averaging(tmp_path):
    left, right = tone(f=220), tone(f=330) * 0.5
    p = tmp_path / "st.flac"
    sf.write(p, np.stack([left, right], axis=1), 16000, subtype="PCM_24")
    x = read_audio(p)
    assert x.ndim == 1
    assert np.allclose(x, (left + right) / 2, atol=1e-5)
    assert np.array_equal(to_mono(np.stack([left], axis=1)), left)


def test_resamples_with_soxr(tmp_path):
    p = tmp_path / "hi.wav"
    sf.write(p, tone(1.0, 44100, 440.0), 44100, subtype="FLOAT")
    x = read_audio(p, sample_rate=16000)
    assert len(x) == 16000
    # the 440 Hz tone survives: its spectral peak is at 440 Hz
    spec = np.abs(np.fft.rfft(x))
    assert abs(np.argmax(spec) * 16000 / len(x) - 440) <= 1
    assert resample(x, 16000, 16000) is not None and len(resample(x, 16000, 8000)) == 8000


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda p: sf.write(p, np.zeros(0, np.float32), 16000), "empty"),
        (lambda p: sf.write(p, np.zeros(16000, np.float32), 16000), "silent"),
        (lambda p: sf.write(p, np.r_[tone(), np.nan].astype(np.float32), 16000, subtype="FLOAT"), "NaN"),
        (lambda p: p.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 50), "unreadable"),
        (lambda p: p.write_bytes(b""), "unreadable"),
    ],
)
def test_rejects_bad_audio_naming_the_file(tmp_path, make, reason):
    p = tmp_path / "bad.wav"
    make(p)
    with pytest.raises(FeatureError, match=reason) as e:
        read_audio(p)
    assert str(p) in str(e.value)


def test_rejects_truncated_wav(tmp_path):
    p = tmp_path / "full.wav"
    sf.write(p, tone(1.0), 16000, subtype="PCM_16")
    data = p.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) // 2])
    assert len(read_audio(p)) == 16000
    with pytest.raises(FeatureError, match="truncated") as e:
        read_audio(cut)
    assert "cut.wav" in str(e.value)


def test_missing_file_and_max_duration(tmp_path):
    with pytest.raises(FeatureError, match="not found"):
        read_audio(tmp_path / "nope.wav")
    p = tmp_path / "long.wav"
    sf.write(p, tone(2.0), 16000)
    assert audio_info(p).duration == pytest.approx(2.0)
    with pytest.raises(FeatureError, match="longer than the maximum duration 1.5"):
        read_audio(p, max_duration=1.5)
    assert len(read_audio(p, max_duration=2.5)) == 32000


def test_check_signal_and_chunks():
    with pytest.raises(FeatureError, match="inf"):
        check_signal(np.array([0.1, np.inf], np.float32), "x")
    x = np.arange(10.0)
    parts = split_chunks(x, 4)
    assert [len(c) for c in parts] == [4, 3, 3]
    assert np.array_equal(np.concatenate(parts), x)
    assert len(split_chunks(x, 10)) == 1


def test_lists_audio_files(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("b.wav", "sub/a.flac"):
        sf.write(tmp_path / name, tone(), 16000)
    (tmp_path / "notes.txt").write_text("x")
    assert [p.relative_to(tmp_path).as_posix() for p in list_audio_files(tmp_path)] == ["b.wav", "sub/a.flac"]


@pytest.mark.shared_data
def test_emodb_original_files():
    files = sorted((SHARED / "emodb-original").glob("*.wav")) if (SHARED / "emodb-original").is_dir() else []
    if not files:
        pytest.skip("../shared/data/emodb-original is absent")
    for f in files:
        info = audio_info(f)
        x = read_audio(f)
        assert info.sample_rate == 16000 and len(x) == info.frames
        assert 1.4 < info.duration < 3.3
        y = read_audio(f, sample_rate=8000)
        assert abs(len(y) - info.frames // 2) <= 1
