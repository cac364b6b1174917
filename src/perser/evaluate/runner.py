"""Run every method over a protocol plan and collect per-listener predictions."""

from __future__ import annotations

import logging
import re
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from perser.errors import ConfigError, CountedWarning, PerserError, PerserWarning, SkipLog
from perser.evaluate.protocol import EvalData, Split
from perser.methods.base import Personalizer, Predictions, RatingSet, get_method, make_method

log = logging.getLogger(__name__)


@dataclass
class Block:
    """One listener's test predictions by one method in one (scenario, K, seed, fold)."""

    method: str
    scenario: str
    k: int
    seed: int
    fold: str
    annotator: str
    clip_ids: np.ndarray
    y: np.ndarray
    proba: np.ndarray | None = None
    values: np.ndarray | None = None
    threshold: float = 0.5
    profile: dict = field(default_factory=dict)


@dataclass
class RunOutput:
    blocks: list[Block]
    #: method -> {fit_s, enroll_s, predict_s (wall), fit_cpu_s, enroll_cpu_s, predict_cpu_s (CPU of the process),
    #: n_fit, n_shared_fit, n_enroll}
    timings: dict[str, dict[str, float]]
    skipped_methods: dict[str, str]


def _instantiate(name: str, params: dict, seed: int, quiet: bool = True, fold: str | None = None) -> Personalizer:
    """The method with ``params``; its ``seed``/``random_state`` set to the protocol seed
    and its own progress bar off (``quiet``) unless given. A ``checkpoint_dir`` becomes
    ``<checkpoint_dir>/<method>/seed<seed>-fold<fold>``: each fit of the plan resumes
    its own checkpoint (one folder for all would hand one split's model to the next)."""
    klass = get_method(name)
    params = dict(params)
    sig = set(klass.param_names())
    if params.get("checkpoint_dir") and fold is not None:
        parts = [re.sub(r"[^A-Za-z0-9._-]+", "_", x) for x in (name, f"seed{seed}-fold{fold}")]  # safe folder names
        params["checkpoint_dir"] = str(Path(params["checkpoint_dir"]).joinpath(*parts))
    for key in ("seed", "random_state"):
        if key in sig and key not in params:
            params[key] = seed
    if quiet and "progress" in sig and "progress" not in params:
        params["progress"] = False
    return make_method(name, **params)


def _train_set(data: EvalData, split: Split) -> RatingSet:
    """The seen listeners' ratings of the training clips; features of those clips only."""
    r = data.ratings
    mask = (r["clip_id"].isin(set(split.train_clips)) & r["annotator_id"].isin(set(split.seen))).to_numpy()
    if not mask.any():
        raise PerserError(f"seed {split.seed} fold {split.fold}: no training ratings")
    sub = r.loc[mask]
    train_ids = np.asarray(sorted(set(sub["clip_id"])), dtype=object)
    import pandas as pd

    return RatingSet(
        X=data.X[data.rows(train_ids)],
        clip_ids=train_ids,
        clip_index=pd.Index(train_ids).get_indexer(sub["clip_id"].to_numpy(dtype=object)).astype(np.int64),
        annotator_ids=sub["annotator_id"].to_numpy(dtype=object),
        y=data.y_all[mask],
        space=data.space,
    )


def _valid_set(data: EvalData, split: Split) -> RatingSet | None:
    """The seen listeners' ratings of the split's validation clips (``None``: the split has
    none, the methods hold out their own)."""
    if not split.valid_clips:
        return None
    r = data.ratings
    mask = (r["clip_id"].isin(set(split.valid_clips)) & r["annotator_id"].isin(set(split.seen))).to_numpy()
    if not mask.any():
        raise PerserError(f"seed {split.seed} fold {split.fold}: no seen listener rated a validation clip "
                          f"({len(split.valid_clips)} validation clips)")
    return _ratings_subset(data, mask)


def _ratings_subset(data: EvalData, mask: np.ndarray) -> RatingSet:
    """The ratings of ``data`` selected by the boolean ``mask``, with their clips' features."""
    sub = data.ratings.loc[mask]
    ids = np.asarray(sorted(set(sub["clip_id"])), dtype=object)
    local = {c: i for i, c in enumerate(ids)}
    return RatingSet(
        X=data.X[data.rows(ids)],
        clip_ids=ids,
        clip_index=np.array([local[c] for c in sub["clip_id"]], dtype=np.int64),
        annotator_ids=sub["annotator_id"].to_numpy(dtype=object),
        y=data.y_all[mask],
        space=data.space,
    )


