"""The one interface every personalization method implements.

A method learns from seen annotators (:meth:`Personalizer.fit`), learns a new
listener from K rated clips (:meth:`Personalizer.enroll`, giving a :class:`Profile`)
and predicts that listener's labels (:meth:`Personalizer.predict`). The evaluation
protocol, the CLI and the service see only this interface.

Targets (``y``) are encoded by :meth:`perser.corpus.LabelSpace.encode`:
``int64 [n]`` class indices (categorical), ``float32 [n, C]`` 0/1 indicators
(multilabel), ``float32 [n, D]`` values on the native scale (dimensional).
Features ``X`` are ``float32 [n, d]`` vectors or ``[n, layers, dim]`` SSL arrays
(``float16`` kept where the store holds it).
"""

from __future__ import annotations

import inspect
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar, Hashable

import numpy as np
import pandas as pd

from perser._io import json_default
from perser.corpus.model import Corpus, LabelSpace
from perser.errors import ConfigError, CorpusError, PerserError


# --------------------------------------------------------------------------- data
@dataclass
class RatingSet:
    """Features of some clips and the per-annotator ratings of those clips in one space.

    ``X[clip_index[i]]`` is the clip that annotator ``annotator_ids[i]`` rated ``y[i]``.
    """

    X: np.ndarray
    clip_ids: np.ndarray
    clip_index: np.ndarray
    annotator_ids: np.ndarray
    y: np.ndarray
    space: LabelSpace

    def __post_init__(self) -> None:
        if not (isinstance(self.X, np.ndarray) and self.X.dtype in (np.float16, np.float32)):
            self.X = np.asarray(self.X, dtype=np.float32)  # float16/float32 arrays (memory-mapped ones too) kept as stored
        self.clip_ids = np.asarray(self.clip_ids, dtype=object)
        self.clip_index = np.asarray(self.clip_index, dtype=np.int64)
        self.annotator_ids = np.asarray(self.annotator_ids, dtype=object)
        if len(self.X) != len(self.clip_ids):
            raise PerserError(f"RatingSet: {len(self.X)} feature rows but {len(self.clip_ids)} clip ids")
        if not (len(self.clip_index) == len(self.annotator_ids) == len(self.y)):
            raise PerserError("RatingSet: clip_index, annotator_ids and y differ in length")

    @classmethod
    def from_corpus(
        cls,
        corpus: Corpus,
        X: np.ndarray | pd.DataFrame,
        space: LabelSpace | str,
        clip_ids=None,
        clips=None,
        annotators=None,
    ) -> "RatingSet":
        """Ratings of ``corpus`` in ``space`` joined to features.

        ``X`` is aligned to ``clip_ids`` (or is a data frame indexed by clip id).
        ``clips`` / ``annotators`` restrict the rows. A rating whose clip has no
        features is an error naming the clip.
        """
        sp = corpus.space(space) if isinstance(space, str) else space
        if isinstance(X, pd.DataFrame):
            clip_ids = X.index.to_numpy()
            X = X.to_numpy()
        if clip_ids is None:
            raise PerserError("RatingSet.from_corpus: pass clip_ids aligned to X")
        clip_ids = np.asarray(clip_ids, dtype=object)
        r = corpus.ratings_in(sp)
        if clips is not None:
            r = r[r["clip_id"].isin(set(clips))]
        if annotators is not None:
            r = r[r["annotator_id"].isin(set(annotators))]
        pos = pd.Series(np.arange(len(clip_ids)), index=pd.Index(clip_ids))
        idx = r["clip_id"].map(pos)
        if idx.isna().any():
            missing = r["clip_id"][idx.isna()].iloc[0]
            raise CorpusError(f"no features for clip {missing!r} (rated in space {sp.name!r})")
        return cls(
            X=np.asarray(X),
            clip_ids=clip_ids,
            clip_index=idx.to_numpy(dtype=np.int64),
            annotator_ids=r["annotator_id"].to_numpy(dtype=object),
            y=sp.encode(r),
            space=sp,
        )

    def __len__(self) -> int:
        return len(self.y)

    @property
    def annotators(self) -> list[str]:
        return sorted(set(self.annotator_ids.tolist()))

    def rows(self, mask: np.ndarray) -> "RatingSet":
        """Ratings selected by a boolean mask or index array (features kept whole)."""
        return RatingSet(self.X, self.clip_ids, self.clip_index[mask], self.annotator_ids[mask], self.y[mask], self.space)

    def of(self, annotator: str) -> tuple[np.ndarray, np.ndarray]:
        """``(X, y)`` of one annotator's ratings."""
        m = self.annotator_ids == annotator
        if not m.any():
            raise PerserError(f"annotator {annotator!r} has no ratings in this set")
        return self.X[self.clip_index[m]], self.y[m]

    def consensus(self) -> tuple[np.ndarray, np.ndarray]:
        """``(clip rows, target)`` per rated clip: the soft class distribution
        (categorical, ``[n, C]``), the fraction ticking each class (multilabel) or the
        mean (dimensional)."""
        uniq, inv = np.unique(self.clip_index, return_inverse=True)
        counts = np.bincount(inv, minlength=len(uniq)).astype(np.float32)
        if self.space.kind == "categorical":
            y = np.zeros((len(uniq), len(self.space.classes)), dtype=np.float32)
            np.add.at(y, (inv, self.y), 1.0)
        else:
            y = np.zeros((len(uniq), self.y.shape[1]), dtype=np.float32)
            np.add.at(y, inv, self.y)
        return uniq, y / counts[:, None]


