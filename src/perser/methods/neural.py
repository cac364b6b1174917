"""Common machinery of the neural methods: hyper-parameters, the validation split,
standardisation, target encoding, predictions, and saving/loading a model folder.

A saved model is a folder with

``config.json``
    ``format``, ``method``, ``params`` (hyper-parameters), ``space``
    (:meth:`LabelSpace.to_dict`), ``input_shape``, ``seen_annotators``,
    ``feature_spec`` (how the features were made, when known), ``state`` (small fitted
    values of the method) and ``versions`` (perser, torch, numpy);
``model.safetensors``
    the network (``net.*``), the standardizer (``standardizer.mean``/``.std``) and any
    other fitted arrays of the method.

No pickle: loading a model runs no code from the folder.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from perser.corpus.model import LabelSpace
from perser.errors import ConfigError, FeatureError
from perser._io import json_default as _json_default, package_versions
from perser.methods.base import Personalizer, Predictions, Profile, RatingSet
from perser.methods.losses import class_balanced_weights, loss_for, training_targets
from perser.methods.nets import HeadedNet, Standardizer, activate, from_unit, load_numpy_state, state_to_numpy
from perser._io import atomic_dir
from perser.methods.persist import FORMAT, load_tensors, read_config, save_tensors
from perser.methods.training import TrainConfig

class NeuralPersonalizer(Personalizer):
    """Base class of the methods built on :class:`~perser.methods.nets.HeadedNet`.

    Parameters
    ----------
    hidden, dropout:
        Widths of the trunk's dense layers and their dropout.
    epochs, batch_size, lr, weight_decay, patience, min_delta:
        Training settings (Adam; early stopping after ``patience`` epochs without a
        validation loss lower than the best by more than ``min_delta``, ``0`` to switch
        it off).
    valid_fraction:
        Fraction of the training clips held out for early stopping when :meth:`fit` gets
        no validation set (``0``: none; ignored with fewer than 10 clips).
    loss:
        Dimensional loss, ``"ccc"`` (1 − CCC) or ``"mse"``.
    cb_beta:
        ``beta`` of the class-balanced multilabel loss (Cui et al. 2019); 0 switches
        the re-weighting off.
    seed:
        Seed of initialisation, shuffling, dropout and the validation split.
    progress:
        Show a progress bar while training.
    checkpoint_dir:
        Folder for per-epoch checkpoints; a killed :meth:`fit` resumes from it.
    device:
        Where :meth:`fit` trains: ``"auto"`` (this rank's GPU under a NCCL process group,
        else the CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``. Fitted models are kept, saved
        and run for enrollment and prediction on the CPU.
    precision:
        Training arithmetic: ``"auto"`` (bfloat16 autocast on a CUDA device that has it,
        float32 elsewhere), ``"fp32"`` or ``"bf16"`` (see
        :class:`~perser.methods.training.TrainConfig`). Weights stay float32.
    """

    def __init__(
        self,
        hidden: Sequence[int] = (256, 256),
        dropout: float = 0.2,
        epochs: int = 50,
        batch_size: int = 64,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        patience: int = 5,
        valid_fraction: float = 0.1,
        loss: str = "ccc",
        cb_beta: float = 0.999,
        seed: int = 0,
        progress: bool = True,
        checkpoint_dir: str | None = None,
        device: str = "auto",
        min_delta: float = 1e-5,
        precision: str = "auto",
    ):
        self.hidden = hidden
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.valid_fraction = valid_fraction
        self.loss = loss
        self.cb_beta = cb_beta
        self.seed = seed
        self.progress = progress
        self.checkpoint_dir = checkpoint_dir
        self.device = device
        self.min_delta = min_delta
        self.precision = precision
        #: how the features were made (set by the caller, saved with the model)
        self.feature_spec: dict | None = None

    # --------------------------------------------------------------- params

    def get_params(self) -> dict:
        return {p: _plain(getattr(self, p)) for p in self.param_names() if hasattr(self, p)}

    #: hyper-parameters a resumed checkpoint may differ in (more epochs continue a finished run)
    RESUMABLE = ("epochs", "patience", "min_delta", "progress", "checkpoint_dir", "device")

    def fit_settings(self) -> dict:
        """The hyper-parameters that shape the fitted network (part of a checkpoint's fingerprint)."""
        return {p: getattr(self, p) for p in NeuralPersonalizer.param_names() if p not in self.RESUMABLE}

    def train_config(self, description: str, checkpoint_sub: str = "", data: tuple = (), optimizer: str = "adam") -> TrainConfig:
        """Training settings; with checkpoints, ``data`` (the training and validation
        :class:`RatingSet`) and :meth:`fit_settings` are fingerprinted, so that a checkpoint
        written on other data or with other settings is refused instead of resumed."""
        ck = None
        if self.checkpoint_dir:
            ck = Path(self.checkpoint_dir) / checkpoint_sub if checkpoint_sub else Path(self.checkpoint_dir)
        key = checkpoint_key(data, self.fit_settings()) if ck is not None else None
        return TrainConfig(
            epochs=int(self.epochs), batch_size=int(self.batch_size), lr=float(self.lr),
            weight_decay=float(self.weight_decay), patience=int(self.patience or 0), min_delta=float(self.min_delta),
            seed=int(self.seed),
            checkpoint_dir=ck, progress=bool(self.progress), description=description, data_key=key,
            optimizer=optimizer, precision=str(self.precision),
        )

    def train_device(self) -> torch.device:
        """The device :meth:`fit` trains on (see ``device``)."""
        from perser.methods import distributed

        if self.device in (None, "auto"):
            return distributed.device()
        try:
            dev = torch.device(self.device)
        except (RuntimeError, TypeError):
            raise ConfigError(f"device {self.device!r}: use auto, cpu, cuda or cuda:N") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device {self.device!r}: CUDA is not available on this machine")
        return dev

    # ------------------------------------------------------------ shared fits
    def fit_signature(self) -> tuple | None:
        """What determines this method's fitted network, or ``None`` when it cannot be shared.

        Two methods with equal signatures, fitted on the same training set, end up with
        identical networks; an evaluation then fits one and lets the others
        :meth:`adopt_fit` it (see :func:`perser.evaluate.runner.run_plan`).
        """
        return None

    def adopt_fit(self, fitted: "NeuralPersonalizer", train: RatingSet) -> "NeuralPersonalizer":
        """Take the fitted state of ``fitted`` instead of calling :meth:`fit` on ``train``."""
        raise ConfigError(f"method {self.name!r} cannot share another method's fit")

    # ---------------------------------------------------------------- fitting
    def _check_fitted(self) -> None:
        if getattr(self, "net_", None) is None:
            raise ConfigError(f"method {self.name!r} is not fitted: call fit() or load a saved model first")

    def _split_valid(self, train: RatingSet) -> tuple[RatingSet, RatingSet | None]:
        """``(train, valid)``: ``valid_fraction`` of ``train``'s clips (seeded by ``seed``)
        held out for early stopping, with all their ratings; ``valid`` is ``None`` when the
        fraction is 0 or there are fewer than 10 clips."""
        if not (self.valid_fraction and float(self.valid_fraction) > 0):
            return train, None
        clips = np.unique(train.clip_index)
        n_valid = int(round(len(clips) * float(self.valid_fraction)))
        if len(clips) < 10 or n_valid < 1:
            return train, None
        held = np.random.default_rng([int(self.seed), 7]).choice(clips, size=n_valid, replace=False)
        m = np.isin(train.clip_index, held)
        return train.rows(~m), train.rows(m)

    def _begin_fit(self, train: RatingSet, valid: RatingSet | None) -> tuple[RatingSet, RatingSet | None]:
        """Check the space and shapes, split off validation clips, fit the standardizer."""
        self.check_space(train.space)
        if len(train) == 0:
            raise ConfigError(f"method {self.name!r}: the training set has no ratings")
        if train.X.ndim not in (2, 3):
            raise FeatureError(f"features must be [n, d] or [n, layers, dim], got shape {train.X.shape}")
        if self.loss not in ("ccc", "mse"):
            raise ConfigError(f"method {self.name!r}: unknown loss {self.loss!r}; use 'ccc' or 'mse'")
        if valid is not None:
            if valid.space != train.space:
                raise ConfigError(f"validation space {valid.space.name!r} differs from training space {train.space.name!r}")
            if valid.X.shape[1:] != train.X.shape[1:]:
                raise FeatureError(f"validation features have shape {valid.X.shape[1:]}, training features {train.X.shape[1:]}")
        else:
            train, valid = self._split_valid(train)
        self.space_ = train.space
        self.input_shape_ = tuple(int(s) for s in train.X.shape[1:])
        self.standardizer_ = Standardizer().fit(train.X, rows=np.unique(train.clip_index))
        self.seen_annotators_ = train.annotators
        if train.space.kind == "multilabel" and self.cb_beta:
            self.class_weights_ = class_balanced_weights(train.y, beta=float(self.cb_beta))
        else:
            self.class_weights_ = None
        return train, valid

    def _make_net(self, n_heads: int) -> HeadedNet:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.seed))
            return HeadedNet(self.input_shape_, self.space_.n_outputs, n_heads=n_heads,
                             hidden=tuple(int(h) for h in self.hidden), dropout=float(self.dropout))

    def _loss_fn(self, device: torch.device | str = "cpu"):
        w = None if self.class_weights_ is None else torch.as_tensor(self.class_weights_, device=device)
        return loss_for(self.space_, self.loss, w)

    def _targets(self, y: np.ndarray) -> np.ndarray:
        return training_targets(self.space_, y)

    def _tensor(self, X: np.ndarray) -> torch.Tensor:
        """Standardised features as a tensor (checks the shape against training)."""
        return torch.from_numpy(self.standardizer_.transform(X))

    def embed(self, X: np.ndarray) -> torch.Tensor:
        """Trunk output ``[n, hidden[-1]]`` for features ``X`` (eval mode, no gradients)."""
        self._check_fitted()
        self.net_.eval()
        with torch.no_grad():
            return self.net_.trunk(self._tensor(X))

    # ------------------------------------------------------------ predictions
    def _predictions(self, out: torch.Tensor | np.ndarray, activated: bool = False) -> Predictions:
        """Raw (or already activated) outputs ``[n, n_out]`` as :class:`Predictions`."""
        out = torch.as_tensor(out)
        a = out if activated else activate(self.space_.kind, out)
        a = a.detach().cpu().numpy().astype(np.float64)
        if self.space_.is_class:
            return Predictions(self.space_, proba=a)
        lo, hi = self.space_.scale
        return Predictions(self.space_, values=np.clip(from_unit(a, self.space_.scale), lo, hi))

    def _check_profile(self, profile: Profile | None) -> None:
        if profile is not None and profile.method != self.name:
            raise ConfigError(f"profile of {profile.annotator!r} was made by method {profile.method!r}, not {self.name!r}")

    def _check_support(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self._check_fitted()
        X = np.asarray(X, dtype=np.float32)
        y = np.asarray(y)
        if len(X) == 0:
            raise ConfigError("enrollment needs at least one rated clip")
        if len(X) != len(y):
            raise ConfigError(f"enrollment: {len(X)} feature rows but {len(y)} labels")
        if X.shape[1:] != self.input_shape_:
            raise FeatureError(f"enrollment features have shape {X.shape[1:]} per clip, the model expects {self.input_shape_}")
        sp = self.space_
        if sp.kind == "categorical":
            if y.ndim != 1 or (len(y) and (y.min() < 0 or y.max() >= len(sp.classes))):
                raise ConfigError(f"enrollment labels must be class indices 0..{len(sp.classes) - 1} of {list(sp.classes)}")
        elif y.ndim != 2 or y.shape[1] != sp.n_outputs:
            raise ConfigError(f"enrollment labels must have shape [K, {sp.n_outputs}] for space {sp.name!r}, got {y.shape}")
        return X, y

    # ----------------------------------------------------------- persistence
    def _extra_state(self) -> dict:
        """Small JSON-able fitted values of the method (saved in ``config.json``)."""
        return {}

    def _extra_arrays(self) -> dict[str, np.ndarray]:
        """Fitted arrays of the method beside the network (saved in safetensors)."""
        return {}

    def _restore(self, state: dict, arrays: dict[str, np.ndarray]) -> None:
        """Rebuild the fitted method from :meth:`_extra_state`/:meth:`_extra_arrays`."""

    def _n_heads(self) -> int:
        return 1

    def save(self, path: str | Path) -> Path:
        """Write the model folder (atomically: a failed save leaves no half-written folder)."""
        self._check_fitted()
        path = Path(path)
        cfg = {
            "format": FORMAT,
            "method": self.name,
            "params": self.get_params(),
            "space": self.space_.to_dict(),
            "input_shape": list(self.input_shape_),
            "seen_annotators": list(self.seen_annotators_),
            "feature_spec": self.feature_spec,
            "n_heads": self._n_heads(),
            "state": self._extra_state(),
            "versions": package_versions("perser", "torch", "numpy"),
        }
        arrays = state_to_numpy(self.net_, "net.")
        arrays.update({f"standardizer.{k}": v for k, v in self.standardizer_.to_dict().items()})
        if self.class_weights_ is not None:
            arrays["class_weights"] = self.class_weights_
        arrays.update(self._extra_arrays())
        with atomic_dir(path) as tmp:
            (tmp / "config.json").write_text(json.dumps(cfg, indent=2, default=_json_default), encoding="utf-8")
            save_tensors(arrays, tmp / "model.safetensors")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "NeuralPersonalizer":
        """Load a model folder written by :meth:`save`."""
        path = Path(path)
        cfg = read_config(path)
        if cls.name and cfg["method"] != cls.name:
            raise ConfigError(f"{path} holds a {cfg['method']!r} model, not {cls.name!r}")
        try:
            obj = cls(**cfg["params"])
        except TypeError as e:
            raise ConfigError(f"{path}/config.json: bad params for method {cfg['method']!r}: {e}") from None
        arrays = load_tensors(path / "model.safetensors")
        obj.space_ = LabelSpace.from_dict(cfg["space"])
        obj.input_shape_ = tuple(cfg["input_shape"])
        obj.seen_annotators_ = list(cfg["seen_annotators"])
        obj.feature_spec = cfg.get("feature_spec")
        obj.standardizer_ = Standardizer.from_dict({"mean": arrays["standardizer.mean"], "std": arrays["standardizer.std"]})
        obj.class_weights_ = arrays.get("class_weights")
        obj.net_ = obj._make_net(int(cfg.get("n_heads", 1)))
        load_numpy_state(obj.net_, arrays, "net.")
        obj.net_.eval()
        obj._restore(cfg.get("state", {}), arrays)
        return obj


def data_fingerprint(rs: RatingSet) -> str:
    """A digest of a rating set's content (features, clip index, annotators, labels, space)."""
    h = hashlib.sha1()
    for a in (rs.X, rs.clip_index, rs.y):
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    h.update("\x1f".join(map(str, rs.clip_ids)).encode("utf-8"))
    h.update("\x1f".join(map(str, rs.annotator_ids)).encode("utf-8"))
    h.update(json.dumps(rs.space.to_dict(), sort_keys=True, default=str).encode("utf-8"))
    return h.hexdigest()


def data_key(*sets: "RatingSet | None") -> str:
    """One digest of several rating sets (``None`` entries included as such)."""
    return hashlib.sha1("|".join("-" if rs is None else data_fingerprint(rs) for rs in sets).encode()).hexdigest()


def checkpoint_key(sets: tuple, settings: dict) -> str:
    """A checkpoint's identity: digests of its training (and validation) rating sets and of
    the fit settings, so that one written on other data or settings is refused, not resumed."""
    blob = json.dumps(settings, sort_keys=True, default=_json_default)
    return data_key(*sets) + ":" + hashlib.sha1(blob.encode("utf-8")).hexdigest()


def _plain(v):
    if isinstance(v, tuple):
        return list(v)
    return v