def _listener_set(data: EvalData, pairs: dict[str, list[str]]) -> RatingSet | None:
    """The ratings of each listener of ``pairs`` on their listed clips (``None`` if none)."""
    r = data.ratings
    keep = set((a, c) for a, clips in pairs.items() for c in clips)
    mask = np.fromiter(((a, c) in keep for a, c in zip(r["annotator_id"].to_numpy(), r["clip_id"].to_numpy())),
                       dtype=bool, count=len(r))
    if not mask.any():
        return None
    return _ratings_subset(data, mask)


def check_methods(methods: dict[str, dict], space_kind: str, explicit: bool) -> dict[str, str]:
    """Methods that cannot handle ``space_kind``: an error when the user named them, else skipped."""
    skipped = {}
    for name in methods:
        klass = get_method(name)
        if space_kind not in klass.kinds:
            msg = f"method {name!r} does not support {space_kind} label spaces (supports {', '.join(klass.kinds)})"
            if explicit:
                raise ConfigError(msg)
            skipped[name] = msg
    return skipped


def run_plan(
    data: EvalData, plan: list[Split], methods: dict[str, dict], threshold: float | None = None,
    explicit_methods: bool = True, progress: bool = True, share_fits: bool = True,
    enroll_threads: int | None = 1, strategies=None,
) -> RunOutput:
    """Fit, enroll and predict every method on every split of ``plan``.

    Seen listeners are predicted through the method's ``seen_profile(annotator)`` where
    it has one (their own output head, whatever K), and otherwise enrolled like new
    listeners with K of their training-clip ratings.

    A method that ``adapts()`` (``similar-finetuned``: Tavernor & Mower Provost's
    fine-tuning after the head copy) enrolls every new listener of a (seed, fold, K)
    first, then adapts (``adapt``) a copy of itself to all their ratings of the fold's training
    clips (early stopping on their ratings of the fold's validation clips,
    ``Split.eval_valid_clips``, when the folds have them) and predicts every listener
    with the adapted copy; its time counts as fit time. Only random enrollment.

    Methods whose fitted network is the same (equal ``fit_signature()``, e.g.
    ``random-annotator``, ``mean-annotator``, ``similar`` and ``finetune`` with the same
    network and training settings) are fitted once per split: the first fits, the
    others ``adopt_fit`` a copy, which gives the numbers separate fits would give.

    Parameters
    ----------
    methods:
        Registry name -> hyper-parameters. A ``seed``/``random_state`` parameter the
        method accepts is set to the protocol seed unless given.
    threshold:
        Multilabel decision threshold for every method; ``None`` keeps each method's own.
    explicit_methods:
        True when the user listed the methods: one that cannot handle the label
        space is then an error; otherwise it is skipped and noted.
    share_fits:
        Fit methods with equal fit signatures once per split (``False``: fit each).
    enroll_threads:
        Torch threads while enrolling and predicting (K clips and one listener's test
        clips are tiny tensors: one thread is several times faster than two on a busy
        machine); ``None`` keeps torch's setting. Fits use torch's setting.
    strategies:
        A :class:`perser.enroll.protocol.StrategyPlan` (default: ``random`` alone, the
        papers' protocol): non-random strategies add results named ``<method>+<strategy>``.
    """
    from perser.enroll.protocol import StrategyPlan

    strategies = strategies if strategies is not None else StrategyPlan()
    skipped = check_methods(methods, data.space.kind, explicit_methods)
    names = [m for m in methods if m not in skipped]
    if not names:
        raise ConfigError("no method can run on this label space")
    for name in names:  # a misspelt hyper-parameter fails now, not after the other methods' fits
        _instantiate(name, methods[name], plan[0].seed if plan else 0)
    run = _Run(data, methods, names, threshold, share_fits, strategies,
               _Bar(progress, _n_steps(plan, names, strategies)))
    with run.bar:
        for split in plan:
            train = valid = None
            for name in names:
                if (name, split.fit_key) not in run.fitted:
                    if train is None:
                        train, valid = _train_set(data, split), _valid_set(data, split)
                    run.fit(name, split, train, valid)
                run.bar.describe(f"enroll {name} (seed {split.seed}, fold {split.fold})")
                with _torch_threads(enroll_threads):
                    run.predict_split(name, split)
    run.fit_warnings.emit()
    return RunOutput(run.blocks, run.timings, skipped)


