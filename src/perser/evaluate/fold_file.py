"""Fixed folds read from a file: the fold lists Tavernor & Mower Provost stored for their experiments.

Tavernor & Mower Provost (2025), "More Similar than Dissimilar: Modeling Annotators for
Cross-Corpus Speech Emotion Recognition", evaluate on IEMOCAP, MSP-IMPROV and MuSE with
five folds that their code computed once and stored
(``src/MIA/data/LegacyASRUSplits/{iemocap,improv,muse}_folds.json`` in
``chailab-umich/ModelingIndividualAnnotators``; the same folds for every seed). The
format is one JSON object::

    {"fold_0": {"train_fnames": ["MSP-IMPROV-S16H-M01-R-MM01.wav", ...],
                "val_fnames":   [...],
                "test_fnames":  [...]},
     "fold_1": {...}, ...}

``train_fnames`` are the fold's training clips (perser enrolls listeners from them),
``test_fnames`` its test clips, ``val_fnames`` the validation speakers' clips the
authors set aside (the authors only use them to stop the fine-tuning that follows their
zero-shot test). A clip name is the clip's audio file name: a folder part and the
extension ``.wav`` are dropped to give perser's clip id (the file stem, as every perser
loader names clips). ``val_fnames`` may be missing (no validation clips).

:func:`read_fold_file` checks the format; :func:`file_folds` maps the names onto the
clips of an evaluation. The folds replace perser's seeded speaker/session folds
(``folds_file`` in :class:`perser.config.ExperimentConfig`). What a clip may be used for:

* a clip named in no list of a fold is not used in that fold (the authors' code keeps
  only the listed clips): a counted warning says how many;
* a name that is no clip of the evaluation corpus is an error naming it (a fold file of
  another corpus, or another release);
* a listed clip of the corpus that the run has no features or ratings for (extraction
  failed, ratings mapped away) is left out with a counted warning;
* a clip in two lists of one fold is an error.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from perser.corpus.splits import Fold
from perser.errors import ConfigError, SkipLog

#: the lists of one fold, in the authors' key names
LISTS = ("train_fnames", "val_fnames", "test_fnames")
REQUIRED = ("train_fnames", "test_fnames")

_EXT = re.compile(r"\.wav$", re.IGNORECASE)


def clip_id_of(name: str) -> str:
    """perser's clip id for a clip name of a fold file: the file name without its folder
    and its ``.wav`` extension (``Session1/Ses01F_impro01_F000.wav`` -> ``Ses01F_impro01_F000``)."""
    base = str(name).strip().replace("\\", "/").rsplit("/", 1)[-1]
    return _EXT.sub("", base)


def read_fold_file(path: str | Path) -> dict[str, dict[str, list[str]]]:
    """The folds of ``path``: fold name -> ``{"train_fnames", "val_fnames", "test_fnames"}``
    (lists of clip names; ``val_fnames`` empty when the file has none), in the file's order.

    Raises :class:`~perser.errors.ConfigError` naming the file and the fold for anything
    that is not of the format above."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"folds_file {path} does not exist")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"folds_file {path}: not a JSON file ({e})") from None
    if not isinstance(doc, dict) or not doc:
        raise ConfigError(f"folds_file {path}: expected a JSON object of folds "
                          "({\"fold_0\": {\"train_fnames\": [...], \"val_fnames\": [...], \"test_fnames\": [...]}, ...})")
    if len(doc) < 2:
        raise ConfigError(f"folds_file {path}: {len(doc)} fold; a cross-validation needs at least two")
    out: dict[str, dict[str, list[str]]] = {}
    for fold, lists in doc.items():
        if not isinstance(lists, dict):
            raise ConfigError(f"folds_file {path}: fold {fold!r} is not an object of clip lists")
        extra = sorted(set(lists) - set(LISTS))
        if extra:
            raise ConfigError(f"folds_file {path}: fold {fold!r} has unknown key(s) {extra}; the keys are {list(LISTS)}")
        missing = [k for k in REQUIRED if k not in lists]
        if missing:
            raise ConfigError(f"folds_file {path}: fold {fold!r} lacks {missing}")
        clean: dict[str, list[str]] = {}
        for key in LISTS:
            v = lists.get(key, [])
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise ConfigError(f"folds_file {path}: fold {fold!r}: {key} must be a list of clip names")
            clean[key] = v
        if not clean["test_fnames"]:
            raise ConfigError(f"folds_file {path}: fold {fold!r} has no test clips")
        out[str(fold)] = clean
    return out


