"""MSP-Podcast (UTD Lab-MSP): consensus and per-worker labels of releases v1.6–v2.0.

Layout read (``path`` is the release root)::

    Labels/labels_consensus.csv   one row per segment: split, speaker, gender
    Labels/labels_detailed.csv    one row per worker x segment (three forms, below)
    Labels/labels_detailed.json   the JSON twin (used when no detailed CSV exists)
    Audios/MSP-PODCAST_0001_0008.wav

Accepted variants: label folder ``Labels``/``labels``/``label``; ``labels_consensus``
or the older spelling ``labels_concensus`` (``.csv``, else ``.json``); audio folder
``Audios``, ``Audio`` or ``audio_16kHz``.

Detailed forms (chosen from the CSV header; ``detailed="json"`` forces the JSON):

* v1.7–v1.12 ``FileName,EmoDetail`` with ``EmoDetail`` =
  ``WORKER00000123; Neutral; Neutral,Concerned; A:4.0; V:4.0; D:4.0;`` (CSV-quoted
  when it holds commas). The worker is read from the front, A/V/D from the end; the
  primary and secondary answers from the middle, even when free text holds ``;``.
* v2.0 columns ``FileName, WorkerID, EmoClass_Major, EmoClass_Second, EmoAct,
  EmoVal, EmoDom`` (selected by name; v1.6 ``Workers`` is accepted for ``WorkerID``).
* JSON ``{file: {worker: {EmoClass_Major, EmoClass_Second, EmoAct, EmoVal, EmoDom}}}``
  (values coerced with ``float``; repeated workers cannot be seen there).

Label spaces
------------
``emotion`` (categorical)
    The primary answer, one of :data:`PRIMARY` (``Other-<text>`` is ``other``, its
    text in ``other_text``). Secondary answers are kept ``;``-joined in ``secondary``.
``emotions`` (multilabel, only with ``secondary=True``)
    Primary and secondary answers together, over :data:`SECONDARY` + ``other``.
``avd`` (dimensional)
    ``arousal`` (1 very calm … 7 very active), ``valence`` (1 very negative … 7 very
    positive), ``dominance`` (1 very weak … 7 very strong): integers 1–7 per worker.

Clips carry ``split`` (``Train`` → ``train``, ``Development``/``Validation`` → ``dev``,
``Test1`` → ``test1``, …), ``speaker`` (``SpkrID`` as a string), ``gender``,
``podcast`` and the released consensus (``release_emotion``, ``release_arousal``,
``release_valence``, ``release_dominance``). ``Unknown`` speakers get a pseudo speaker
per podcast (``unknown-0002``), so that speaker-independent splits keep a podcast's
unknown speakers together; this is counted in a warning.

Quirks handled (counted in warnings and ``meta["skipped"]``): a worker rating a
segment twice (``duplicates="first"`` by default: exact copies are dropped, differing
rows keep the first; ``"last"`` or ``"mean"`` on request), NaN, off-scale (outside
1–7) or fractional (``4.5``: not an answer on the integer scale) A/V/D values (the
rating's three dimensions are dropped, its emotion kept),
missing audio (``missing_audio``), ratings of segments that the
consensus file does not list (``unknown_clips``). A malformed detailed row raises
:class:`~perser.errors.CorpusError` naming the file and line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from perser.corpus import _release as rel
from perser.corpus.model import Corpus, LabelSpace, make_clips
from perser.errors import CorpusError, SkipLog, where

NAME = "msp-podcast"

PRIMARY = ("angry", "sad", "happy", "surprise", "fear", "disgust", "contempt", "neutral", "other")
SECONDARY = (
    "angry", "frustrated", "annoyed", "disappointed", "sad", "disgust", "depressed", "contempt",
    "confused", "concerned", "fear", "neutral", "surprise", "amused", "excited", "happy",
)
MULTILABEL = (*SECONDARY, "other")
DIMENSIONS = ("arousal", "valence", "dominance")
SCALE = (1, 7)
#: consensus ``EmoClass`` letters (``X``: no agreement)
CONSENSUS_CODES = {
    "A": "angry", "S": "sad", "H": "happy", "U": "surprise", "F": "fear", "D": "disgust", "C": "contempt",
    "N": "neutral", "O": "other", "X": None,
}
SPLITS = {"train": "train", "development": "dev", "validation": "dev", "test1": "test1", "test2": "test2",
          "test3": "test3", "test": "test"}

_PRIMARY_VOCAB = rel.Vocabulary(
    {**{c: c for c in PRIMARY}, "anger": "angry", "sadness": "sad", "happiness": "happy", "surprised": "surprise",
     "disgusted": "disgust"}
)
_SECONDARY_VOCAB = rel.Vocabulary({**{c: c for c in SECONDARY}, "surprised": "surprise", "disgusted": "disgust"})
_EMODETAIL = (
    r"^\s*(?P<worker>[^;]+?)\s*;\s?(?P<middle>.*?);\s*A:\s*(?P<A>[^;]*?)\s*;\s*V:\s*(?P<V>[^;]*?)\s*;"
    r"\s*D:\s*(?P<D>[^;]*?)\s*;?\s*$"
)
LABEL_DIRS = ("Labels", "labels", "label")
AUDIO_DIRS = ("Audios", "Audio", "audio_16kHz", "audios")
RATING_COLUMNS = ["clip_id", "annotator_id", "emotion", "emotions", "secondary", "other_text", *DIMENSIONS]


def _label_dir(path: Path) -> Path | None:
    for d in LABEL_DIRS:
        cand = path / d
        if cand.is_dir():
            return cand
    return None


def _consensus_file(ldir: Path) -> Path | None:
    for stem in ("labels_consensus", "labels_concensus"):
        for ext in (".csv", ".json"):
            f = ldir / f"{stem}{ext}"
            if f.is_file():
                return f
    return None


def detect(path: Path) -> bool:
    """True when ``path`` has a ``Labels``/``labels``/``label`` folder with a consensus file."""
    path = Path(path)
    ldir = _label_dir(path) if path.is_dir() else None
    return ldir is not None and _consensus_file(ldir) is not None


def _split_middle(middle: str) -> tuple[str, str]:
    """Split ``<primary>; <secondary>``, where the free text of ``Other-`` may hold ``;``.

    Only an ``Other`` primary can hold ``;``: the secondary part then starts at the first
    ``;``-field that begins with a known secondary class or ``Other-``, else at the last field.
    """
    parts = middle.split(";")
    if len(parts) <= 2 or not parts[0].strip().lower().startswith("other"):
        return parts[0], ";".join(parts[1:])
    for k in range(1, len(parts) - 1):
        head = parts[k].strip().split(",")[0].strip()
        if head.lower().startswith("other-") or (head and _SECONDARY_VOCAB.match(head)[0] not in (None, "other")):
            return ";".join(parts[:k]), ";".join(parts[k:])
    return ";".join(parts[:-1]), parts[-1]


def load(
    path: Path,
    detailed: str = "auto",
    secondary: bool = False,
    duplicates: str = "first",
    missing_audio: str = "drop",
    unknown_labels: str = "error",
    unknown_clips: str = "error",
    durations: bool = False,
) -> Corpus:
    """Load MSP-Podcast from its release root ``path``.

    Parameters
    ----------
    detailed:
        ``"auto"`` (``labels_detailed.csv`` if present, else the JSON), ``"csv"`` or ``"json"``.
    secondary:
        Add the ``emotions`` multilabel space (primary + secondary answers).
    duplicates:
        A worker who rated a segment twice with different answers: keep the ``"first"``
        row (default), the ``"last"``, or average the dimensions (``"mean"``; classes
        from the first). Exact copies are always dropped. Both are counted in a warning.
    missing_audio:
        ``"drop"`` segments without a wav (counted warning), ``"keep"`` them, or ``"error"``.
    unknown_labels:
        An answer outside the vocabularies raises (``"error"``) or its rating is skipped
        with a counted warning (``"skip"``).
    unknown_clips:
        Ratings of segments missing from the consensus file raise (``"error"``) or are
        skipped with a counted warning (``"skip"``).
    durations:
        Read each wav's header for ``duration`` (slow on the full corpus).
    """
    rel.check_choice("detailed", detailed, ("auto", "csv", "json"))
    rel.check_choice("duplicates", duplicates, rel.DUPLICATES)
    rel.check_choice("missing_audio", missing_audio, rel.MISSING_AUDIO)
    rel.check_choice("unknown_labels", unknown_labels, rel.UNKNOWN)
    rel.check_choice("unknown_clips", unknown_clips, rel.UNKNOWN)
    path = Path(path)
    ldir = _label_dir(path)
    if ldir is None:
        raise CorpusError(f"{path}: no label folder ({'/'.join(LABEL_DIRS)}) found")
    cfile = _consensus_file(ldir)
    if cfile is None:
        raise CorpusError(f"{ldir}: no labels_consensus.csv (or labels_concensus.csv / .json) found")
    with rel.progress(f"loading {NAME}", 5) as step:
        log = SkipLog(NAME)
        audio_dir = next((path / d for d in AUDIO_DIRS if (path / d).is_dir()), path / AUDIO_DIRS[0])
        clips = _read_consensus(cfile, audio_dir, log)
        step("worker labels")

        csv_file = ldir / "labels_detailed.csv"
        json_file = ldir / "labels_detailed.json"
        if detailed == "json" or (detailed == "auto" and not csv_file.is_file()):
            if not json_file.is_file():
                raise CorpusError(f"{ldir}: no labels_detailed.csv or labels_detailed.json found")
            ratings, at = _read_json(json_file, unknown_labels, log)
            form = "json"
        else:
            ratings, form, at = _read_detailed_csv(csv_file, unknown_labels, log)

        clip_set = set(clips.index)
        step("checks")
        known = pd.Series([c in clip_set for c in ratings["clip_id"].to_numpy(dtype=object)], index=ratings.index)
        if not known.all():
            bad = ratings.loc[~known].iloc[0]
            if unknown_clips == "error":
                raise CorpusError(
                    f"{at(int(bad['_at_i']))}: rating of segment {bad['clip_id']!r}, which {cfile.name} does not list; "
                    "pass unknown_clips='skip' to skip such ratings with a counted warning"
                )
            log.add("ratings of segments not in the consensus file skipped",
                    f"{bad['clip_id']} at {at(int(bad['_at_i']))}", int((~known).sum()))
            ratings = ratings.loc[known]
        nan_dims = ratings[list(DIMENSIONS)].isna().any(axis=1)
        if nan_dims.any():
            # a dimensional rating carries all of A/V/D or none; the class answer is kept
            log.add("ratings with NaN A/V/D values (dimensions dropped, emotion kept)",
                    at(int(ratings.loc[nan_dims, "_at_i"].iloc[0])), int(nan_dims.sum()))
            ratings.loc[nan_dims, list(DIMENSIONS)] = np.nan
        ratings = rel.resolve_duplicates(ratings.drop(columns="_at_i"), duplicates, log, list(DIMENSIONS),
                                         what="worker")
        step("audio files")
        clips, ratings = rel.check_audio(clips, ratings, missing_audio, log, f"{NAME} at {path}")
        if durations:
            clips["duration"] = rel.read_durations(clips)
    spaces = [LabelSpace("emotion", "categorical", classes=PRIMARY)]
    if secondary:
        spaces.append(LabelSpace("emotions", "multilabel", classes=MULTILABEL))
    spaces.append(LabelSpace("avd", "dimensional", dimensions=DIMENSIONS, scale=SCALE))
    columns = [c for c in RATING_COLUMNS if secondary or c != "emotions"]
    meta = {
        "format": NAME,
        "detailed_form": form,
        "duplicates": duplicates,
        "scales": {"avd": "integers 1-7 per worker; 1 = very calm / very negative / very weak"},
        "splits": "official Split_Set: train, dev (Development/Validation), test1, test2, test3",
        "license": "MSP-Podcast academic licence (UTD Lab-MSP)",
        "citation": "Lotfian & Busso (2019), Building naturalistic emotionally balanced speech corpus by "
        "retrieving emotional speech from existing podcast recordings",
    }
    with rel.progress(f"loading {NAME}", 1) as step:
        step("validating")
        return rel.finish(NAME, clips, ratings, spaces, log, path, meta, columns)


def _read_json_by_file(f: Path) -> dict:
    """The JSON object keyed by segment file name in ``f`` (consensus or detailed labels)."""
    try:
        obj = json.loads("\n".join(rel.read_lines(f)))
    except json.JSONDecodeError as e:
        raise CorpusError(f"{where(f, e.lineno)}: malformed JSON ({e.msg})") from None
    if not isinstance(obj, dict):
        raise CorpusError(f"{f}: expected an object keyed by file name")
    return obj


# ------------------------------------------------------------------ consensus
def _read_consensus(cfile: Path, audio_dir: Path, log: SkipLog) -> pd.DataFrame:
    if cfile.suffix == ".json":
        obj = _read_json_by_file(cfile)
        df = pd.DataFrame([{"FileName": k, **(v or {})} for k, v in obj.items()])
        df = df.astype({c: str for c in ("SpkrID", "Gender", "Split_Set", "EmoClass") if c in df.columns})
    else:
        rel.check_lfs(cfile)
        df = rel.read_csv(cfile, dtype=str, keep_default_na=False)
    need = ["FileName", "SpkrID", "Split_Set"]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise CorpusError(f"{cfile}: missing column(s) {missing} (has {list(df.columns)})")
    names = df["FileName"].astype(str).str.strip()
    bad = ~names.str.match(r"^MSP-PODCAST_[0-9_]+(\.wav)?$")
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise CorpusError(f"{where(cfile, i + 2)}: FileName {names.iloc[i]!r} is not an MSP-PODCAST_… wav name")
    fname = names.where(names.str.endswith(".wav"), names + ".wav")
    cid = fname.str[:-4]
    dup = cid.duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise CorpusError(f"{where(cfile, i + 2)}: segment {cid.iloc[i]!r} is listed twice")
    podcast = cid.str.split("_").str[1]
    spk = df["SpkrID"].astype(str).str.strip()
    unknown = spk.str.lower().isin(["unknown", "", "nan", "none"])
    if unknown.any():
        log.add("segments with an Unknown speaker given a per-podcast pseudo speaker 'unknown-<podcast>'",
                cid[unknown].iloc[0], int(unknown.sum()))
    speaker = spk.where(~unknown, "unknown-" + podcast)
    raw_split = df["Split_Set"].astype(str).str.strip()
    split = raw_split.str.lower().map(SPLITS)
    if split.isna().any():
        i = int(np.flatnonzero(split.isna().to_numpy())[0])
        raise CorpusError(
            f"{where(cfile, i + 2)}: Split_Set {raw_split.iloc[i]!r} is not one of Train, Development, "
            "Validation, Test1, Test2, Test3"
        )
    out = pd.DataFrame(
        {
            "clip_id": cid.to_numpy(),
            "path": [os.path.join(str(audio_dir), f) for f in fname],
            "speaker": speaker.to_numpy(),
            "split": split.to_numpy(),
            "gender": (df["Gender"].astype(object).map({g: rel.gender(g) for g in pd.unique(df["Gender"])})
                       if "Gender" in df.columns else None),
            "podcast": podcast.to_numpy(),
        }
    )
    if "EmoClass" in df.columns:
        out["release_emotion"] = [CONSENSUS_CODES.get(str(c).strip().upper()) for c in df["EmoClass"]]
    for col, dim in (("EmoAct", "arousal"), ("EmoVal", "valence"), ("EmoDom", "dominance")):
        if col in df.columns:
            out[f"release_{dim}"] = pd.to_numeric(df[col], errors="coerce").to_numpy()
    return make_clips(out)


# ------------------------------------------------------------------- detailed
def _answers(primary, second, at: str, unknown_labels: str, log: SkipLog, n: int = 1) -> dict | None:
    """Map one worker's primary and secondary answers; None when skipped (``n`` ratings)."""
    p = "" if primary is None or (isinstance(primary, float) and np.isnan(primary)) else str(primary).strip()
    if not p:
        raise CorpusError(f"{at}: empty primary emotion")
    cls, text = _PRIMARY_VOCAB.match(p)
    if cls is None:
        rel.unknown_label(unknown_labels, log, "primary emotion", p, at, PRIMARY, n)
        return None
    texts = [text] if text else []
    sec: list[str] = []
    s = "" if second is None or (isinstance(second, float) and np.isnan(second)) else str(second)
    for tok in s.split(","):
        tok = tok.strip()
        if not tok:
            continue
        c, t = _SECONDARY_VOCAB.match(tok)
        if c is None:
            rel.unknown_label(unknown_labels, log, "secondary emotion", tok, at, MULTILABEL, n)
            return None
        if c not in sec:
            sec.append(c)
        if t:
            texts.append(t)
    multi = [cls] + [c for c in sec if c != cls]
    return {
        "emotion": cls,
        "secondary": ";".join(sec) or None,
        "emotions": ";".join(multi),
        "other_text": "; ".join(texts) or None,
    }


