"""A format-faithful MuSE tree for tests: audio folders, the release's crowd-sourcing CSV
(ratings without rater ids) and the derived ``muse_annotators.csv`` (with them).

See ``perser.corpus.muse`` for what the loader reads. Invented values; the layout and
columns follow the release and the public parser that derives the per-annotator file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from perser.testing.corpora._sim import Fixture, _tone, _write_wav

SURVEY = "Emotion data from crowdsourcing (C is when annotators had access to all previous sentences).csv"
SURVEY_COLUMNS = ["Sentence_name", "Duration", "Gender", "Type", "Ques_Type", "Activation_Mean", "Activation_SD",
                  "Valence_Mean", "Valence_SD", "Activation_Annotation", "Valence_Annotation", "C_Activation_Mean",
                  "C_Activation_SD", "C_Valence_Mean", "C_Valence_SD", "C_Activation_Annotation",
                  "C_Valence_Annotation", "S_Activation", "S_Valence"]


def write_muse(
    root: str | Path,
    n_speakers: int = 6,
    n_clips_per_speaker: int = 8,
    n_annotators: int = 12,
    ratings_per_clip: int = 5,
    seed: int = 0,
    self_reports: bool = True,
    list_style: str = "python",
    annotators_file: bool = True,
    transcripts: bool = True,
    missing_audio: int = 0,
) -> Fixture:
    """Write a MuSE tree under ``root``; return the :class:`~perser.testing.corpora.Fixture`.

    Parameters
    ----------
    n_speakers, n_clips_per_speaker:
        Speakers ``01``… (half stressed, half not) and monologue sentences per speaker.
    n_annotators, ratings_per_clip:
        MTurk-style rater pool (``A`` + 13 characters) and raters per clip; ratings are
        integers 1–9 following each clip's latent arousal/valence plus a rater bias.
    self_reports:
        Add a ``self_report_<speaker>`` rating per clip (the loader marks it ``is_self``).
    list_style:
        ``"python"`` (``[5, 6]``, ``['A1', 'A2']``) or ``"semicolon"`` (``5;6``) lists.
    annotators_file:
        Write ``muse_annotators.csv`` (without it the loader must refuse, naming the file).
    transcripts:
        Write ``Combined/Utterance Transcripts/<clip>.txt`` for all but the last clip.
    missing_audio:
        Clips whose wav is not written.
    """
    rng = np.random.default_rng(seed)
    root = Path(root)
    raters = ["A" + "".join(rng.choice(list("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"), 13)) for _ in range(n_annotators)]
    bias = rng.normal(0, 0.8, size=(n_annotators, 2))
    clips, rows, ann_lines, survey = [], [], [], []
    n = n_speakers * n_clips_per_speaker
    for s in range(n_speakers):
        spk = f"{s + 1:02d}"
        stressed = s % 2 == 0
        for j in range(n_clips_per_speaker):
            cid = f"{spk}_DR-{100 + j}_{1000 + 7 * j:04d}_1_sentence_{j + 1}"
            avd = rng.uniform(0.1, 0.9, size=3)
            folder = (root / "Stressed" / "Audio" / "Stressed Question Monologue Audio" if stressed
                      else root / "NotStressed" / "Audio" / "Non Stressed Question Monologue Audio 1")
            idx = len(clips)
            written = idx >= missing_audio
            if written:
                _write_wav(folder / f"{cid}.wav", _tone(rng, avd, 0.4))
            if transcripts and idx < n - 1:
                t = root / "Combined" / "Utterance Transcripts" / f"{cid}.txt"
                t.parent.mkdir(parents=True, exist_ok=True)
                t.write_text(f"sentence {j + 1} spoken by speaker {spk}", encoding="utf-8")
            who = [raters[i] for i in rng.choice(n_annotators, size=ratings_per_clip, replace=False)]
            acts, vals = [], []
            for w in who:
                b = bias[raters.index(w)]
                acts.append(int(np.clip(np.rint(1 + 8 * avd[0] + b[0] + rng.normal(0, 0.7)), 1, 9)))
                vals.append(int(np.clip(np.rint(1 + 8 * avd[1] + b[1] + rng.normal(0, 0.7)), 1, 9)))
            survey.append([cid + ".wav", "4.1", "F" if s % 3 else "M", "S" if stressed else "NS", "Q1",
                           f"{np.mean(acts):.2f}", f"{np.std(acts):.2f}", f"{np.mean(vals):.2f}", f"{np.std(vals):.2f}",
                           ";".join(map(str, acts)), ";".join(map(str, vals)), "", "", "", "", "", "",
                           str(int(round(1 + 8 * avd[0]))), str(int(round(1 + 8 * avd[1])))])
            if self_reports:
                who = who + [f"self_report_{spk}"]
                acts = acts + [int(round(1 + 8 * avd[0]))]
                vals = vals + [int(round(1 + 8 * avd[1]))]
            for w, a, v in zip(who, acts, vals):
                rows.append({"clip_id": cid, "annotator_id": w, "arousal": float(a), "valence": float(v),
                             "is_self": w.startswith("self_report")})
            if list_style == "python":
                fmt = (str(acts), str(vals), str(who))
            else:
                fmt = (";".join(map(str, acts)), ";".join(map(str, vals)), ";".join(who))
            ann_lines.append((cid, *fmt))
            clips.append({"clip_id": cid, "speaker": spk, "arousal": avd[0], "valence": avd[1],
                          "stress": "stressed" if stressed else "not_stressed", "audio": written})
    survey_dir = root / "SurveyInformation"
    survey_dir.mkdir(parents=True, exist_ok=True)
    with open(survey_dir / SURVEY, "w", encoding="utf-8", newline="") as fh:  # the release splits lines on ','
        fh.write(",".join(SURVEY_COLUMNS) + "\n")
        for r in survey:
            fh.write(",".join(r) + "\n")
    if annotators_file:
        pd.DataFrame(ann_lines, columns=["FileName", "soft_act_labels", "soft_val_labels", "annotators"]).to_csv(
            root / "muse_annotators.csv", index=False)
    clips_df = pd.DataFrame(clips).set_index("clip_id")
    ratings = pd.DataFrame(rows)
    kept = set(clips_df.index[clips_df["audio"]])
    ratings = ratings[ratings["clip_id"].isin(kept)].reset_index(drop=True)
    return Fixture(root, clips_df, ratings, {"missing_audio": missing_audio, "self_reports": int(self_reports) * n})
