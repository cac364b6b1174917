"""Small, format-faithful copies of IEMOCAP, MSP-Podcast, MSP-IMPROV and CREMA-D.

Each ``write_*`` function writes a tiny tree in the corpus's real on-disk layout
(tabs, spacing, quoting, file names and the documented quirks) with short 16 kHz
mono PCM16 wav files, and returns a :class:`Fixture` holding the root and the
ratings a correct loader must produce (``ratings``, on the loader's scales, with
the injected quirks already resolved) so that tests can compare.

The simulated listeners are simple but personal: each clip has a latent emotion
(a class and arousal/valence/dominance in 0..1); each annotator reports the latent
class with a personal accuracy, otherwise a class from a personal preference,
and rates each dimension with a personal bias and noise. The audio's pitch and
loudness follow the clip's arousal and valence, so features carry some of the
emotion. Same seed, same bytes.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

SR = 16000

__all__ = ["Fixture", "assert_same_ratings", "load_quietly", "one_rating", "write_iemocap", "write_msp_podcast", "write_msp_improv", "write_crema_d"]


@dataclass
class Fixture:
    """A corpus tree written to disk.

    Attributes
    ----------
    root:
        The directory to pass to :func:`perser.load_corpus`.
    clips:
        One row per clip (index ``clip_id``): ``speaker``, the latent emotion and its
        dimensions, and whether its audio was written.
    ratings:
        The ratings a loader must return with its default options (quirks resolved).
    quirks:
        How many of each injected quirk the tree holds.
    """

    root: Path
    clips: pd.DataFrame
    ratings: pd.DataFrame
    quirks: dict = field(default_factory=dict)

    def __fspath__(self) -> str:
        return str(self.root)


# ---------------------------------------------------------------- simulation
#: latent (arousal, valence, dominance) in 0..1 per emotion family
_PROTO = {
    "neutral": (0.40, 0.50, 0.50),
    "happy": (0.70, 0.85, 0.60),
    "sad": (0.20, 0.20, 0.30),
    "angry": (0.85, 0.15, 0.80),
    "surprise": (0.80, 0.60, 0.50),
    "fear": (0.75, 0.20, 0.20),
    "disgust": (0.55, 0.15, 0.55),
    "contempt": (0.45, 0.25, 0.70),
    "frustration": (0.65, 0.25, 0.45),
    "excited": (0.85, 0.80, 0.65),
    "other": (0.50, 0.45, 0.50),
}


def _latent(rng: np.random.Generator, classes: Sequence[str], family: dict[str, str], weights=None):
    """Draw a latent class and its (arousal, valence, dominance) in 0..1."""
    k = int(rng.choice(len(classes), p=weights))
    proto = np.array(_PROTO[family.get(classes[k], classes[k])])
    avd = np.clip(proto + rng.normal(0, 0.08, 3), 0.02, 0.98)
    return k, avd


@dataclass
class _Annotator:
    accuracy: float
    preference: np.ndarray
    bias: np.ndarray
    noise: float


def _annotators(rng: np.random.Generator, n: int, n_classes: int) -> list[_Annotator]:
    out = []
    for _ in range(n):
        out.append(
            _Annotator(
                accuracy=float(rng.uniform(0.45, 0.9)),
                preference=rng.dirichlet(np.full(n_classes, 0.7)),
                bias=rng.normal(0, 0.08, 3),
                noise=float(rng.uniform(0.04, 0.12)),
            )
        )
    return out


def _rate_class(rng: np.random.Generator, a: _Annotator, k: int) -> int:
    return k if rng.random() < a.accuracy else int(rng.choice(len(a.preference), p=a.preference))


def _rate_dims(rng: np.random.Generator, a: _Annotator, avd: np.ndarray, lo: int, hi: int) -> np.ndarray:
    x = np.clip(avd + a.bias + rng.normal(0, a.noise, 3), 0, 1)
    return np.clip(np.rint(lo + x * (hi - lo)), lo, hi).astype(int)


def _zipf_weights(n: int, s: float = 0.8) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1) ** s
    return w / w.sum()


def _choose(rng: np.random.Generator, n_pool: int, k: int, weights=None) -> list[int]:
    k = min(k, n_pool)
    return sorted(int(i) for i in rng.choice(n_pool, size=k, replace=False, p=weights))


def _tone(rng: np.random.Generator, avd: np.ndarray, seconds: float, voice: float = 1.0) -> np.ndarray:
    """A voiced-ish tone whose pitch and loudness follow arousal and valence."""
    n = max(int(round(seconds * SR)), 160)
    t = np.arange(n) / SR
    f0 = voice * (110 + 140 * avd[0] + 40 * avd[1]) * (1 + 0.05 * np.sin(2 * np.pi * (2 + 3 * avd[0]) * t))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    sig = sum(np.sin(h * phase) / h for h in (1, 2, 3, 4))
    env = 0.5 * (1 - np.cos(2 * np.pi * np.minimum(t / max(seconds, 1e-3), 1)))  # rise and fall
    amp = 0.05 + 0.25 * avd[0]
    x = amp * env * sig / 2 + rng.normal(0, 0.01 + 0.01 * (1 - avd[1]), n)
    return np.clip(x, -0.99, 0.99).astype(np.float32)


def _write_wav(path: Path, x: np.ndarray) -> None:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, SR, subtype="PCM_16")


def _write_text(path: Path, lines: list[str], crlf: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nl = "\r\n" if crlf else "\n"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(nl.join(lines) + nl)


def _plurality(values: list, none=None):
    if not values:
        return none
    u, c = np.unique(np.asarray(values), return_counts=True)
    top = np.flatnonzero(c == c.max())
    return u[top[0]] if len(top) == 1 else none


# =================================================================== IEMOCAP
_IEMOCAP_CLASSES = (
    "neutral", "happiness", "sadness", "anger", "surprise", "fear", "disgust", "frustration", "excited", "other",
)
_IEMOCAP_FAMILY = {"happiness": "happy", "sadness": "sad", "anger": "angry"}
_IEMOCAP_CODE = {
    "neutral": "neu", "happiness": "hap", "sadness": "sad", "anger": "ang", "surprise": "sur", "fear": "fea",
    "disgust": "dis", "frustration": "fru", "excited": "exc", "other": "oth",
}
_IEMOCAP_W = np.array([0.25, 0.08, 0.12, 0.12, 0.03, 0.02, 0.02, 0.2, 0.14, 0.02])


def write_iemocap(
    root: str | Path,
    n_sessions: int = 2,
    n_dialogs: int = 2,
    n_clips_per_dialog: int = 4,
    n_annotators: int = 5,
    cat_raters_per_clip: int = 3,
    dim_raters_per_clip: int = 2,
    self_eval: float = 0.5,
    seed: int = 0,
    crlf: bool = False,
    missing_dom: int = 1,
    off_scale: int = 1,
    multi_label: int = 1,
    other_answers: int = 1,
    missing_audio: int = 0,
    extras: bool = True,
) -> Fixture:
    """Write an ``IEMOCAP_full_release`` tree under ``root``; return the :class:`Fixture`.

    Parameters
    ----------
    n_sessions, n_dialogs, n_clips_per_dialog:
        ``Session1..n``, dialogs per session (alternating ``impro``/``script``), and
        utterances per dialog (speakers alternate F/M).
    n_annotators:
        Size of the external evaluator pool ``E1..En`` (the same person across files).
    cat_raters_per_clip, dim_raters_per_clip:
        External ``C-`` and ``A-`` raters per utterance (drawn separately: the sets differ).
    self_eval:
        Share of utterances with a ``C-F1``/``C-M1`` self-evaluation (and, for half of
        them, an ``A-`` self line) by the speaking actor.
    crlf:
        Write CRLF line endings.
    missing_dom, off_scale:
        Number of ``A-`` lines written without ``dom`` / with ``act 7`` (the loader skips them).
    multi_label:
        Number of ``C-`` lines with two labels (``Neutral; Anger;``).
    other_answers:
        Number of ``C-`` lines answering ``Other`` with the text in the comment.
    missing_audio:
        Number of utterances whose wav is not written (the loader drops them).
    extras:
        Also write ``Categorical/``, ``Attribute/`` subfolders, a macOS ``._`` file and
        transcriptions, which a loader must not read as label files.
    """
    rng = np.random.default_rng(seed)
    base = Path(root) / "IEMOCAP_full_release"
    raters = _annotators(rng, n_annotators, len(_IEMOCAP_CLASSES))
    actors = {}
    quirks = dict.fromkeys(
        ["missing_dom", "off_scale", "multi_label", "other_answers", "missing_audio", "self_lines"], 0
    )
    clips, truth = [], []
    clip_no = 0
    for s in range(1, n_sessions + 1):
        sdir = base / f"Session{s}"
        ses = f"Ses{s:02d}"
        for g in "FM":
            actors[(s, g)] = _annotators(rng, 1, len(_IEMOCAP_CLASSES))[0]
        for dgi in range(n_dialogs):
            marker = "FM"[(dgi // 2) % 2]
            kind = ("impro", "script")[dgi % 2]
            dialog = f"{ses}{marker}_{kind}{dgi // 2 + 1:02d}" + ("_1" if kind == "script" else "")
            lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
            cat_files: dict[str, list[str]] = {}
            atr_files: dict[str, list[str]] = {}
            trans = []
            t = float(rng.uniform(1, 5))
            counts = {"F": 0, "M": 0}
            for u in range(n_clips_per_dialog):
                g = "FM"[u % 2]
                uid = f"{dialog}_{g}{counts[g]:03d}"
                if extras and s == 1 and dgi == 0 and u == n_clips_per_dialog - 1:
                    uid = f"{dialog}_{g}XX0"  # the release has a few such ids
                counts[g] += 1
                k, avd = _latent(rng, _IEMOCAP_CLASSES, _IEMOCAP_FAMILY, _IEMOCAP_W)
                dur = float(np.round(rng.uniform(0.5, 1.0), 4))
                start, end = round(t, 4), round(t + dur, 4)
                t = end + float(rng.uniform(0.2, 1.5))
                block_c, block_a = [], []
                primaries = []
                ext_dims = []
                for e in _choose(rng, n_annotators, cat_raters_per_clip):
                    c = _rate_class(rng, raters[e], k)
                    labels = [_IEMOCAP_CLASSES[c]]
                    comment = ""
                    if quirks["multi_label"] < multi_label and labels[0] != "anger":
                        labels = [labels[0], "anger"]
                        quirks["multi_label"] += 1
                    elif quirks["other_answers"] < other_answers and s == n_sessions:
                        labels, comment = ["other"], "bored, sarcastic"
                        quirks["other_answers"] += 1
                    primaries.append(labels[0])
                    disk = " ".join(f"{x.capitalize()};" for x in labels)
                    block_c.append(f"C-E{e + 1}:\t{disk}\t({comment})")
                    truth.append(
                        dict(clip_id=uid, annotator_id=f"E{e + 1}", emotion=labels[0], emotions=";".join(labels),
                             is_self=False, other_text=comment or None)
                    )
                    shown = "Neutral state" if labels[0] == "neutral" else labels[0].capitalize()
                    cat_files.setdefault(f"e{e + 1}", []).append(f"{uid} :{shown}; ()")
                for e in _choose(rng, n_annotators, dim_raters_per_clip):
                    a, v, d = _rate_dims(rng, raters[e], avd, 1, 5)
                    row = dict(clip_id=uid, annotator_id=f"E{e + 1}", arousal=float(a), valence=float(v),
                               dominance=float(d), is_self=False)
                    if quirks["missing_dom"] < missing_dom:  # the loader skips the line
                        block_a.append(f"A-E{e + 1}:\tval {v}; act {a};\t()")
                        quirks["missing_dom"] += 1
                    elif quirks["off_scale"] < off_scale:  # likewise
                        block_a.append(f"A-E{e + 1}:\tval {v}; act 7; dom  {d};\t()")
                        quirks["off_scale"] += 1
                    else:
                        block_a.append(f"A-E{e + 1}:\tval {v}; act {a}; dom  {d};\t()")
                        ext_dims.append((row["valence"], row["arousal"], row["dominance"]))
                        truth.append(row)
                    atr_files.setdefault(f"e{e + 1}", []).append(f"{uid} :act {a}; :val {v}; :dom {d};")
                if rng.random() < self_eval:
                    me = actors[(s, g)]
                    c = _rate_class(rng, me, k)
                    rid = f"{g}1"
                    block_c.append(f"C-{rid}:\t{_IEMOCAP_CLASSES[c].capitalize()};\t(curious)")
                    truth.append(dict(clip_id=uid, annotator_id=f"{ses}/{rid}", emotion=_IEMOCAP_CLASSES[c],
                                      emotions=_IEMOCAP_CLASSES[c], is_self=True,
                                      other_text="curious" if _IEMOCAP_CLASSES[c] == "other" else None))
                    quirks["self_lines"] += 1
                    if rng.random() < 0.5:
                        a, v, d = _rate_dims(rng, me, avd, 1, 5)
                        block_a.append(f"A-{rid}:\tval {v}; act {a}; dom  {d};\t()")
                        truth.append(dict(clip_id=uid, annotator_id=f"{ses}/{rid}", arousal=float(a),
                                          valence=float(v), dominance=float(d), is_self=True))
                        quirks["self_lines"] += 1
                code = _plurality(primaries, none="xxx")
                code = _IEMOCAP_CODE[code] if code != "xxx" else "xxx"
                # the release's [V, A, D]: means over the external raters' usable values
                vad = np.array([np.nanmean([x[i] for x in ext_dims]) if ext_dims and not np.isnan(
                    [x[i] for x in ext_dims]).all() else 1 + 4 * avd[(1, 0, 2)[i]] for i in range(3)])
                lines.append(
                    f"[{start:.4f} - {end:.4f}]\t{uid}\t{code}\t[{vad[0]:.4f}, {vad[1]:.4f}, {vad[2]:.4f}]"
                )
                lines += block_c + block_a + [""]
                trans.append(f"{uid} [{start:08.4f}-{end:08.4f}]: Excuse me.")
                written = quirks["missing_audio"] >= missing_audio or clip_no % 3 != 1
                if written:
                    _write_wav(sdir / "sentences" / "wav" / dialog / f"{uid}.wav",
                               _tone(rng, avd, end - start, 1.6 if g == "F" else 1.0))
                else:
                    quirks["missing_audio"] += 1
                clips.append(dict(clip_id=uid, speaker=f"{ses}{g}", session=ses, latent=_IEMOCAP_CLASSES[k],
                                  arousal=avd[0], valence=avd[1], dominance=avd[2], audio=written))
                clip_no += 1
            ev = sdir / "dialog" / "EmoEvaluation"
            _write_text(ev / f"{dialog}.txt", lines, crlf)
            if extras:
                for e, ls in cat_files.items():
                    _write_text(ev / "Categorical" / f"{dialog}_{e}_cat.txt", ls, crlf)
                for e, ls in atr_files.items():
                    _write_text(ev / "Attribute" / f"{dialog}_{e}_atr.txt", ls, crlf)
                _write_text(sdir / "dialog" / "transcriptions" / f"{dialog}.txt", trans, crlf)
                if dgi == 0:
                    (ev / f"._{dialog}.txt").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ")
    clips_df = pd.DataFrame(clips).set_index("clip_id")
    ratings = pd.DataFrame(truth)
    kept = set(clips_df.index[clips_df["audio"]])
    ratings = ratings[ratings["clip_id"].isin(kept)].reset_index(drop=True)
    return Fixture(root=base, clips=clips_df, ratings=ratings, quirks=quirks)


# =============================================================== MSP-Podcast
_POD_PRIMARY = ("angry", "sad", "happy", "surprise", "fear", "disgust", "contempt", "neutral", "other")
_POD_LETTER = dict(zip(_POD_PRIMARY, "ASHUFDCNO"))
_POD_SECONDARY = (
    "angry", "frustrated", "annoyed", "disappointed", "sad", "disgust", "depressed", "contempt", "confused",
    "concerned", "fear", "neutral", "surprise", "amused", "excited", "happy",
)
_POD_W = np.array([0.1, 0.12, 0.2, 0.05, 0.04, 0.04, 0.05, 0.35, 0.05])
_SPLITS = ("Train", "Development", "Test1", "Test2")


def _fmt_podcast_float(x: float) -> str:
    return f"{x:.1f}"


def write_msp_podcast(
    root: str | Path,
    form: str = "emodetail",
    n_clips: int = 40,
    n_podcasts: int = 8,
    n_speakers: int = 8,
    n_annotators: int = 12,
    ratings_per_clip: int = 5,
    seed: int = 0,
    label_dir: str = "Labels",
    consensus_name: str = "labels_consensus.csv",
    audio_dir: str = "Audios",
    dev_name: str = "Development",
    unknown_speaker: int = 2,
    duplicate_raters: int = 1,
    exact_duplicates: int = 1,
    nan_avd: int = 1,
    other_answers: int = 2,
    missing_audio: int = 0,
    crlf: bool = False,
) -> Fixture:
    """Write an MSP-Podcast tree under ``root``; return the :class:`Fixture`.

    Parameters
    ----------
    form:
        The detailed-labels form: ``"emodetail"`` (v1.7–v1.12 ``FileName,EmoDetail``),
        ``"v2"`` (v2.0, one column per field) or ``"json"`` (``labels_detailed.json``).
    n_clips, n_podcasts, n_speakers, n_annotators, ratings_per_clip:
        Size. Annotators are drawn with long-tailed (Zipf) weights.
    label_dir, consensus_name, audio_dir, dev_name:
        Release variants: ``Labels``/``labels``/``label``; ``labels_consensus.csv`` or
        ``labels_concensus.csv`` (or ``labels_consensus.json``); ``Audios`` or
        ``audio_16kHz``; ``Development`` or ``Validation``.
    unknown_speaker:
        Clips whose ``SpkrID`` and ``Gender`` are ``Unknown``.
    duplicate_raters:
        (clip, worker) pairs rated twice with different values (the loader keeps the first).
    exact_duplicates:
        Rating rows repeated verbatim (CSV forms only; JSON keys cannot repeat).
    nan_avd:
        Rating rows with NaN A/V/D (the loader keeps their emotion).
    other_answers:
        Ratings answering ``Other-<text>``; the first holds ``;`` in its text.
    missing_audio:
        Clips whose wav is not written (the loader drops them).
    """
    if form not in ("emodetail", "v2", "json"):
        raise ValueError(f"form must be 'emodetail', 'v2' or 'json', not {form!r}")
    rng = np.random.default_rng(seed)
    base = Path(root)
    raters = _annotators(rng, n_annotators, len(_POD_PRIMARY))
    weights = _zipf_weights(n_annotators)
    spk_gender = {i: "Female" if i % 2 == 0 else "Male" for i in range(n_speakers)}
    spk_ids = {i: str(100 + 17 * i) for i in range(n_speakers)}
    spk_split = {i: _SPLITS[i % len(_SPLITS)] for i in range(n_speakers)}
    quirks = dict.fromkeys(
        ["unknown_speaker", "duplicate_raters", "exact_duplicates", "nan_avd", "other_answers", "missing_audio"], 0
    )
    cons_rows, det_rows, truth, clips = [], [], [], []
    seg_no: dict[int, int] = {}
    for c in range(n_clips):
        pod = int(rng.integers(1, n_podcasts + 1))
        seg_no[pod] = seg_no.get(pod, 0) + int(rng.integers(1, 30))
        fname = f"MSP-PODCAST_{pod:04d}_{seg_no[pod]:04d}.wav"
        cid = fname[:-4]
        spk = int(rng.integers(0, n_speakers))
        k, avd = _latent(rng, _POD_PRIMARY, {}, _POD_W)
        unknown = quirks["unknown_speaker"] < unknown_speaker and c % 5 == 3
        if unknown:
            quirks["unknown_speaker"] += 1
        prim, dims = [], []
        for w in _choose(rng, n_annotators, ratings_per_clip, weights):
            a = raters[w]
            p = _POD_PRIMARY[_rate_class(rng, a, k)]
            A, V, D = (float(x) for x in _rate_dims(rng, a, avd, 1, 7))
            sec = [s for s in _POD_SECONDARY if rng.random() < 0.12]
            if p in _POD_SECONDARY and p not in sec and rng.random() < 0.5:
                sec.insert(0, p)
            disk_p, other_text = p.capitalize(), None
            disk_sec = [s.capitalize() for s in sec]
            if p == "other" or (quirks["other_answers"] < other_answers and rng.random() < 0.3):
                p = "other"
                text = "bored; a bit tired" if quirks["other_answers"] == 0 else "sarcastic (mocking)"
                disk_p, other_text = f"Other-{text}", text
                quirks["other_answers"] += 1
            worker = f"WORKER{10000 + 37 * w:08d}"
            row = dict(clip_id=cid, annotator_id=worker, emotion=p, secondary=";".join(sec) or None,
                       other_text=other_text, arousal=A, valence=V, dominance=D)
            disk = dict(FileName=fname, worker=worker, primary=disk_p, secondary=",".join(disk_sec),
                        A=A, V=V, D=D)
            if quirks["nan_avd"] < nan_avd and c % 4 == 1:
                disk.update(A=np.nan, V=np.nan, D=np.nan)
                row.update(arousal=np.nan, valence=np.nan, dominance=np.nan)
                quirks["nan_avd"] += 1
            else:
                dims.append((A, V, D))
            prim.append(p)
            truth.append(row)
            det_rows.append(disk)
            if quirks["duplicate_raters"] < duplicate_raters and c % 6 == 2:
                det_rows.append({**disk, "A": 7.0 if A < 4 else 1.0})
                quirks["duplicate_raters"] += 1
            elif form != "json" and quirks["exact_duplicates"] < exact_duplicates and c % 6 == 4:
                det_rows.append(dict(disk))
                quirks["exact_duplicates"] += 1
        cls = _plurality(prim, none=None)
        mean = np.mean(dims, axis=0) if dims else np.array([np.nan] * 3)
        split = spk_split[spk].replace("Development", dev_name)
        cons_rows.append(
            dict(FileName=fname, EmoClass=_POD_LETTER[cls] if cls else "X", EmoAct=round(mean[0], 4),
                 EmoVal=round(mean[1], 4), EmoDom=round(mean[2], 4),
                 SpkrID="Unknown" if unknown else spk_ids[spk], Gender="Unknown" if unknown else spk_gender[spk],
                 Split_Set=split)
        )
        missing = quirks["missing_audio"] < missing_audio and c % 7 == 5
        if missing:
            quirks["missing_audio"] += 1
        else:
            _write_wav(base / audio_dir / fname, _tone(rng, avd, float(rng.uniform(0.5, 1.0)),
                                                       1.6 if spk % 2 == 0 else 1.0))
        clips.append(dict(clip_id=cid, speaker="Unknown" if unknown else spk_ids[spk], podcast=f"{pod:04d}",
                          split=split, latent=_POD_PRIMARY[k], arousal=avd[0], valence=avd[1], dominance=avd[2],
                          audio=not missing))
    ldir = base / label_dir
    ldir.mkdir(parents=True, exist_ok=True)
    nl = "\r\n" if crlf else "\n"
    cons = pd.DataFrame(cons_rows)
    if consensus_name.endswith(".json"):
        obj = {r["FileName"]: {k: (None if isinstance(v, float) and np.isnan(v) else v)
                               for k, v in r.items() if k != "FileName"} for r in cons_rows}
        (ldir / consensus_name).write_text(json.dumps(obj, indent=1), encoding="utf-8")
    else:
        cons.to_csv(ldir / consensus_name, index=False, lineterminator=nl)
    if form == "emodetail":
        buf = io.StringIO()
        wr = csv.writer(buf, lineterminator=nl)
        wr.writerow(["FileName", "EmoDetail"])
        for r in det_rows:
            avd_txt = "; ".join(f"{k}:{'nan' if np.isnan(r[k]) else _fmt_podcast_float(r[k])}" for k in "AVD")
            wr.writerow([r["FileName"], f"{r['worker']}; {r['primary']}; {r['secondary']}; {avd_txt};"])
        (ldir / "labels_detailed.csv").write_text(buf.getvalue(), encoding="utf-8", newline="")
    elif form == "v2":
        df = pd.DataFrame(
            {
                "FileName": [r["FileName"] for r in det_rows],
                "WorkerID": [r["worker"] for r in det_rows],
                "EmoClass_Major": [r["primary"] for r in det_rows],
                "EmoClass_Second": [r["secondary"] for r in det_rows],
                "EmoAct": [r["A"] for r in det_rows],
                "EmoVal": [r["V"] for r in det_rows],
                "EmoDom": [r["D"] for r in det_rows],
            }
        )
        for col in ("EmoAct", "EmoVal", "EmoDom"):
            df[col] = df[col].astype("Int64")
        df.to_csv(ldir / "labels_detailed.csv", index=False, lineterminator=nl)
    else:
        obj: dict = {}
        for r in det_rows:
            entry = obj.setdefault(r["FileName"], {})
            if r["worker"] in entry:  # JSON keys collapse: the later row wins
                entry.pop(r["worker"])
            entry[r["worker"]] = {
                "EmoClass_Major": r["primary"],
                "EmoClass_Second": r["secondary"],
                "EmoAct": None if np.isnan(r["A"]) else r["A"],
                "EmoVal": None if np.isnan(r["V"]) else r["V"],
                "EmoDom": None if np.isnan(r["D"]) else r["D"],
            }
        (ldir / "labels_detailed.json").write_text(json.dumps(obj, indent=1), encoding="utf-8")
    clips_df = pd.DataFrame(clips).set_index("clip_id")
    ratings = pd.DataFrame(truth)
    if form == "json":  # a duplicated worker's later answer wins in JSON
        last = {(r["FileName"][:-4], r["worker"]): r for r in det_rows}
        ratings["arousal"] = [
            np.nan if np.isnan(last[(c, w)]["A"]) else last[(c, w)]["A"]
            for c, w in zip(ratings["clip_id"], ratings["annotator_id"])
        ]
    ratings = ratings[ratings["clip_id"].isin(set(clips_df.index[clips_df["audio"]]))].reset_index(drop=True)
    return Fixture(root=base, clips=clips_df, ratings=ratings, quirks=quirks)


# ================================================================ MSP-IMPROV
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


# =================================================================== CREMA-D
_CREMA_SENTENCES = ("IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI")
_CREMA_EMOS = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
_CREMA_LETTER = {"ANG": "A", "DIS": "D", "FEA": "F", "HAP": "H", "NEU": "N", "SAD": "S"}
_CREMA_CLASS = {"A": "anger", "D": "disgust", "F": "fear", "H": "happy", "N": "neutral", "S": "sad"}
_CREMA_FAMILY = {"anger": "angry", "happy": "happy", "neutral": "neutral", "sad": "sad", "fear": "fear",
                 "disgust": "disgust"}
_CREMA_LEVEL = {"LO": ("L", 20.0), "MD": ("M", 50.0), "HI": ("H", 80.0), "XX": ("X", 50.0)}
_CREMA_HEADER = ["", "localid", "pos", "ans", "ttr", "queryType", "numTries", "clipNum", "questNum", "subType",
                 "clipName", "sessionNums", "respEmo", "respLevel", "dispEmo", "dispVal", "dispLevel"]
_CREMA_EMO_HEADER = ["", "localid", "sessionNums", "queryType", "questNum", "pos", "ttr", "numTries", "clipNum",
                     "clipName"]


def _write_r_csv(path: Path, header: list[str], rows: list[list], quoting: str, crlf: bool = False) -> None:
    """Write like R's ``write.csv`` (``"r"``), with only the header's ``""`` quoted (``"header"``), or as pandas does."""
    nl = "\r\n" if crlf else "\n"

    def cell(v, quote_strings: bool) -> str:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return "NA"
        if isinstance(v, str):
            return '"' + v.replace('"', '""') + '"' if quote_strings else v
        if isinstance(v, float):
            return repr(v)
        return str(v)

    out = []
    if quoting == "r":
        out.append(",".join(f'"{h}"' for h in header))
        for r in rows:
            out.append(",".join(cell(v, True) for v in r))
    elif quoting == "header":
        out.append('"",' + ",".join(header[1:]))
        for r in rows:
            out.append(",".join(cell(v, False) for v in r))
    elif quoting == "pandas":
        df = pd.DataFrame([r[1:] for r in rows], columns=header[1:], index=[r[0] for r in rows])
        path.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(path, lineterminator=nl)
        return
    else:
        raise ValueError(f"quoting must be 'r', 'header' or 'pandas', not {quoting!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(nl.join(out) + nl)


def write_crema_d(
    root: str | Path,
    n_actors: int = 4,
    n_clips_per_actor: int = 6,
    n_annotators: int = 20,
    ratings_per_clip: int = 6,
    seed: int = 0,
    modalities: Sequence[int] = (1, 2, 3),
    practice: int = 2,
    non_numeric_level: int = 1,
    duplicate_responses: int = 1,
    slow_first_click: int = 2,
    missing_audio: int = 0,
    lfs_pointers: bool = False,
    quoting: str = "header",
    crlf: bool = False,
) -> Fixture:
    """Write a CREMA-D tree under ``root``; return the :class:`Fixture`.

    Writes ``finishedResponses.csv`` (leading unnamed index column, non-contiguous row
    numbers), ``finishedEmoResponses.csv`` (first-click times), ``SentenceFilenames.csv``,
    ``VideoDemographics.csv`` and ``AudioWAV/*.wav``. :attr:`Fixture.ratings` holds the
    voice-only (``queryType == 1``) ratings the loader returns by default.

    Parameters
    ----------
    n_actors, n_clips_per_actor:
        Actors ``1001…`` and clips per actor (sentence × emotion × level).
    n_annotators, ratings_per_clip:
        Rater pool (``SSI_…`` ids) and raters per clip and modality.
    modalities:
        Query types written: 1 voice, 2 face, 3 audio-visual.
    practice:
        Practice responses (``clipNum`` 7443/7444) written (the loader skips them).
    non_numeric_level:
        Voice responses whose ``respLevel`` is not a number (``NA``, ``high``).
    duplicate_responses:
        Voice responses repeated with a new row number (the loader keeps the first).
    slow_first_click:
        Voice responses whose first click in ``finishedEmoResponses.csv`` took > 10 s.
    missing_audio:
        Clips rated but without a wav (like ``1076_MTI_SAD_XX``).
    lfs_pointers:
        Write Git LFS pointer text files instead of wavs (the loader must refuse them).
    quoting:
        ``"header"`` (the verified header ``"",localid,…`` with unquoted rows), ``"r"``
        (R ``write.csv``: every string quoted) or ``"pandas"``.
    """
    rng = np.random.default_rng(seed)
    base = Path(root)
    classes = tuple(_CREMA_CLASS.values())
    raters = _annotators(rng, n_annotators, len(classes))
    rater_ids = [f"SSI_{1000000000 + 7919 * i * 1013}" for i in range(n_annotators)]
    rater_session = [100 + 3 * i for i in range(n_annotators)]
    quirks = dict.fromkeys(
        ["practice", "non_numeric_level", "duplicate_responses", "slow_first_click", "missing_audio", "other_modality"],
        0,
    )
    clips, names = [], []
    for ai in range(n_actors):
        actor = 1001 + ai
        for j in range(n_clips_per_actor):
            sent = _CREMA_SENTENCES[(ai + j) % len(_CREMA_SENTENCES)]
            emo = _CREMA_EMOS[j % len(_CREMA_EMOS)]
            level = ("LO", "MD", "HI")[j % 3] if sent == "IEO" else "XX"
            names.append(f"{actor}_{sent}_{emo}_{level}")
    sentence_rows = [[str(i + 1), i + 1, nm] for i, nm in enumerate(names)]
    _write_r_csv(base / "SentenceFilenames.csv", ["", "Stimulus_Number", "Filename"], sentence_rows, "r", crlf)
    demo = [[str(i + 1), 1001 + i, 20 + 3 * i, "Female" if i % 2 else "Male", "Caucasian", "Not Hispanic"]
            for i in range(n_actors)]
    _write_r_csv(base / "VideoDemographics.csv", ["", "ActorID", "Age", "Sex", "Race", "Ethnicity"], demo, "r", crlf)
    resp, emo_rows, truth = [], [], []
    quest = {(r, q): 0 for r in range(n_annotators) for q in (1, 2, 3)}
    pos = dict.fromkeys(range(n_annotators), 0)
    row_id = 1300
    latents = {}
    for ci, nm in enumerate(names):
        actor, sent, emo, level = nm.split("_")
        intended = _CREMA_LETTER[emo]
        k = classes.index(_CREMA_CLASS[intended]) if rng.random() < 0.85 else int(rng.integers(0, len(classes)))
        proto = np.array(_PROTO[_CREMA_FAMILY[classes[k]]])
        avd = np.clip(proto + rng.normal(0, 0.08, 3), 0.02, 0.98)
        latents[nm] = (k, avd)
        has_audio = not (quirks["missing_audio"] < missing_audio and ci % 5 == 2)
        if not has_audio:
            quirks["missing_audio"] += 1
        else:
            p = base / "AudioWAV" / f"{nm}.wav"
            if lfs_pointers:
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_text(
                    "version https://git-lfs.github.com/spec/v1\n"
                    f"oid sha256:{'%064x' % (ci + 1)}\nsize 72862\n", encoding="ascii"
                )
            else:
                _write_wav(p, _tone(rng, avd, float(rng.uniform(0.6, 1.0)), 1.6 if int(actor) % 2 == 0 else 1.0))
        clips.append(dict(clip_id=nm, speaker=actor, latent=classes[k], arousal=avd[0], audio=has_audio))
        dlet, dval = _CREMA_LEVEL[level]
        for q in modalities:
            for r in _choose(rng, n_annotators, ratings_per_clip):
                c = _rate_class(rng, raters[r], k)
                letter = "ADFHNS"[c]
                felt = np.clip(avd[0] + raters[r].bias[0] + rng.normal(0, 0.15), 0, 1)
                lvl = int(np.clip(np.rint(100 * felt), 1, 100))
                quest[(r, q)] += 1
                pos[r] += 1
                ttr = int(rng.integers(900, 9000))
                row_id += int(rng.integers(1, 400))
                level_cell: object = lvl
                rating = dict(clip_id=nm, annotator_id=rater_ids[r], emotion=_CREMA_CLASS[letter],
                              intensity=float(lvl))
                if q == 1 and quirks["non_numeric_level"] < non_numeric_level and ci % 3 == 1:
                    level_cell = ("NA", "high")[quirks["non_numeric_level"] % 2]
                    rating["intensity"] = np.nan
                    quirks["non_numeric_level"] += 1
                first_click = int(rng.integers(500, 6000))
                if q == 1 and quirks["slow_first_click"] < slow_first_click and ci % 4 == 3:
                    first_click = int(rng.integers(10001, 30000))
                    quirks["slow_first_click"] += 1
                    rating["slow"] = True
                row = [str(row_id), rater_ids[r], pos[r], f"{letter}_{level_cell}", ttr, q, int(rng.random() < 0.1),
                       ci + 1, quest[(r, q)], 4, nm, rater_session[r], letter, level_cell, intended, dval, dlet]
                if level_cell == "NA":
                    row[3] = f"{letter}_NA"
                    row[13] = None
                resp.append(row)
                emo_rows.append([str(row_id), rater_ids[r], rater_session[r], q, quest[(r, q)], pos[r],
                                 first_click, 0, ci + 1, nm])
                if q == 1:
                    truth.append(rating)
                    if quirks["duplicate_responses"] < duplicate_responses and ci % 4 == 2:
                        row_id += 1
                        resp.append([str(row_id)] + row[1:])
                        quirks["duplicate_responses"] += 1
                else:
                    quirks["other_modality"] += 1
    for i in range(practice):
        r = i % n_annotators
        row_id += 1
        pname = ("ANG_HI_practice", "SAD_MD_practice")[i % 2]
        resp.append([str(row_id), rater_ids[r], 0, "A_50", 3000, 1, 0, 7443 + i % 2, 0, 4, pname, rater_session[r],
                     "A", 50, "A", 80.0, "H"])
        quirks["practice"] += 1
    _write_r_csv(base / "finishedResponses.csv", _CREMA_HEADER, resp, quoting, crlf)
    _write_r_csv(base / "finishedEmoResponses.csv", _CREMA_EMO_HEADER, emo_rows, quoting, crlf)
    clips_df = pd.DataFrame(clips).set_index("clip_id")
    ratings = pd.DataFrame(truth)
    if "slow" not in ratings.columns:
        ratings["slow"] = False
    ratings["slow"] = ratings["slow"].fillna(False).astype(bool)
    ratings = ratings[ratings["clip_id"].isin(set(clips_df.index[clips_df["audio"]]))].reset_index(drop=True)
    return Fixture(root=base, clips=clips_df, ratings=ratings, quirks=quirks)


# ================================================================== checking
def _canon(v):
    if v is None:
        return None
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, float, np.integer, np.floating)):
        return None if np.isnan(float(v)) else round(float(v), 6)
    if v is pd.NA or v is pd.NaT:
        return None
    return str(v)


def load_quietly(path, **options):
    """:func:`perser.load_corpus` with its counted warnings (:class:`PerserWarning`) silenced."""
    import warnings

    from perser.corpus import load_corpus
    from perser.errors import PerserWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PerserWarning)
        return load_corpus(path, **options)


def one_rating(corpus, clip: str, annotator: str) -> pd.Series:
    """The single rating of ``clip`` by ``annotator``; ``AssertionError`` unless there is exactly one."""
    r = corpus.ratings[(corpus.ratings["clip_id"] == clip) & (corpus.ratings["annotator_id"] == annotator)]
    assert len(r) == 1
    return r.iloc[0]


def assert_same_ratings(actual: pd.DataFrame, expected: pd.DataFrame, columns: Sequence[str]) -> None:
    """Assert that two ratings tables hold the same rows in ``columns`` (order-free).

    Missing values (None/NaN/NA) compare equal; numbers compare to 6 decimals.
    Raises ``AssertionError`` listing a few rows found in only one table.
    """
    from collections import Counter

    cols = ["clip_id", "annotator_id", *columns]

    def rows(df: pd.DataFrame) -> Counter:
        d = df.reindex(columns=cols)
        return Counter(tuple(_canon(v) for v in r) for r in d.itertuples(index=False, name=None))

    a, e = rows(actual), rows(expected)
    if a != e:
        only_a = list((a - e).elements())[:5]
        only_e = list((e - a).elements())[:5]
        raise AssertionError(
            f"ratings differ in {cols}: {sum((a - e).values())} row(s) only loaded, e.g. {only_a}; "
            f"{sum((e - a).values())} row(s) only expected, e.g. {only_e}"
        )