_BLANK = {"", "nan", "na", "none", "null"}


def _assemble(fn, worker, primary, second, values: dict, at, unknown_labels: str, log: SkipLog) -> pd.DataFrame:
    """Vectorised assembly of worker ratings from aligned columns.

    ``values`` maps ``"A"``/``"V"``/``"D"`` to raw values (strings or numbers);
    ``at(i)`` names row ``i`` (file and line) for messages. Answers are parsed once per
    distinct (primary, secondary) pair, values once per column.
    """
    n = len(fn)
    out = pd.DataFrame(index=pd.RangeIndex(n))
    out["_at_i"] = np.arange(n)
    fn_s = pd.Series(fn, dtype=object).astype(str).str.strip()
    out["clip_id"] = fn_s.str.replace(r"\.wav$", "", regex=True).to_numpy(dtype=object)
    w = pd.Series(worker, dtype=object)
    wtxt = w.astype(str).str.strip()
    empty = (w.isna() | (wtxt == "")).to_numpy()
    if empty.any():
        raise CorpusError(f"{at(int(np.flatnonzero(empty)[0]))}: empty worker id")
    out["annotator_id"] = wtxt.to_numpy(dtype=object)
    p = pd.Series(primary, dtype=object).where(lambda x: x.notna(), "").astype(str)
    s2 = pd.Series(second, dtype=object).where(lambda x: x.notna(), "").astype(str)
    codes, uniq = pd.factorize(p + "\x1f" + s2)
    counts = np.bincount(codes, minlength=len(uniq))
    first = np.full(len(uniq), -1, dtype=np.int64)
    first[codes[::-1]] = np.arange(n)[::-1]
    table = []
    for j, key in enumerate(uniq):
        pj, sj = key.split("\x1f", 1)
        table.append(_answers(pj, sj, at(int(first[j])), unknown_labels, log, int(counts[j])))
    keep = np.array([t is not None for t in table], dtype=bool)
    for col in ("emotion", "secondary", "emotions", "other_text"):
        arr = np.array([None if t is None else t[col] for t in table], dtype=object)
        out[col] = arr[codes] if n else np.array([], dtype=object)
    for key, dim in (("A", "arousal"), ("V", "valence"), ("D", "dominance")):
        raw = pd.Series(values[key], dtype=object)
        txt = raw.astype(str).str.strip()
        num = pd.to_numeric(txt, errors="coerce").astype(float)
        blank = (raw.isna() | txt.str.lower().isin(_BLANK)).to_numpy()
        bad = num.isna().to_numpy() & ~blank
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise CorpusError(f"{at(i)}: {key} value {raw.iloc[i]!r} is not a number")
        v = num.to_numpy()
        # workers answer on an integer 1-7 scale (written 4.0): off it, or a fraction, is no answer
        for what, wrong in (("off the 1-7 scale", lambda x: (x < SCALE[0]) | (x > SCALE[1])),
                            ("that are not whole numbers on the 1-7 scale", lambda x: x != np.round(x))):
            bad = ~np.isnan(v) & wrong(v)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                log.add(f"{key} values {what} (treated as NaN)", f"{raw.iloc[i]} at {at(i)}", int(bad.sum()))
                v = np.where(bad, np.nan, v)
        out[dim] = v
    return out.loc[keep[codes] if n else slice(None)].reset_index(drop=True)