@dataclass
class Predictions:
    """One listener's predictions for some clips.

    ``proba``: ``[n, C]`` class probabilities (categorical: rows sum to 1; multilabel:
    independent per class). ``values``: ``[n, D]`` on the native scale (dimensional).
    """

    space: LabelSpace
    proba: np.ndarray | None = None
    values: np.ndarray | None = None
    threshold: float = 0.5

    @property
    def labels(self) -> list:
        """Argmax class (categorical), classes over ``threshold`` (multilabel) or values."""
        if self.space.kind == "categorical":
            return self.space.decode(np.asarray(self.proba).argmax(axis=1))
        if self.space.kind == "multilabel":
            return self.space.decode(np.asarray(self.proba) >= self.threshold)
        return np.asarray(self.values).tolist()

    def to_frame(self, clip_ids) -> pd.DataFrame:
        """A data frame indexed by clip id with the label and the scores."""
        idx = pd.Index([str(c) for c in clip_ids], name="clip_id")
        if self.space.is_class:
            df = pd.DataFrame(np.asarray(self.proba), index=idx, columns=[f"p_{c}" for c in self.space.classes])
            df.insert(0, self.space.name, self.labels)
            return df
        return pd.DataFrame(np.asarray(self.values), index=idx, columns=list(self.space.dimensions))


@dataclass
class Profile:
    """What enrollment produces for one annotator; small and serialisable.

    ``data`` is JSON (e.g. the chosen seen annotator and its score); ``tensors``
    holds adapted weights, saved as safetensors.
    """

    method: str
    annotator: str | None = None
    data: dict = field(default_factory=dict)
    tensors: dict[str, np.ndarray] = field(default_factory=dict)

    def save(self, path: str | Path) -> Path:
        """Write ``profile.json`` (+ ``profile.safetensors``) into folder ``path``."""
        from perser._io import atomic_dir
        from perser.methods.persist import save_tensors

        path = Path(path)
        with atomic_dir(path) as tmp:
            doc = {"method": self.method, "annotator": self.annotator, "data": self.data}
            (tmp / "profile.json").write_text(json.dumps(doc, indent=2, default=json_default), encoding="utf-8")
            if self.tensors:
                save_tensors(self.tensors, tmp / "profile.safetensors")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Profile":
        from perser.methods.persist import load_tensors

        path = Path(path)
        f = path / "profile.json"
        if not f.is_file():
            raise PerserError(f"{path} is not a profile folder (no profile.json)")
        doc = json.loads(f.read_text(encoding="utf-8"))
        t = path / "profile.safetensors"
        return cls(method=doc["method"], annotator=doc.get("annotator"), data=doc.get("data", {}),
                   tensors=load_tensors(t) if t.is_file() else {})


