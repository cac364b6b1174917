"""A small, format-faithful copy of MSP-Podcast (see :mod:`perser.testing.corpora`)."""

from __future__ import annotations

import csv
import io
import json
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
    _write_wav,
    _zipf_weights,
)

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