def _read_detailed_csv(f: Path, unknown_labels: str, log: SkipLog):
    """Ratings, the form's name and ``at(i)`` naming row ``i``'s file and line."""
    rel.check_lfs(f)
    df = rel.read_csv(f, dtype=str, keep_default_na=False)
    cols = set(df.columns)

    def at(i: int) -> str:
        return where(f, i + 2)

    if "EmoDetail" in cols and "FileName" in cols:
        form = "emodetail"
        detail = df["EmoDetail"]
        try:  # Arrow-backed strings extract in C++ (RE2)
            ext = detail.str.extract(_EMODETAIL)
        except Exception:  # noqa: BLE001 - fall back to Python's re
            ext = detail.astype(object).str.extract(_EMODETAIL)
        bad = ext["worker"].isna().to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise CorpusError(
                f"{at(i)}: cannot parse EmoDetail {df['EmoDetail'].iloc[i]!r}; expected "
                "'WORKER…; <primary>; <secondary>; A:x; V:x; D:x;'"
            )
        mcodes, muniq = pd.factorize(ext["middle"])
        split = [_split_middle(m) for m in muniq]
        prim = np.array([x[0] for x in split], dtype=object)[mcodes]
        sec = np.array([x[1] for x in split], dtype=object)[mcodes]
        ratings = _assemble(df["FileName"].to_numpy(dtype=object), ext["worker"].to_numpy(dtype=object), prim, sec,
                            {k: ext[k].to_numpy(dtype=object) for k in "AVD"}, at, unknown_labels, log)
    else:
        worker_col = "WorkerID" if "WorkerID" in cols else "Workers" if "Workers" in cols else None
        need = ["FileName", "EmoClass_Major", "EmoAct", "EmoVal", "EmoDom"]
        missing = [c for c in need if c not in cols] + ([] if worker_col else ["WorkerID"])
        if missing:
            raise CorpusError(
                f"{f}: unrecognised detailed-labels header {list(df.columns)}; expected FileName,EmoDetail "
                f"(v1.7-v1.12) or FileName,WorkerID,EmoClass_Major,EmoClass_Second,EmoAct,EmoVal,EmoDom "
                f"(v2.0); missing {missing}"
            )
        form = "v2" if worker_col == "WorkerID" else "v1.6"
        col = lambda c: df[c].to_numpy(dtype=object)  # noqa: E731
        second = col("EmoClass_Second") if "EmoClass_Second" in cols else np.full(len(df), "", dtype=object)
        ratings = _assemble(col("FileName"), col(worker_col), col("EmoClass_Major"), second,
                            {"A": col("EmoAct"), "V": col("EmoVal"), "D": col("EmoDom")}, at, unknown_labels, log)
    return ratings, form, at