# ---------------------------------------------------------------------- interface
class Personalizer(ABC):
    """The contract of a personalization method (scikit-learn spirit).

    Hyper-parameters are keyword arguments of ``__init__`` stored as attributes of the
    same name, with no work done there (:meth:`param_names`, :meth:`get_params`);
    learning happens in :meth:`fit`. A method implements :meth:`fit`, :meth:`enroll` and
    :meth:`predict`; one whose models can be kept implements :meth:`save` and
    :meth:`load` too (every registered method does).

    **Fitted attributes** (set by :meth:`fit` and by :meth:`load`; callers such as the
    evaluation runner and the HTTP service read them):

    ``space_`` : :class:`~perser.corpus.LabelSpace`
        The label space the method was fitted on; :meth:`predict` answers in it.
    ``input_shape_`` : tuple of int
        The shape of one clip's features (``(88,)`` for eGeMAPS, ``(layers, dim)`` for SSL).
    ``feature_spec`` : dict or None
        How the input features were made (``spec``, ``settings``; set by
        :func:`perser.methods.train` or the caller before :meth:`save`, kept in the model
        folder); ``None`` when unknown.

    **Optional capabilities**: each is ``None`` on a method that lacks it and a method
    on one that has it (:meth:`has` tells which):

    ``seen_profile(annotator) -> Profile``
        A seen annotator's own profile (e.g. their output head), used for seen listeners
        instead of enrolling them; raises :class:`~perser.errors.PerserError` for an
        annotator without one.
    ``fit_signature() -> hashable or None``
        What determines the fitted network; two methods with equal signatures fitted on
        the same data are interchangeable (``None``: this fit is its own).
    ``adopt_fit(other, train) -> self``
        Take a copy of ``other``'s fit (equal :meth:`fit_signature`, same ``train``)
        instead of fitting.
    """

    #: registry name (the first name the class was registered under, see :func:`register`)
    name: ClassVar[str] = ""
    #: label-space kinds the method supports
    kinds: ClassVar[tuple[str, ...]] = ("categorical", "multilabel", "dimensional")
    #: whether predictions depend on the profile
    personalized: ClassVar[bool] = True
    #: names of the optional capabilities (see the class docstring)
    CAPABILITIES: ClassVar[tuple[str, ...]] = ("seen_profile", "fit_signature", "adopt_fit")

    # fitted attributes (declared for readers; set by fit/load)
    space_: LabelSpace
    input_shape_: tuple[int, ...]
    feature_spec: dict | None = None

    # optional capabilities: None unless the method has them
    seen_profile: Callable[[str], Profile] | None = None
    fit_signature: Callable[[], Hashable | None] | None = None
    adopt_fit: Callable[["Personalizer", RatingSet], "Personalizer"] | None = None

    @abstractmethod
    def fit(self, train: RatingSet, valid: RatingSet | None = None) -> "Personalizer":
        """Learn from the seen annotators' ratings ``train`` (``valid``: held-out ratings
        for early stopping, where the method uses any); returns ``self``.

        Sets the fitted attributes. Raises :class:`~perser.errors.ConfigError` for a label
        space the method does not support (:attr:`kinds`)."""

    @abstractmethod
    def enroll(self, X: np.ndarray, y: np.ndarray, annotator: str | None = None) -> Profile:
        """A new listener's :class:`Profile` from K rated clips: features ``X`` ``[K, ...]``
        and targets ``y`` encoded by the fitted space (see the module docstring).

        Never changes the fitted method: enrolling one listener cannot affect another."""

    @abstractmethod
    def predict(self, profile: Profile | None, X: np.ndarray) -> Predictions:
        """The listener's predictions for clips ``X`` ``[n, ...]`` (``profile`` ``None``:
        no particular listener, e.g. the consensus).

        Deterministic: the same profile and clips give the same numbers."""

    def save(self, path: str | Path) -> Path:
        """Write the fitted method as a model folder (see :mod:`perser.methods.persist`),
        atomically; returns ``path``. :func:`perser.methods.load_model` reads it back."""
        raise ConfigError(f"method {self.name or type(self).__name__!r} cannot be saved")

    @classmethod
    def load(cls, path: str | Path) -> "Personalizer":
        """The method saved in model folder ``path`` by :meth:`save`, ready to enroll and predict."""
        raise ConfigError(f"method {cls.name or cls.__name__!r} cannot be loaded from {path}")

    def adapts(self) -> bool:
        """Whether an evaluation fine-tunes this method on the evaluated listeners'
        ratings of the fold's training clips after enrolling them (``adapt(profiles,
        target, valid) -> (adapted method, profiles)``, see
        :func:`perser.evaluate.runner.run_plan`); ``False`` for every method but
        ``similar`` with ``finetune_after_copy`` and ``consensus`` with ``finetune_on_target``."""
        return False

    # helpers ------------------------------------------------------------------
    def has(self, capability: str) -> bool:
        """Whether this method has the optional ``capability`` (one of :attr:`CAPABILITIES`)."""
        if capability not in self.CAPABILITIES:
            raise ValueError(f"unknown capability {capability!r}; known: {', '.join(self.CAPABILITIES)}")
        return callable(getattr(self, capability, None))

    @classmethod
    def param_names(cls) -> list[str]:
        """The hyper-parameters this class accepts: the named parameters of its ``__init__``,
        followed by those of the bases' ``__init__`` for as long as each passes ``**kwargs`` on."""
        names: list[str] = []
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None:
                continue
            if klass is object:
                break
            params = inspect.signature(init).parameters.values()
            for p in params:
                if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name not in names:
                    names.append(p.name)
            if not any(p.kind == p.VAR_KEYWORD for p in params):
                break
        return names

    def get_params(self) -> dict:
        """The hyper-parameters (:meth:`param_names`) and their values."""
        return {p: getattr(self, p) for p in self.param_names() if hasattr(self, p)}

    def check_space(self, space: LabelSpace) -> None:
        if space.kind not in self.kinds:
            raise ConfigError(f"method {self.name!r} does not support {space.kind} label spaces (supports {self.kinds})")