def _n_steps(plan: list[Split], names: list[str], strategies) -> int:
    """Progress steps of a run: one per fit (per distinct fit key) and per (listener, K, strategy) enrollment."""
    total = 0
    fit_keys = set()
    for s in plan:
        for scen, assigns in s.assignments.items():
            total += sum(len(a.ks) for a in assigns) * sum(
                1 + strategies.n_extra(get_method(n).personalized, scen) for n in names)
        if s.fit_key not in fit_keys:
            total += len(names)
            fit_keys.add(s.fit_key)
    return total


class _Bar:
    """The run's progress bar, or nothing when ``progress`` is off."""

    def __init__(self, progress: bool, total: int) -> None:
        from perser._io import progress_bar

        self.bar = progress_bar() if progress else None
        self.total = total
        self.task = None

    def __enter__(self) -> "_Bar":
        if self.bar is not None:
            self.bar.__enter__()
            self.task = self.bar.add_task("evaluating", total=self.total)
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def describe(self, text: str) -> None:
        if self.bar is not None:
            self.bar.update(self.task, description=text)

    def advance(self) -> None:
        if self.bar is not None:
            self.bar.advance(self.task)


class _Run:
    """The state of one :func:`run_plan` call: fitted methods, timings, blocks and warnings."""

    def __init__(self, data: EvalData, methods: dict[str, dict], names: list[str], threshold: float | None,
                 share_fits: bool, strategies, bar: _Bar) -> None:
        self.data, self.methods, self.threshold, self.share_fits, self.bar = data, methods, threshold, share_fits, bar
        self.strategies = strategies
        self.timings = {m: {"fit_s": 0.0, "enroll_s": 0.0, "predict_s": 0.0, "fit_cpu_s": 0.0, "enroll_cpu_s": 0.0,
                            "predict_cpu_s": 0.0, "n_fit": 0, "n_shared_fit": 0, "n_enroll": 0} for m in names}
        self.blocks: list[Block] = []
        self.fit_warnings = _FitWarnings()
        #: (method, fit key) -> fitted method, for the current fit key only
        self.fitted: dict[tuple, Personalizer] = {}
        #: (fit key, fit signature) -> the method fitted with that signature, for the current fit key only
        self.shared: dict[tuple, Personalizer] = {}
        #: annotator -> clip id -> row of data.ratings
        self.rows: dict[str, dict[str, int]] = {}
        for i, (c, a) in enumerate(zip(data.ratings["clip_id"].to_numpy(), data.ratings["annotator_id"].to_numpy())):
            self.rows.setdefault(a, {})[c] = i

    # ------------------------------------------------------------------ fit
    def fit(self, name: str, s: Split, train: RatingSet, valid: RatingSet | None = None) -> None:
        """Fit method ``name`` on split ``s`` (or adopt an equal fit of this split), timing it
        and collecting its warnings; ``valid``: the split's validation ratings (early stopping)."""
        self.bar.describe(f"fit {name} (seed {s.seed}, fold {s.fold})")
        _seed_everything(s.seed)
        m = _instantiate(name, self.methods[name], s.seed, fold=s.fold)
        sig = _fit_signature(m) if self.share_fits else None
        self.shared = {k: v for k, v in self.shared.items() if k[0] == s.fit_key}
        t0, c0 = time.perf_counter(), time.process_time()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", PerserWarning)
            if sig is not None and (s.fit_key, sig) in self.shared:
                m.adopt_fit(self.shared[(s.fit_key, sig)], train)
                self.timings[name]["n_shared_fit"] += 1
            else:
                m.fit(train, valid)
                self.timings[name]["n_fit"] += 1
                if sig is not None:
                    self.shared[(s.fit_key, sig)] = m
        self.fit_warnings.add(caught, f"seed {s.seed}, fold {s.fold}")
        self.timings[name]["fit_s"] += time.perf_counter() - t0
        self.timings[name]["fit_cpu_s"] += time.process_time() - c0
        self.fitted = {k: v for k, v in self.fitted.items() if k[1] == s.fit_key}
        self.fitted[(name, s.fit_key)] = m
        self.bar.advance()

    # ------------------------------------------------------------- predict
    def predict_split(self, name: str, s: Split) -> None:
        """Enroll every listener of split ``s`` at each of their K (and with each enrollment
        strategy) and predict their test clips."""
        m = self.fitted[(name, s.fit_key)]
        data = self.data
        shared_pred = None  # a method that ignores the profile predicts the fold once
        for scen, assigns in s.assignments.items():
            if scen == "unseen" and callable(getattr(m, "adapts", None)) and m.adapts():
                self.predict_adapted(name, m, s, assigns)
                continue
            for a in assigns:
                rows = self.rows[a.annotator]
                y_test = data.y_all[[rows[c] for c in a.test]]
                Xt = data.X[data.rows(a.test)]
                own = _seen_profile(m, a.annotator) if scen == "seen" else None
                for bname, enr in self.strategies.enrollments(
                        name, m, scen, a, data, rows, lambda: _train_set(data, s), s.seed, s.fold):
                    k = len(enr)
                    t0, c0 = time.perf_counter(), time.process_time()
                    prof = own if own is not None else m.enroll(data.X[data.rows(enr)], data.y_all[[rows[c] for c in enr]],
                                                                 a.annotator)
                    t1, c1 = time.perf_counter(), time.process_time()
                    if m.personalized:
                        pred = m.predict(prof, Xt)
                        proba, values, thr = pred.proba, pred.values, pred.threshold
                    else:
                        if shared_pred is None:
                            all_ids = np.asarray(s.test_clips, dtype=object)
                            shared_pred = (dict(zip(all_ids, range(len(all_ids)))),
                                           m.predict(prof, data.X[data.rows(all_ids)]))
                        proba, values, thr = _rows_of(shared_pred, a.test)
                    t2, c2 = time.perf_counter(), time.process_time()
                    t = self.timings[name]
                    t["enroll_s"] += t1 - t0
                    t["predict_s"] += t2 - t1
                    t["enroll_cpu_s"] += c1 - c0
                    t["predict_cpu_s"] += c2 - c1
                    t["n_enroll"] += 1
                    _check_pred(name, data, proba, values, len(a.test))
                    self.blocks.append(Block(
                        bname, scen, int(k), int(s.seed), str(s.fold), str(a.annotator),
                        np.asarray(a.test, dtype=object), y_test,
                        None if proba is None else np.asarray(proba, dtype=np.float64),
                        None if values is None else np.asarray(values, dtype=np.float64),
                        float(self.threshold if self.threshold is not None else (thr if thr is not None else 0.5)),
                        dict(prof.data) if prof is not None else {},
                    ))
                    self.bar.advance()


    def predict_adapted(self, name: str, m: Personalizer, s: Split, assigns: list) -> None:
        """Enroll every new listener of split ``s`` at each K, adapt a copy of ``m`` to their
        ratings of the fold's training clips, and predict each with the adapted copy."""
        if self.strategies.others:
            raise ConfigError(f"method {name!r} is fine-tuned on all enrolled listeners at once; it takes random "
                              f"enrollment only (enroll_strategy: [random]), not {self.strategies.others}")
        data, t = self.data, self.timings[name]
        same: dict[frozenset, Personalizer] = {}  # a method that ignores the profiles adapts once per listener set
        for k in sorted({k for a in assigns for k in a.ks}):
            elig = [a for a in assigns if k in a.ks]
            profiles = {}
            for a in elig:
                rows = self.rows[a.annotator]
                enr = a.enroll_order[:k]
                t0 = time.perf_counter()
                profiles[a.annotator] = m.enroll(data.X[data.rows(enr)], data.y_all[[rows[c] for c in enr]],
                                                 a.annotator)
                t["enroll_s"] += time.perf_counter() - t0
                t["n_enroll"] += 1
            target = _listener_set(data, {a.annotator: list(a.pool or a.enroll_order) for a in elig})
            if target is None:
                raise PerserError(f"seed {s.seed} fold {s.fold}: method {name!r}: the enrolled listeners have no "
                                  "ratings of the fold's training clips to fine-tune on")
            aside = set(s.eval_valid_clips)
            valid = _listener_set(data, {a.annotator: [c for c in self.rows[a.annotator] if c in aside] for a in elig}) \
                if aside else None
            key = frozenset(profiles)
            if not m.personalized and key in same:
                adapted = same[key]
                profs = {a: type(p)(p.method, p.annotator, {**p.data, "finetuned": True}) for a, p in profiles.items()}
            else:
                self.bar.describe(f"fine-tune {name} (seed {s.seed}, fold {s.fold}, K {k})")
                _seed_everything(s.seed)
                t0 = time.perf_counter()
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", PerserWarning)
                    adapted, profs = m.adapt(profiles, target, valid)
                self.fit_warnings.add(caught, f"seed {s.seed}, fold {s.fold}, K {k}")
                t["fit_s"] += time.perf_counter() - t0
                if not m.personalized:
                    same[key] = adapted
            for a in elig:
                rows = self.rows[a.annotator]
                Xt = data.X[data.rows(a.test)]
                t0 = time.perf_counter()
                pred = adapted.predict(profs[a.annotator], Xt)
                t["predict_s"] += time.perf_counter() - t0
                _check_pred(name, data, pred.proba, pred.values, len(a.test))
                self.blocks.append(Block(
                    name, "unseen", int(k), int(s.seed), str(s.fold), str(a.annotator),
                    np.asarray(a.test, dtype=object), data.y_all[[rows[c] for c in a.test]],
                    None if pred.proba is None else np.asarray(pred.proba, dtype=np.float64),
                    None if pred.values is None else np.asarray(pred.values, dtype=np.float64),
                    float(self.threshold if self.threshold is not None else
                          (pred.threshold if pred.threshold is not None else 0.5)),
                    dict(profs[a.annotator].data),
                ))
                self.bar.advance()