def _read_json(f: Path, unknown_labels: str, log: SkipLog):
    """Ratings and ``at(i)`` naming row ``i`` (file, segment and worker)."""
    obj = _read_json_by_file(f)
    cols: dict[str, list] = {k: [] for k in ("fn", "w", "p", "s", "A", "V", "D")}
    names: list[str] = []
    for fn, workers in obj.items():
        if isinstance(workers, dict) and isinstance(workers.get("Workers"), list):  # MSP-Face style
            items = [(str(w.get("Name", "")), w) for w in workers["Workers"]]
        elif isinstance(workers, dict):
            items = list(workers.items())
        else:
            raise CorpusError(f"{f}: entry {fn!r} is not an object of workers")
        for w, r in items:
            if not isinstance(r, dict):
                raise CorpusError(
                    f"{f} [{fn!r}][{w!r}]: expected an object with EmoClass_Major, EmoAct, EmoVal, EmoDom"
                )
            names.append(f"{f} [{fn!r}][{w!r}]")
            for k, v in (("fn", fn), ("w", w), ("p", r.get("EmoClass_Major")), ("s", r.get("EmoClass_Second")),
                         ("A", r.get("EmoAct")), ("V", r.get("EmoVal")), ("D", r.get("EmoDom"))):
                cols[k].append(v)
    ratings = _assemble(cols["fn"], cols["w"], cols["p"], cols["s"], {k: cols[k] for k in "AVD"},
                        names.__getitem__, unknown_labels, log)
    return ratings, names.__getitem__