# ----------------------------------------------------------------------- registry
_REGISTRY: dict[str, str] = {
    # name -> "module:Class"; modules are imported on first use
    "consensus": "perser.methods.consensus:ConsensusModel",
    "consensus-finetuned": "perser.methods.consensus:ConsensusFinetuned",
    "random-annotator": "perser.methods.multi:RandomAnnotator",
    "mean-annotator": "perser.methods.multi:MeanAnnotator",
    "similar": "perser.methods.similar:SimilarAnnotator",
    "similar-finetuned": "perser.methods.similar:SimilarFinetuned",
    "finetune": "perser.methods.finetune:FineTune",
    "meta": "perser.methods.meta:MetaPerSER",
    "meta-finetune": "perser.methods.meta:MetaFineTune",
}


def register(name: str, target: str) -> None:
    """Register a method class (``"module:Class"``) under ``name``.

    The class's :attr:`Personalizer.name` (what its models and profiles record) is the
    first name its target was registered under: registering a second name for the same
    target makes an alias, which finds the class without renaming it."""
    _REGISTRY[name] = target


def available_methods() -> list[str]:
    return list(_REGISTRY)


#: registered methods an evaluation runs only when its config names them: ``similar-finetuned``
#: and ``consensus-finetuned`` train the whole network once more per (seed, fold, K);
#: ``meta-finetune`` is the Meta-PerSER recipe's baseline (``meta`` without meta-training)
OPT_IN = frozenset({"similar-finetuned", "consensus-finetuned", "meta-finetune"})


def default_methods() -> list[str]:
    """The methods an evaluation runs when its config names none: every registered one but :data:`OPT_IN`."""
    return [m for m in _REGISTRY if m not in OPT_IN]


def get_method(name: str) -> type[Personalizer]:
    """The method class registered as ``name``."""
    import importlib

    try:
        target = _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown method {name!r}; available: {', '.join(_REGISTRY)}") from None
    mod, cls = target.split(":")
    klass = getattr(importlib.import_module(mod), cls)
    klass.name = next(n for n, t in _REGISTRY.items() if t == target)  # an alias does not rename the class
    return klass


def make_method(name: str, **params) -> Personalizer:
    """Instantiate method ``name`` with hyper-parameters ``params``."""
    klass = get_method(name)
    try:
        return klass(**params)
    except TypeError as e:
        raise ConfigError(f"method {name!r}: {e}") from None
