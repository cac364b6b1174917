"""Networks shared by the personalization methods.

* :class:`Standardizer` — per-feature standardisation fitted on training features only
  (works on ``[n, d]`` vectors and ``[n, layers, dim]`` SSL arrays).
* :class:`Encoder` — the shared trunk: optional learned softmax weighting of SSL layers
  (the s3prl convention), then dense layers with ReLU and dropout.
* :class:`MultiHead` — ``H`` linear output heads evaluated in one batched product
  (one head per seen annotator; ``n_heads=1`` is a plain linear head).
* :class:`HeadedNet` — an :class:`Encoder` followed by a :class:`MultiHead`.

All parameters are plain :class:`torch.nn.Parameter` objects updated out of place, so
:func:`torch.func.functional_call` (and ``grad``/``vmap`` over it) works on every module.

Targets on a dimensional scale are learned on ``[-1, 1]``: :func:`to_unit` maps the
native ``(low, high)`` scale there and :func:`from_unit` maps predictions back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from perser.errors import ConfigError, FeatureError


#: rows per chunk when standardising (bounds the temporaries for large feature arrays)
CHUNK = 16384


# --------------------------------------------------------------- standardizer
@dataclass
class Standardizer:
    """Zero-mean, unit-variance scaling of features, fitted on training rows only.

    For ``[n, d]`` features ``mean``/``std`` have shape ``[d]``; for ``[n, L, D]`` SSL
    arrays they have shape ``[L, D]`` (each layer standardised on its own). Constant
    features get ``std = 1`` so they map to 0 rather than to NaN.

    Standardised values are clipped to ``[-clip, clip]``: ratio features such as
    eGeMAPS's ``*_stddevNorm`` (a deviation divided by a mean near 0) reach tens of
    standard deviations on a few clips, which would otherwise dominate a dense layer.
    """

    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    eps: float = 1e-6
    clip: float | None = 5.0

    def fit(self, X: np.ndarray, rows: np.ndarray | None = None) -> "Standardizer":
        """Fit on ``X`` (or on its rows ``rows``), in float64, reading ``CHUNK`` rows at a
        time: a memory-mapped ``X`` is never loaded whole."""
        X = np.asarray(X) if not isinstance(X, np.ndarray) else X
        idx = np.arange(len(X)) if rows is None else np.asarray(rows)
        if X.ndim not in (2, 3) or len(idx) == 0:
            raise FeatureError(f"Standardizer.fit: expected a non-empty [n, d] or [n, L, D] array, got shape {X.shape}")
        total = np.zeros(X.shape[1:], dtype=np.float64)
        for a in range(0, len(idx), CHUNK):
            part = np.asarray(X[idx[a : a + CHUNK]], dtype=np.float64)
            if not np.isfinite(part).all():
                r = int(idx[a + int(np.argwhere(~np.isfinite(part))[0, 0])])
                raise FeatureError(f"Standardizer.fit: non-finite feature value in row {r}")
            total += part.sum(axis=0)
        mean = total / len(idx)
        sq = np.zeros_like(total)
        for a in range(0, len(idx), CHUNK):
            sq += ((np.asarray(X[idx[a : a + CHUNK]], dtype=np.float64) - mean) ** 2).sum(axis=0)
        std = np.sqrt(sq / len(idx))
        self.mean = mean.astype(np.float32)
        self.std = np.where(std < self.eps, 1.0, std).astype(np.float32)
        return self

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one example (``(d,)`` or ``(L, D)``)."""
        if self.mean is None:
            raise ConfigError("Standardizer is not fitted")
        return tuple(self.mean.shape)

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Standardise ``X`` (any float dtype, memory-mapped or not) into a new float32
        array; raises :class:`FeatureError` on a shape mismatch."""
        X = X if hasattr(X, "shape") and hasattr(X, "dtype") else np.asarray(X, dtype=np.float32)
        if X.shape[1:] != self.shape:
            raise FeatureError(
                f"features have shape {tuple(X.shape[1:])} per clip but the model was trained on {self.shape}"
            )
        out = np.empty(X.shape, dtype=np.float32)  # filled CHUNK rows at a time: no full-size temporaries
        for a in range(0, len(X), CHUNK):
            z = out[a : a + CHUNK]
            np.subtract(np.asarray(X[a : a + CHUNK], dtype=np.float32), self.mean, out=z)
            np.divide(z, self.std, out=z)
            if self.clip is not None:
                np.clip(z, -self.clip, self.clip, out=z)
        return out

    def to_dict(self) -> dict[str, np.ndarray]:
        """Arrays ``{"mean", "std"}`` (for safetensors)."""
        self.shape  # noqa: B018 - raises when not fitted
        return {"mean": self.mean, "std": self.std}

    @classmethod
    def from_dict(cls, d: dict[str, np.ndarray]) -> "Standardizer":
        return cls(mean=np.asarray(d["mean"], dtype=np.float32), std=np.asarray(d["std"], dtype=np.float32))


# -------------------------------------------------------------------- encoder
class Encoder(nn.Module):
    """The shared trunk.

    Parameters
    ----------
    input_shape:
        Shape of one example: ``(d,)`` for feature vectors or ``(L, D)`` for SSL layer
        stacks. A 3-D batch ``[n, L, D]`` is reduced to ``[n, D]`` by softmax-normalised
        learned layer weights (``layer_logits``, shape ``[L]``, zeros at start: the mean
        of the layers).
    hidden:
        Widths of the dense layers (ReLU, dropout after each). ``()`` gives the identity
        trunk (a linear model when followed by a head).
    dropout:
        Dropout probability after each dense layer.
    """

    def __init__(self, input_shape: Sequence[int], hidden: Sequence[int] = (256, 256), dropout: float = 0.2):
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        self.hidden = tuple(int(h) for h in hidden)
        self.dropout = float(dropout)
        if len(self.input_shape) == 2:
            self.layer_logits = nn.Parameter(torch.zeros(self.input_shape[0]))
            d = self.input_shape[1]
        elif len(self.input_shape) == 1:
            self.layer_logits = None
            d = self.input_shape[0]
        else:
            raise ConfigError(f"Encoder: input_shape must be (d,) or (layers, dim), got {self.input_shape}")
        layers: list[nn.Module] = []
        for h in self.hidden:
            layers += [nn.Linear(d, h), nn.ReLU(), nn.Dropout(self.dropout)]
            d = h
        self.layers = nn.Sequential(*layers)
        self.out_dim = d

    def layer_weights(self) -> torch.Tensor | None:
        """Softmax weights over SSL layers (``None`` for vector input)."""
        return None if self.layer_logits is None else torch.softmax(self.layer_logits, dim=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1:] != self.input_shape:
            raise FeatureError(f"Encoder: input has shape {tuple(x.shape[1:])} per clip, expected {self.input_shape}")
        if self.layer_logits is not None:
            x = torch.einsum("nld,l->nd", x, torch.softmax(self.layer_logits, dim=0))
        return self.layers(x)


# ----------------------------------------------------------------- multi-head
class _GatherRows(torch.autograd.Function):
    """``weight[rows]`` for *unique* ``rows`` whose gradient is a sparse COO tensor
    (``sparse_dim=1``: only the gathered rows, the rest of ``weight`` implied zero), as
    :func:`torch.nn.functional.embedding` with ``sparse=True`` gives for 2-D tables."""

    @staticmethod
    def forward(ctx, weight: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(rows)
        ctx.shape = weight.shape
        return weight.index_select(0, rows)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (rows,) = ctx.saved_tensors
        return torch.sparse_coo_tensor(rows[None], grad, ctx.shape, check_invariants=False), None


def gather_rows(weight: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``weight[rows]`` (``rows`` sorted and unique) with a row-sparse gradient, so that a
    step on a few rows of a large table costs the rows, not the table."""
    return _GatherRows.apply(weight, rows)