def eval_id_map(clips: pd.DataFrame, eval_ids: dict[str, str] | None) -> dict[str, str]:
    """Corpus clip id -> the evaluation's clip id, for every clip of the evaluation corpus.

    ``eval_ids`` is :attr:`perser.evaluate.protocol.EvalData.eval_ids` (it also holds
    clips the run dropped); without it, the evaluation clips of ``clips``, under their
    own id and, in a cross-corpus run, under the id after the corpus prefix."""
    if eval_ids is not None:
        return dict(eval_ids)
    out: dict[str, str] = {}
    for c in clips.index[clips["origin"] == "eval"].astype(str):
        out[c] = c
        if "/" in c:
            out.setdefault(c.split("/", 1)[1], c)
    return out


def file_folds(path: str | Path, clips: pd.DataFrame, eval_ids: dict[str, str] | None = None) -> list[Fold]:
    """The folds of fold file ``path`` as :class:`~perser.corpus.splits.Fold` objects over
    the evaluation clips of ``clips`` (an :class:`~perser.evaluate.protocol.EvalData` clips
    table): ``train`` = ``train_fnames``, ``dev`` = ``val_fnames``, ``test`` = ``test_fnames``.

    Raises :class:`~perser.errors.ConfigError` for a name that is no clip of the evaluation
    corpus (naming the first ones and the count) and for a clip in two lists of one fold;
    warns, counted, about listed clips the run has no data for and about evaluation clips in
    no list of a fold."""
    folds = read_fold_file(path)
    ids = eval_id_map(clips, eval_ids)
    present = set(clips.index[clips["origin"] == "eval"].astype(str))
    unknown: list[str] = []
    for lists in folds.values():
        for key in LISTS:
            unknown.extend(n for n in lists[key] if clip_id_of(n) not in ids)
    if unknown:
        uniq = list(dict.fromkeys(unknown))
        raise ConfigError(f"folds_file {path}: {len(uniq)} clip name(s) are no clips of the evaluation corpus, "
                          f"e.g. {uniq[:5]} (clip ids are the file names without '.wav'; is it the fold file of "
                          "this corpus?)")
    log = SkipLog("folds_file")
    out: list[Fold] = []
    for fold, lists in folds.items():
        sets: dict[str, list[str]] = {}
        seen: dict[str, str] = {}
        for key in LISTS:
            mine: list[str] = []
            for n in lists[key]:
                cid = ids[clip_id_of(n)]
                if cid in seen:
                    raise ConfigError(f"folds_file {path}: fold {fold!r}: clip {n!r} is in {seen[cid]} and in {key}")
                seen[cid] = key
                if cid in present:
                    mine.append(cid)
                else:
                    log.add("listed clips the run has no features or ratings for, left out", f"{fold}: {n}")
            sets[key] = sorted(mine)
        n_out = len(present - set(seen))
        if n_out:
            log.add("evaluation clips in no list of a fold, not used in that fold", fold, n=n_out)
        idx = lambda v: pd.Index(v, dtype=object, name=clips.index.name)  # noqa: E731
        out.append(Fold(name=fold, train=idx(sets["train_fnames"]), test=idx(sets["test_fnames"]),
                        dev=idx(sets["val_fnames"])))
    log.emit(stacklevel=2)
    return out