def _rows_of(shared_pred: tuple[dict, Predictions], clips) -> tuple:
    """``(proba, values, threshold)`` of ``clips`` from one prediction of a whole fold."""
    pos, full = shared_pred
    idx = [pos[c] for c in clips]
    proba = None if full.proba is None else np.asarray(full.proba)[idx]
    values = None if full.values is None else np.asarray(full.values)[idx]
    return proba, values, full.threshold


class _FitWarnings:
    """Counted warnings of the methods' fits, reported once per run instead of once per split.

    A :class:`~perser.errors.CountedWarning` (a :class:`~perser.errors.SkipLog` line)
    repeated over splits becomes one line with the counts summed over the splits; any
    other :class:`~perser.errors.PerserWarning` is re-issued once per split, naming the
    split; other warnings pass through at once.
    """

    def __init__(self) -> None:
        self.logs: dict[str, SkipLog] = {}
        self.splits: dict[tuple[str, str], set[str]] = {}
        self.other: list[tuple[str, type]] = []

    def add(self, caught: list, where: str) -> None:
        for w in caught:
            if not issubclass(w.category, PerserWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
                continue
            c = w.message
            if not isinstance(c, CountedWarning):
                self.other.append((f"{c} ({where})", w.category))
                continue
            log = self.logs.setdefault(c.source, SkipLog(c.source))
            log.add(c.reason, c.examples[0] if c.examples else "", n=c.n)
            for e in c.examples[1:]:
                log.add(c.reason, e, n=0)
            self.splits.setdefault((c.source, c.reason), set()).add(where)

    def emit(self) -> None:
        for source, log in self.logs.items():
            for c in log.records():
                n_splits = len(self.splits[(source, c.reason)])
                where = f" in {n_splits} fits (summed over seeds and folds)" if n_splits > 1 else ""
                more = f" (e.g. {', '.join(dict.fromkeys(c.examples))})" if c.examples else ""
                warnings.warn(f"{source}: {c.n} {c.reason}{where}{more}", PerserWarning, stacklevel=3)
        for msg, cat in self.other:
            warnings.warn(msg, cat, stacklevel=3)


@contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` torch intra-op threads, restoring the setting afterwards."""
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _fit_signature(m: Personalizer) -> tuple | None:
    """The method's fit signature (``None``: its fit is its own)."""
    if not (m.has("fit_signature") and m.has("adopt_fit")):
        return None
    sig = m.fit_signature()
    if sig is None:
        return None
    try:
        hash(sig)
    except TypeError:
        return None
    return sig


def _seen_profile(m: Personalizer, annotator: str):
    """A seen listener's own profile where the method keeps one (e.g. their output head)."""
    if not m.has("seen_profile"):
        return None
    try:
        return m.seen_profile(annotator)
    except PerserError:  # e.g. too few ratings for a head of their own: enroll instead
        return None


def _check_pred(name: str, data: EvalData, proba, values, n: int) -> None:
    sp = data.space
    if sp.is_class:
        if proba is None or np.shape(proba) != (n, len(sp.classes)):
            raise PerserError(f"method {name!r} returned proba of shape {None if proba is None else np.shape(proba)}, "
                              f"expected {(n, len(sp.classes))}")
    elif values is None or np.shape(values) != (n, len(sp.dimensions)):
        raise PerserError(f"method {name!r} returned values of shape {None if values is None else np.shape(values)}, "
                          f"expected {(n, len(sp.dimensions))}")


def _seed_everything(seed: int) -> None:
    np.random.seed(seed % (2**32))
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:  # pragma: no cover
        pass
