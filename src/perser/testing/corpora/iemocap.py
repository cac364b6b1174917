"""A small, format-faithful copy of IEMOCAP (see :mod:`perser.testing.corpora`)."""

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