class MultiHead(nn.Module):
    """``n_heads`` linear heads evaluated in one batched product.

    Parameters ``weight [H, in_dim, n_out]`` and ``bias [H, n_out]``, each head
    initialised like :class:`torch.nn.Linear` (uniform in ``±1/sqrt(in_dim)``).

    ``sparse_grad = True`` makes :meth:`forward_heads` read only the heads named in
    ``idx`` and give ``weight``/``bias`` row-sparse gradients (see :func:`gather_rows`),
    for an optimiser that updates only those rows
    (:class:`~perser.methods.training.LazyAdam`): a training step then costs the heads
    of the batch, not all ``H``.
    """

    def __init__(self, in_dim: int, n_heads: int, n_out: int):
        super().__init__()
        if n_heads < 1 or n_out < 1 or in_dim < 1:
            raise ConfigError(f"MultiHead: need positive sizes, got in_dim={in_dim}, n_heads={n_heads}, n_out={n_out}")
        self.in_dim, self.n_heads, self.n_out = int(in_dim), int(n_heads), int(n_out)
        bound = 1.0 / math.sqrt(self.in_dim)
        self.weight = nn.Parameter(torch.empty(self.n_heads, self.in_dim, self.n_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(self.n_heads, self.n_out).uniform_(-bound, bound))
        self.sparse_grad = False

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """All heads: ``[n, in_dim] -> [n, H, n_out]``."""
        return torch.einsum("ni,hio->nho", z, self.weight) + self.bias

    def forward_heads(self, z: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Row ``i`` through head ``idx[i]``: ``[n, in_dim], [n] -> [n, n_out]``."""
        if self.sparse_grad:
            u, inv = torch.unique(idx, return_inverse=True)
            w, b = self.gather(u)
            return torch.einsum("ni,nio->no", z, w[inv]) + b[inv]
        return torch.einsum("ni,nio->no", z, self.weight[idx]) + self.bias[idx]

    def gather(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Weights ``[len(rows), in_dim, n_out]`` and biases of heads ``rows`` (sorted,
        unique), with row-sparse gradients."""
        return gather_rows(self.weight, rows), gather_rows(self.bias, rows)

    def forward_one(self, z: torch.Tensor, h: int = 0) -> torch.Tensor:
        """Every row through head ``h``: ``[n, in_dim] -> [n, n_out]``."""
        return z @ self.weight[h] + self.bias[h]


class HeadedNet(nn.Module):
    """An :class:`Encoder` (``trunk``) followed by a :class:`MultiHead` (``head``)."""

    def __init__(
        self,
        input_shape: Sequence[int],
        n_out: int,
        n_heads: int = 1,
        hidden: Sequence[int] = (256, 256),
        dropout: float = 0.2,
    ):
        super().__init__()
        self.trunk = Encoder(input_shape, hidden=hidden, dropout=dropout)
        self.head = MultiHead(self.trunk.out_dim, n_heads, n_out)

    def forward(self, x: torch.Tensor, idx: torch.Tensor | None = None, rows: torch.Tensor | None = None) -> torch.Tensor:
        """``[n, n_out]`` through head ``idx[i]`` per row, or head 0 when ``idx`` is None
        and there is a single head; ``[n, H, n_out]`` when ``idx`` is None otherwise.

        ``rows``: output row ``i`` is computed from input row ``rows[i]`` (the trunk runs
        once per input row, e.g. once per clip for all ratings of the clip)."""
        z = self.trunk(x)
        if rows is not None:
            z = z[rows]
        if idx is not None:
            return self.head.forward_heads(z, idx)
        if self.head.n_heads == 1:
            return self.head.forward_one(z, 0)
        return self.head(z)


# ------------------------------------------------------------ output mapping
def to_unit(y: np.ndarray | torch.Tensor, scale: tuple[float, float]):
    """Map native-scale values to ``[-1, 1]``."""
    lo, hi = scale
    return 2.0 * (y - lo) / (hi - lo) - 1.0


def from_unit(y: np.ndarray | torch.Tensor, scale: tuple[float, float]):
    """Map ``[-1, 1]`` values back to the native scale."""
    lo, hi = scale
    return (y + 1.0) * 0.5 * (hi - lo) + lo


def activate(kind: str, out: torch.Tensor) -> torch.Tensor:
    """Raw outputs to probabilities (softmax / sigmoid over the last axis) or unit values."""
    if kind == "categorical":
        return torch.softmax(out, dim=-1)
    if kind == "multilabel":
        return torch.sigmoid(out)
    return out


def state_to_numpy(module: nn.Module, prefix: str = "") -> dict[str, np.ndarray]:
    """A module's parameters and buffers as numpy arrays (for safetensors)."""
    return {prefix + k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def load_numpy_state(module: nn.Module, arrays: dict[str, np.ndarray], prefix: str = "") -> None:
    """Load arrays written by :func:`state_to_numpy`; a missing or misshapen one is an error."""
    state = {}
    for k, v in module.state_dict().items():
        a = arrays.get(prefix + k)
        if a is None:
            raise ConfigError(f"saved weights lack tensor {prefix + k!r}")
        if tuple(a.shape) != tuple(v.shape):
            raise ConfigError(f"saved tensor {prefix + k!r} has shape {tuple(a.shape)}, model expects {tuple(v.shape)}")
        state[k] = torch.from_numpy(np.array(a, copy=True))
    module.load_state_dict(state)
