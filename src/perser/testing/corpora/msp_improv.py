"""A small, format-faithful copy of MSP-IMPROV (see :mod:`perser.testing.corpora`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from perser.testing.corpora._sim import (
    Fixture,
    _annotators,
    _choose,
    _latent,
    _plurality,
    _rate_class,
    _rate_dims,
    _tone,
    _write_text,
    _write_wav,
)

_IMP_PRIMARY = ("angry", "happy", "sad", "neutral", "other")
_IMP_SECONDARY = (
    "depressed", "frustrated", "angry", "sad", "disgust", "excited", "fear", "neutral", "surprise", "happy",
)
_IMP_FAMILY = {}
_IMP_W = np.array([0.2, 0.25, 0.2, 0.3, 0.05])
_IMP_TARGET = "AHSN"
_IMP_CODE = {"angry": "A", "happy": "H", "sad": "S", "neutral": "N", "other": "O"}


def _f6(x: float) -> str:
    return "NaN" if np.isnan(x) else f"{x:.6f}"


def write_msp_improv(
    root: str | Path,
    n_sessions: int = 2,
    n_clips_per_session: int = 12,
    n_annotators: int = 10,
    ratings_per_clip: int = 4,
    seed: int = 0,
    audio_root: str = "",
    duplicate_rows: int = 1,
    nan_dn: int = 1,
    other_answers: int = 1,
    missing_audio: int = 0,
    crlf: bool = False,
    avi: bool = True,
) -> Fixture:
    """Write an MSP-IMPROV tree under ``root``; return the :class:`Fixture`.

    ``Evaluation.txt`` names the videos (``UTD-IMPROV-….avi``) and stores arousal
    inverted (1 = high), as the release does; :attr:`Fixture.ratings` holds arousal
    the right way round (1 = low), as the loader returns it.

    Parameters
    ----------
    n_sessions, n_clips_per_session:
        Sessions 1..n (one F and one M actor each) and clips per session.
    n_annotators, ratings_per_clip:
        Rater pool and raters per clip.
    audio_root:
        ``""`` (``session1/…`` at the root) or ``"Audio"`` (``Audio/session1/…``).
    duplicate_rows:
        Rater lines repeated verbatim in the same block (the loader drops the copies).
    nan_dn:
        Rater lines with ``D:NaN; N:NaN`` (the loader drops their A/V/D, keeps the emotion).
    other_answers:
        Rater lines answering ``Other`` with free text in the secondary field.
    avi:
        Write empty ``.avi`` files beside the wavs.
    """
    rng = np.random.default_rng(seed)
    base = Path(root)
    adir = base / audio_root if audio_root else base
    raters = _annotators(rng, n_annotators, len(_IMP_PRIMARY))
    rater_ids = [f"{'ABCDEFGH'[i % 8]}{1000 + 7 * i}x{i % 3}" for i in range(n_annotators)]
    quirks = dict.fromkeys(["duplicate_rows", "nan_dn", "other_answers", "missing_audio"], 0)
    lines, truth, clips = [], [], []
    n = 0
    for s in range(1, n_sessions + 1):
        for j in range(n_clips_per_session):
            g = "FM"[j % 2]
            k, avd = _latent(rng, _IMP_PRIMARY, _IMP_FAMILY, _IMP_W)
            sent = 1 + j % 20
            target = _IMP_TARGET[j % 4]
            scen = "PRST"[(j // 2) % 4]
            lg = "FM"[(j // 2) % 2]
            stem = f"S{sent:02d}{target}-{g}{s:02d}-{scen}-{lg}{g}{j + 1:02d}"
            cid = f"MSP-IMPROV-{stem}"
            prim, dims, block = [], [], []
            for w in _choose(rng, n_annotators, ratings_per_clip):
                p = _IMP_PRIMARY[_rate_class(rng, raters[w], k)]
                a, v, d = (float(x) for x in _rate_dims(rng, raters[w], avd, 1, 5))
                nat = float(rng.integers(2, 6))
                sec = [x for x in _IMP_SECONDARY if rng.random() < 0.15]
                other_text = None
                if quirks["other_answers"] < other_answers and j % 5 == 2:
                    p, other_text = "other", "Annoyed"
                    quirks["other_answers"] += 1
                disk_sec = ",".join([x.capitalize() for x in sec] + ([other_text] if other_text else []))
                row = dict(clip_id=cid, annotator_id=rater_ids[w], emotion=p, secondary=";".join(sec) or None,
                           other_text=other_text, arousal=a, valence=v, dominance=d, naturalness=nat)
                if quirks["nan_dn"] < nan_dn and j % 3 == 1:
                    row.update(dominance=np.nan, naturalness=np.nan)
                    quirks["nan_dn"] += 1
                dims.append((a, v, row["dominance"], row["naturalness"]))
                if np.isnan(row["dominance"]):  # the loader keeps A/V/D all or none
                    row.update(arousal=np.nan, valence=np.nan)
                truth.append(row)
                prim.append(p)
                line = (f"{rater_ids[w]}; {p.capitalize()}; {disk_sec}; A:{_f6(6 - a)}; V:{_f6(v)}; "
                        f"D:{_f6(row['dominance'])}; N:{_f6(row['naturalness'])};")
                block.append(line)
                if quirks["duplicate_rows"] < duplicate_rows and j % 4 == 3:
                    block.append(line)
                    quirks["duplicate_rows"] += 1
            cls = _plurality(prim)
            m = np.nanmean(np.array(dims, dtype=float), axis=0)
            lines.append(f"UTD-IMPROV-{stem}.avi; {_IMP_CODE[cls] if cls else 'X'}; A:{_f6(6 - m[0])}; "
                         f"V:{_f6(m[1])}; D:{_f6(m[2])} ; N:{_f6(m[3])};")
            lines += block + [""]
            written = not (quirks["missing_audio"] < missing_audio and j % 5 == 4)
            wdir = adir / f"session{s}" / f"S{sent:02d}{target}" / scen
            if written:
                _write_wav(wdir / f"{cid}.wav", _tone(rng, avd, float(rng.uniform(0.5, 1.0)), 1.6 if g == "F" else 1.0))
                if avi:
                    (wdir / f"{cid}.avi").write_bytes(b"")
            else:
                quirks["missing_audio"] += 1
            clips.append(dict(clip_id=cid, speaker=f"{g}{s:02d}", session=s, latent=_IMP_PRIMARY[k],
                              arousal=avd[0], valence=avd[1], dominance=avd[2], audio=written))
            n += 1
    _write_text(base / "Evaluation.txt", lines, crlf)
    clips_df = pd.DataFrame(clips).set_index("clip_id")
    ratings = pd.DataFrame(truth)
    ratings = ratings[ratings["clip_id"].isin(set(clips_df.index[clips_df["audio"]]))].reset_index(drop=True)
    return Fixture(root=base, clips=clips_df, ratings=ratings, quirks=quirks)
