"""The evaluation protocol: speaker-independent folds × annotator split × seeds × K.

For every seed the listeners are split into *seen* (their ratings train the methods)
and *unseen* (new listeners, known only through enrollment), and the clips into
speaker-independent folds (or the fixed folds of a fold file, ``folds_file``: the same for
every seed, see :mod:`perser.evaluate.fold_file`). For every fold:

* the methods are fitted on the seen listeners' ratings of the training clips (in a
  cross-corpus run: on every rating of the training corpus);
* **unseen listeners**: each new listener is enrolled with K of their rated clips,
  drawn from the training clips (``enroll_from="train"``, the default, so that no test
  speaker is heard during enrollment either) or from the test fold
  (``enroll_from="test"``), and tested on their ratings of the test fold's clips;
* **seen listeners** (single-corpus runs): each seen listener is enrolled with K of
  their training-clip ratings (the method is told who they are) and tested on their
  ratings of the test fold's clips.

Early stopping: the methods hold out a share of their training clips, unless the split
names validation clips (``Split.valid_clips``): the training corpus's clips of
``valid_splits`` in a cross-corpus run (e.g. MSP-Podcast's Development partition), or a
fold file's ``val_fnames`` in a single-corpus run; the seen listeners' ratings of those
clips stop the fits. In a cross-corpus run a fold file's ``val_fnames`` clips of the
evaluation corpus are set aside: neither enrolled nor tested.

Every listener of a scenario is accounted for in every (seed, fold): either
evaluated, or counted in ``Split.excluded`` with the reason (no ratings of this
fold's test clips, too few test or enrollment ratings, not drawn under
``max_listeners``), so evaluated + excluded is the scenario's number of listeners.

The K enrollment sets of a listener are nested (the first K of one random order of
their pool, kept whole in ``Assignment.pool`` for the enrollment strategies of
:mod:`perser.enroll.protocol`), and a listener's test set does not depend on K, so K-curves compare like
with like. Every method sees exactly the same splits, enrollment sets and test sets.
:func:`check_plan` asserts that test speakers never occur in training, and that no
enrollment clip is in the same listener's test set.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from perser.corpus.model import LabelSpace
from perser.corpus.splits import iter_folds, speaker_folds
from perser.errors import ConfigError, PerserError

SCENARIOS = ("unseen", "seen")

#: exclusion reasons (besides too few enrollment or test ratings)
NO_FOLD_RATINGS = "no ratings of this fold's test clips"
NO_EVAL_RATINGS = "no ratings in the evaluation corpus"


def cap_reason(n: int) -> str:
    return f"not drawn among the max_listeners={n} listeners"


@dataclass
class EvalData:
    """Everything the protocol needs, in one target label space.

    ``clips`` is indexed by clip id with columns ``speaker`` and ``origin``
    (``"train"`` or ``"eval"``; one corpus gives ``"eval"`` only; ``"valid"``: clips of
    the training corpus kept for early stopping, see ``valid_splits``). ``ratings`` has
    ``clip_id``, ``annotator_id`` and the target space's columns. ``X`` is aligned to
    ``clip_ids``. ``annotators`` (optional) is per-listener metadata indexed by id
    (e.g. the demo's ``style`` and ``new`` columns). ``eval_ids`` (optional) maps every
    clip id of the evaluation corpus, as its loader names it, to the clip id here (the
    same, or with the corpus prefix of a cross-corpus run), including clips the run
    dropped; fixed fold files name clips that way (:mod:`perser.evaluate.fold_file`).
    """

    space: LabelSpace
    clips: pd.DataFrame
    ratings: pd.DataFrame
    X: np.ndarray
    clip_ids: np.ndarray
    annotators: pd.DataFrame | None = None
    cross_corpus: bool = False
    notes: list[str] = field(default_factory=list)
    eval_ids: dict[str, str] | None = None

    def __post_init__(self) -> None:
        self.clip_ids = np.asarray(self.clip_ids, dtype=object)
        self.X = np.asarray(self.X, dtype=np.float32)
        if len(self.X) != len(self.clip_ids):
            raise PerserError(f"EvalData: {len(self.X)} feature rows for {len(self.clip_ids)} clip ids")
        self._pos = pd.Series(np.arange(len(self.clip_ids)), index=pd.Index(self.clip_ids))
        missing = ~self.ratings["clip_id"].isin(self._pos.index)
        if missing.any():
            raise PerserError(f"EvalData: rated clip {self.ratings['clip_id'][missing].iloc[0]!r} has no features")
        self.y_all = self.space.encode(self.ratings)

    def rows(self, clip_ids) -> np.ndarray:
        """Feature rows of ``clip_ids`` (a :class:`KeyError` names a clip without features).

        A dict lookup: called once per listener and enrollment, where a pandas ``.loc``
        with a list costs milliseconds."""
        pos = self.__dict__.get("_pos_dict")
        if pos is None:
            pos = self._pos_dict = dict(zip(self.clip_ids.tolist(), range(len(self.clip_ids))))
        try:
            return np.fromiter((pos[c] for c in clip_ids), dtype=np.int64)
        except KeyError as e:
            raise KeyError(f"clip {e.args[0]!r} has no features") from None


@dataclass
class Assignment:
    """One listener's enrollment order and test clips in one (seed, fold, scenario)."""

    annotator: str
    enroll_order: list[str]   # clip ids; the first K form the K-shot enrollment set
    test: list[str]           # clip ids, the same for every K
    ks: list[int]             # the K values this listener is eligible for
    pool: list[str] = field(default_factory=list)  # every clip enrollment may use, in the same random order


@dataclass
class Split:
    """One (seed, fold): training data and every listener's enrollment/test sets."""

    seed: int
    fold: str
    train_clips: list[str]
    test_clips: list[str]
    seen: list[str]
    unseen: list[str]
    fit_key: tuple
    assignments: dict[str, list[Assignment]]               # scenario -> listeners
    excluded: dict[str, dict[str, int]]                    # scenario -> reason -> count
    enroll_from: str = "train"
    #: clips whose seen listeners' ratings stop the fits early (empty: the methods hold out
    #: their own share of the training clips)
    valid_clips: list[str] = field(default_factory=list)
    #: the evaluation corpus's validation clips of the fold (a fold file's ``val_fnames``):
    #: never enrolled or tested; they stop the fine-tuning of methods that adapt
    eval_valid_clips: list[str] = field(default_factory=list)


# ------------------------------------------------------------------- helpers
def stable_int(text: str) -> int:
    """A platform-independent integer of a string (for seeding per listener)."""
    return zlib.crc32(text.encode("utf-8"))


def split_annotators(
    annotators: list[str], meta: pd.DataFrame | None, seed: int,
    unseen_column: str | None, unseen_fraction: float,
) -> tuple[list[str], list[str]]:
    """``(seen, unseen)`` listeners: from a boolean metadata column, or a seeded random fraction."""
    annotators = sorted(annotators)
    if unseen_column:
        if meta is None or unseen_column not in meta.columns:
            raise ConfigError(f"unseen_column {unseen_column!r}: the corpus has no such annotator column "
                              f"(annotators.csv columns: {[] if meta is None else list(meta.columns)})")
        flag = meta[unseen_column].astype(str).str.lower().isin(["true", "1", "yes"])
        new = set(meta.index[flag.to_numpy()].astype(str))
        unseen = [a for a in annotators if a in new]
    else:
        if not 0 <= unseen_fraction < 1:
            raise ConfigError(f"unseen_fraction must be in [0, 1), got {unseen_fraction}")
        rng = np.random.default_rng([seed, 7])
        n = 0 if unseen_fraction == 0 else max(1, int(round(unseen_fraction * len(annotators))))
        unseen = sorted(np.asarray(annotators, dtype=object)[rng.permutation(len(annotators))[:n]].tolist())
    u = set(unseen)
    return [a for a in annotators if a not in u], unseen


# ---------------------------------------------------------------------- plan
@dataclass
class PlanSettings:
    """The protocol's knobs (a subset of :class:`perser.config.ExperimentConfig`)."""

    k: list[int]
    seeds: list[int]
    n_folds: int = 5
    fold_by: str = "auto"
    folds: list[str] | None = None
    scenarios: list[str] = field(default_factory=lambda: list(SCENARIOS))
    seen_k: list[int] | None = None
    unseen_column: str | None = None
    unseen_fraction: float = 0.25
    enroll_from: str = "train"
    min_test: int = 5
    common_listeners: bool = True
    min_train_ratings: int = 1
    max_listeners: int | None = None
    folds_file: str | None = None
    min_fold_train_ratings: int = 0


def _assign(
    ratings_by_ann: dict[str, pd.Series], annotators: list[str], pool_clips: set, test_clips: set,
    ks: list[int], settings: PlanSettings, seed: int, fold: int, scenario: str, same_pool: bool,
    fold_train: set | None = None,
) -> tuple[list[Assignment], dict[str, int]]:
    out: list[Assignment] = []
    excluded: dict[str, int] = {}
    kmax = max(ks)
    def drop(reason: str) -> None:
        excluded[reason] = excluded.get(reason, 0) + 1

    for a in annotators:
        rated = ratings_by_ann.get(a)
        if rated is None:
            drop(NO_EVAL_RATINGS)
            continue
        rated_clips = rated.tolist()
        pool = sorted(c for c in rated_clips if c in pool_clips)
        rng = np.random.default_rng([seed, stable_int(str(fold)), stable_int(scenario), stable_int(a)])
        order = [pool[i] for i in rng.permutation(len(pool))]
        if same_pool:  # enrollment and test drawn from the same fold: hold out the largest K
            enroll_order = order[:kmax]
            test = sorted(c for c in rated_clips if c in test_clips and c not in set(enroll_order))
        else:
            enroll_order = order
            test = sorted(c for c in rated_clips if c in test_clips)
        if not any(c in test_clips for c in rated_clips):
            drop(NO_FOLD_RATINGS)  # rated nothing in this test fold (they are tested in other folds)
            continue
        if len(test) < max(1, settings.min_test):
            drop("fewer test ratings than min_test")
            continue
        if settings.min_fold_train_ratings and fold_train is not None and \
                sum(c in fold_train for c in rated_clips) < settings.min_fold_train_ratings:
            drop(f"fewer than {settings.min_fold_train_ratings} ratings of the fold's training clips "
                 "(min_fold_train_ratings)")
            continue
        ok = [k for k in ks if len(enroll_order) >= k]
        if settings.common_listeners and len(ok) < len(ks):
            ok = []
        if not ok:
            drop(f"fewer than {kmax if settings.common_listeners else min(ks)} enrollment ratings")
            continue
        out.append(Assignment(a, enroll_order[: max(ok)], test, ok, pool=list(enroll_order)))
    return out, excluded


def make_plan(data: EvalData, settings: PlanSettings) -> list[Split]:
    """All (seed, fold) splits with every listener's enrollment and test sets."""
    bad = [s for s in settings.scenarios if s not in SCENARIOS]
    if bad:
        raise ConfigError(f"unknown scenario(s) {bad}; choose from {SCENARIOS}")
    if settings.enroll_from not in ("train", "test"):
        raise ConfigError(f"enroll_from must be 'train' or 'test', got {settings.enroll_from!r}")
    if not settings.k or min(settings.k) < 1:
        raise ConfigError(f"k must list positive enrollment sizes, got {settings.k}")
    scenarios = list(settings.scenarios)
    if data.cross_corpus and "seen" in scenarios:
        scenarios.remove("seen")
        data.notes.append("cross-corpus run: the 'seen listeners' scenario needs listeners of the evaluation "
                          "corpus in training, so only 'unseen listeners' is evaluated")
    eval_clips = data.clips[data.clips["origin"] == "eval"]
    train_origin = data.clips.index[data.clips["origin"] == "train"].tolist()
    valid_origin = sorted(data.clips.index[data.clips["origin"] == "valid"].tolist())
    fixed = None
    if settings.folds_file is not None:
        from perser.evaluate.fold_file import file_folds

        fixed = file_folds(settings.folds_file, data.clips, data.eval_ids)
        data.notes.append(f"fixed folds from {settings.folds_file} ({len(fixed)} folds, the same for every seed)")
    r = data.ratings
    eval_r = r[r["clip_id"].isin(set(eval_clips.index))]
    by_ann = {a: g["clip_id"] for a, g in eval_r.groupby("annotator_id", sort=True)}
    plan: list[Split] = []
    for seed in settings.seeds:
        if fixed is not None:
            fold_list = list(fixed)
        else:
            folds = speaker_folds(eval_clips, n_folds=settings.n_folds, seed=seed, by=settings.fold_by)
            fold_list = list(iter_folds(folds))
        if settings.folds is not None:
            names = [f.name for f in fold_list]
            missing = sorted(set(map(str, settings.folds)) - set(names))
            if missing:
                raise ConfigError(f"folds {missing} do not exist (folds are {names})")
            fold_list = [f for f in fold_list if f.name in set(map(str, settings.folds))]
        if data.cross_corpus:
            seen_all: list[str] = sorted(r.loc[r["clip_id"].isin(set(train_origin)), "annotator_id"].unique().tolist())
            unseen_all = sorted(eval_r["annotator_id"].unique().tolist())
        else:
            seen_all, unseen_all = split_annotators(
                sorted(eval_r["annotator_id"].unique().tolist()), data.annotators, seed,
                settings.unseen_column, settings.unseen_fraction)
        n_capped = 0
        if settings.max_listeners is not None:
            rng = np.random.default_rng([seed, 11])
            if len(unseen_all) > settings.max_listeners:
                n_capped = len(unseen_all) - settings.max_listeners
                unseen_all = sorted(np.asarray(unseen_all, dtype=object)[
                    rng.permutation(len(unseen_all))[: settings.max_listeners]].tolist())
        for fd in fold_list:
            fold = fd.name
            test_clips = sorted(fd.test.tolist())
            if data.cross_corpus:
                train_clips = sorted(train_origin)
                valid_clips = valid_origin  # the evaluation corpus's fd.dev clips are set aside
            else:
                train_clips = sorted(fd.train.tolist())
                valid_clips = sorted(fd.dev.tolist())
            enroll_pool = set(fd.train)
            tr = r[r["clip_id"].isin(set(train_clips)) & r["annotator_id"].isin(set(seen_all))]
            counts = tr["annotator_id"].value_counts()
            seen = sorted(counts.index[counts >= settings.min_train_ratings].tolist())
            excluded: dict[str, dict[str, int]] = {}
            n_few = int((counts < settings.min_train_ratings).sum())
            if n_few:
                excluded["train"] = {f"seen listeners with fewer than {settings.min_train_ratings} training ratings": n_few}
            assignments: dict[str, list[Assignment]] = {}
            tset = set(test_clips)
            for scen in scenarios:
                ks = list(settings.k) if scen == "unseen" or settings.seen_k is None else list(settings.seen_k)
                anns = unseen_all if scen == "unseen" else seen
                if scen == "unseen" and settings.enroll_from == "test":
                    pool, same = tset, True
                else:
                    pool, same = enroll_pool, False
                assignments[scen], excluded[scen] = _assign(by_ann, anns, pool, tset, ks, settings,
                                                            seed, fold, scen, same, fold_train=enroll_pool)
                if scen == "unseen" and n_capped:
                    excluded[scen][cap_reason(settings.max_listeners)] = n_capped
            key = (seed, tuple(train_clips), tuple(seen)) if not data.cross_corpus else (seed, "cross", tuple(seen))
            if valid_clips:
                key = (*key, "valid", tuple(valid_clips))
            plan.append(Split(seed, str(fold), train_clips, test_clips, seen, unseen_all, key, assignments, excluded,
                              settings.enroll_from, valid_clips=list(valid_clips),
                              eval_valid_clips=sorted(fd.dev.tolist())))
    check_plan(data, plan)
    return plan


def check_plan(data: EvalData, plan: list[Split]) -> None:
    """Assert the protocol's guarantees; raise :class:`PerserError` naming the breach.

    * no test speaker occurs among the training clips' speakers;
    * no listener is both seen (trained on) and unseen;
    * no listener's enrollment clip is in that listener's test set, and every test
      clip is in the test fold;
    * seen listeners, and unseen listeners enrolled from training clips, are never
      enrolled on a clip of a test speaker;
    * no validation clip (early stopping) is a training or test clip.
    """
    spk = data.clips["speaker"].astype(str)
    speaker_of = dict(zip(spk.index.tolist(), spk.tolist()))  # one dict, not a pandas lookup per listener
    for s in plan:
        where = f"seed {s.seed} fold {s.fold}"
        test_spk = set(spk.loc[s.test_clips])
        both = test_spk & set(spk.loc[s.train_clips])
        if both:
            raise PerserError(f"{where}: test speaker(s) {sorted(both)[:5]} also in training")
        if set(s.valid_clips) & (set(s.test_clips) | set(s.train_clips)):
            raise PerserError(f"{where}: clip(s) {sorted(set(s.valid_clips) & (set(s.test_clips) | set(s.train_clips)))[:5]} "
                              "are validation clips and training or test clips")
        if set(s.seen) & set(s.unseen):
            raise PerserError(f"{where}: listener(s) {sorted(set(s.seen) & set(s.unseen))[:5]} are both seen and unseen")
        tset = set(s.test_clips)
        for scen, assigns in s.assignments.items():
            for a in assigns:
                enr = set(a.enroll_order) | set(a.pool)
                if enr & set(a.test):
                    raise PerserError(f"{where} {scen}: listener {a.annotator!r} has enrollment clip(s) "
                                      f"{sorted(enr & set(a.test))[:3]} in their test set")
                if not set(a.test) <= tset:
                    raise PerserError(f"{where} {scen}: listener {a.annotator!r} is tested outside the test fold")
                if (scen == "seen" or s.enroll_from == "train") and {speaker_of[c] for c in enr} & test_spk:
                    raise PerserError(f"{where} {scen}: listener {a.annotator!r} is enrolled on a test speaker's clip")
