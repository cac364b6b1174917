"""A small, reusable training loop: Adam, seeded mini-batches, early stopping,
checkpoints with resume after a kill, and data-parallel training under ``torchrun``.

Two layers: :func:`epoch_loop` is the loop over epochs that every trainer in perser
shares — checkpoint resume (including the recovery of the old checkpoint after a kill
between the two renames of an atomic swap), the fingerprint check, patience with
``min_delta``, the progress bar; :func:`fit_model` runs mini-batch Adam epochs inside
it, and ``meta``'s meta-training (:mod:`perser.methods.meta`) runs meta-batches inside it.

The loop knows nothing about label spaces: a method passes the number of training
items and a closure ``batch_loss(module, rows) -> loss`` computing the mean loss of
those items (rows of *its* training table: clips, or ratings), and optionally
``valid_loss(module) -> float`` (lower is better) for early stopping.

Determinism: the shuffling of epoch ``e`` is ``default_rng([seed, e])`` and the torch
random state (dropout) is re-seeded from ``(seed, e, rank)`` at the start of each epoch,
inside :func:`torch.random.fork_rng` so the caller's random state is left alone. An
interrupted run resumed from its checkpoint therefore reproduces the uninterrupted one.

Distributed: when a process group is up (:mod:`perser.methods.distributed`), the model
is wrapped in :class:`torch.nn.parallel.DistributedDataParallel`; every global batch is
split into one contiguous shard per rank and each rank's loss is scaled by
``len(shard) * world / len(batch)``, so the averaged gradient equals the single-process
gradient of the whole batch for losses that are means over items (cross-entropy,
MSE; CCC is then computed per shard).

Checkpoints (``checkpoint_dir``): after each epoch rank 0 atomically replaces the
folder ``<checkpoint_dir>/last`` holding ``state.safetensors`` (model, best model, Adam
moments) and ``state.json`` (epoch, history, early-stopping state, optimizer
hyper-parameters, a fingerprint of the settings and, with ``TrainConfig.data_key``, of
the training data). No pickle is used.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Protocol

import numpy as np
import torch
from torch import nn

from perser.errors import ConfigError
from perser.methods import distributed
from perser._io import atomic_dir, json_default as _json_default, jsonable, progress_bar
from perser.methods.persist import load_tensors, save_tensors

BatchLoss = Callable[[nn.Module, np.ndarray], torch.Tensor]
ValidLoss = Callable[[nn.Module], float]


@dataclass
class TrainConfig:
    """Settings of :func:`fit_model`.

    ``patience``: stop after this many epochs without a better validation loss
    (``0``/``None``: run all ``epochs``). ``min_delta``: the improvement that counts.
    ``data_key``: a digest of the training data, part of the checkpoint's fingerprint,
    so that a checkpoint written on other data of the same size is refused instead of
    resumed. ``optimizer``: ``"adam"`` (:class:`torch.optim.Adam`), ``"lazy-adam"``
    (:class:`LazyAdam`: parameters with row-sparse gradients are updated only in the
    rows a step touched) or ``"sgd"`` (:class:`torch.optim.SGD` with ``momentum``).
    ``plateau_factor``: with a validation loss, multiply the learning rate by it after
    ``plateau_patience`` epochs without improvement (``ReduceLROnPlateau``; None: off). ``unit``: what an item is, for the throughput on the progress bar.
    ``precision``: ``"fp32"``; ``"bf16"``: the batch loss's forward pass under
    :func:`torch.autocast` with bfloat16 (matrix products in bfloat16, reductions,
    softmax and losses in float32; weights, gradients and Adam stay float32, so no loss
    scaling is needed); ``"auto"``: bf16 on a CUDA device that supports it, else fp32.
    """

    epochs: int = 50
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int | None = 5
    min_delta: float = 1e-5
    seed: int = 0
    checkpoint_dir: str | Path | None = None
    progress: bool = True
    description: str = "training"
    data_key: str | None = None
    optimizer: str = "adam"
    momentum: float = 0.9
    plateau_factor: float | None = None
    plateau_patience: int = 5
    unit: str = "items"
    precision: str = "auto"

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {self.batch_size}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ConfigError(f"precision must be 'auto', 'fp32' or 'bf16', got {self.precision!r}")
        if self.optimizer not in ("adam", "lazy-adam", "sgd"):
            raise ConfigError(f"optimizer must be 'adam', 'lazy-adam' or 'sgd', got {self.optimizer!r}")


@dataclass
class TrainResult:
    """What :func:`fit_model` did."""

    epochs_run: int
    best_epoch: int
    best_score: float | None
    history: list[dict] = field(default_factory=list)
    resumed_from: int | None = None
    stopped_early: bool = False
    #: wall-clock seconds of each epoch run by this call (not of resumed ones)
    epoch_seconds: list[float] = field(default_factory=list)
    #: CPU seconds of this process (all threads) in each of those epochs
    epoch_cpu_seconds: list[float] = field(default_factory=list)


def batch_plan(n: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """The shuffled mini-batches of epoch ``epoch``.

    A last batch with fewer than half of ``batch_size`` rows is merged into the one
    before it, so no step is taken on a handful of rows; the plan does not depend on
    the number of processes.
    """
    perm = np.random.default_rng([seed, epoch]).permutation(n)
    batches = [perm[i : i + batch_size] for i in range(0, n, batch_size)]
    if len(batches) > 1 and 2 * len(batches[-1]) < batch_size:
        last = batches.pop()
        batches[-1] = np.concatenate([batches[-1], last])
    return batches


def _fingerprint(cfg: TrainConfig, n: int, model: nn.Module) -> dict:
    data = {} if cfg.data_key is None else {"data": cfg.data_key}
    if cfg.optimizer != "adam":
        data["optimizer"] = cfg.optimizer
    if cfg.optimizer == "sgd":
        data["momentum"] = cfg.momentum
    if cfg.plateau_factor is not None:
        data["plateau"] = [cfg.plateau_factor, cfg.plateau_patience]
    return {
        **data,
        "n_items": int(n),
        "batch_size": cfg.batch_size,
        "lr": cfg.lr,
        "weight_decay": cfg.weight_decay,
        "seed": cfg.seed,
        "world_size": distributed.world_size(),
        "params": {k: list(v.shape) for k, v in model.state_dict().items()},
    }


# ------------------------------------------------------------------- lazy Adam
class LazyAdam(torch.optim.Adam):
    """Adam (Kingma & Ba 2015) that updates the parameters with row-sparse gradients
    lazily: only the rows a step touched.

    A dense gradient gets :class:`torch.optim.Adam`'s update (this class is one: the
    dense parameters go through its ``step``, with the fused kernel where available). A sparse COO gradient with
    ``sparse_dim=1`` (from :func:`~perser.methods.nets.gather_rows`) updates only its
    rows: their moments, their own step count (the bias correction of a row counts the
    steps that touched it) and their L2 ``weight_decay``. Rows a step did not touch keep
    their weights *and* moments, where dense Adam would move them on their decaying
    momentum: that difference is by design (it is what makes a step cost the batch's
    rows, not the table), as in TensorFlow's ``LazyAdam`` and
    :class:`torch.optim.SparseAdam`. A row touched by every step follows dense Adam
    (to float rounding).

    State of a sparse parameter: ``step`` (``[rows]`` float32), ``exp_avg``,
    ``exp_avg_sq``; plain tensors, so checkpoints hold them as they are.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        params = list(params)
        try:  # the fused kernel (CPU and CUDA) is about 3x faster than the per-tensor loop
            super().__init__(params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, fused=True)
        except (RuntimeError, ValueError):
            super().__init__(params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)

    @torch.no_grad()
    def step(self, closure=None):
        hidden = []
        for group in self.param_groups:
            lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None or not p.grad.is_sparse:
                    continue
                st = self.state[p]
                if not st:
                    st["step"] = torch.zeros(p.shape[:1], dtype=torch.float32, device=p.device)
                    st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    st["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                elif st["step"].device != p.device:  # load_state_dict leaves "step" where it was saved
                    st["step"] = st["step"].to(p.device)
                shape = (-1,) + (1,) * (p.dim() - 1)
                rows, gv = _rows_and_values(p.grad)
                if wd:
                    gv = gv + wd * p.index_select(0, rows)
                m = st["exp_avg"].index_select(0, rows).lerp_(gv, 1 - b1)
                v = st["exp_avg_sq"].index_select(0, rows).mul_(b2).addcmul_(gv, gv, value=1 - b2)
                t = st["step"].index_select(0, rows) + 1
                st["exp_avg"].index_copy_(0, rows, m)
                st["exp_avg_sq"].index_copy_(0, rows, v)
                st["step"].index_copy_(0, rows, t)
                size, root = _bias_corrections(t, lr, b1, b2, shape, p.dtype)
                p.index_add_(0, rows, m.mul_(size).div_(v.sqrt_().div_(root).add_(eps)), alpha=-1.0)
                hidden.append((p, p.grad))
                p.grad = None
        try:
            return super().step(closure)
        finally:
            for p, g in hidden:
                p.grad = g


def _rows_and_values(g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Distinct rows and their summed values of a row-sparse COO gradient, without
    :meth:`~torch.Tensor.coalesce`'s sort of the values when the rows are already distinct
    (one gathered block per step, the usual case)."""
    if g.is_coalesced():
        return g.indices()[0], g.values()
    idx, vals = g._indices()[0], g._values()
    rows, inv = torch.unique(idx, return_inverse=True)
    if len(rows) == len(idx):
        return idx, vals
    return rows, torch.zeros((len(rows), *vals.shape[1:]), dtype=vals.dtype, device=vals.device).index_add_(0, inv, vals)


def _bias_corrections(t: torch.Tensor, lr: float, b1: float, b2: float, shape, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Adam's step size ``lr / (1 - b1^t)`` and ``sqrt(1 - b2^t)`` per row, computed in
    float64 (as :class:`torch.optim.Adam` does with Python floats)."""
    t = t.double()
    return (lr / (1 - b1 ** t)).to(dtype).view(shape), (1 - b2 ** t).sqrt().to(dtype).view(shape)


def make_optimizer(name: str, params, lr: float, weight_decay: float, momentum: float = 0.9) -> torch.optim.Optimizer:
    """``"adam"``: :class:`torch.optim.Adam`; ``"lazy-adam"``: :class:`LazyAdam`;
    ``"sgd"``: :class:`torch.optim.SGD` with ``momentum``."""
    if name == "lazy-adam":
        return LazyAdam(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


def _sparse_params(model: nn.Module) -> list[str]:
    """Names of the parameters of sub-modules with ``sparse_grad = True`` (row-sparse gradients)."""
    return [f"{m}.{n}" if m else n for m, mod in model.named_modules() if getattr(mod, "sparse_grad", False)
            for n, _ in mod.named_parameters(recurse=False)]


# --------------------------------------------------------------- optimiser state
def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict]]:
    sd = opt.state_dict()
    tensors = {}
    for pid, st in sd["state"].items():
        for key, val in st.items():
            tensors[f"opt.{pid}.{key}"] = torch.as_tensor(val).detach().cpu().clone()
    groups = [{k: v for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, groups


def _load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list[dict]) -> None:
    state: dict[int, dict] = {}
    for name, t in tensors.items():
        if name.startswith("opt."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = t
    opt.load_state_dict({"state": state, "param_groups": groups})


class _ModelTrainee:
    """A module and its optimiser as a :class:`Trainee`."""

    def __init__(self, model: nn.Module, opt: torch.optim.Optimizer, config: dict, sched=None):
        self.model, self.opt, self.config, self.sched = model, opt, config, sched

    def state(self) -> tuple[dict[str, torch.Tensor], dict]:
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        opt_tensors, groups = _optimizer_tensors(self.opt)
        extra = {"scheduler": _scheduler_state(self.sched)} if self.sched is not None else {}
        return {**tensors, **opt_tensors}, {"param_groups": groups, "config": self.config, **extra}

    def load_state(self, tensors: dict[str, torch.Tensor], doc: dict) -> None:
        self.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        _load_optimizer(self.opt, tensors, doc["param_groups"])
        if self.sched is not None and doc.get("scheduler"):
            self.sched.load_state_dict(doc["scheduler"])

    def snapshot(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}


# --------------------------------------------------------------------- the epoch loop
class Trainee(Protocol):
    """What :func:`epoch_loop` needs of the thing it trains."""

    def state(self) -> tuple[dict[str, torch.Tensor], dict]:
        """The current weights and optimiser state as named tensors, and JSON-able extras
        (both go into the checkpoint; tensor names must not start with ``best.``)."""

    def load_state(self, tensors: dict[str, torch.Tensor], doc: dict) -> None:
        """Restore what :meth:`state` returned (``doc`` is the checkpoint's ``state.json``)."""

    def snapshot(self) -> dict[str, torch.Tensor]:
        """A copy of the weights, kept as the best epoch's."""


@dataclass
class LoopResult:
    """What :func:`epoch_loop` did. ``best`` is the best epoch's :meth:`Trainee.snapshot`,
    or ``None`` when there is no validation loss (the last weights are the result)."""

    history: list[dict]
    best: dict[str, torch.Tensor] | None
    best_score: float | None
    best_epoch: int
    resumed_from: int | None = None
    stopped_early: bool = False
    epoch_seconds: list[float] = field(default_factory=list)
    epoch_cpu_seconds: list[float] = field(default_factory=list)


def find_checkpoint(path: Path) -> Path | None:
    """The checkpoint folder ``path``, or the old copy that :func:`atomic_dir` leaves at
    ``.<name>.old`` when a process is killed between its two renames; ``None`` if neither
    holds a ``state.json``."""
    if (path / "state.json").is_file():
        return path
    old = path.with_name(f".{path.name}.old")
    if (old / "state.json").is_file():
        return old
    return None


_find_checkpoint = find_checkpoint  # older name, used by tests of killed training runs


def epoch_loop(
    trainee: Trainee,
    run_epoch: Callable[[int], dict],
    *,
    epochs: int,
    valid_loss: Callable[[], float] | None = None,
    patience: int | None = None,
    min_delta: float = 1e-5,
    checkpoint: Path | None = None,
    fingerprint: dict | None = None,
    progress: bool = True,
    description: str = "training",
    items: int | None = None,
    unit: str = "items",
) -> LoopResult:
    """Run epochs with early stopping, a progress bar and a checkpoint after every epoch.

    Shared by :func:`fit_model` and ``meta``'s meta-training.

    Parameters
    ----------
    trainee:
        Gives and takes its state for checkpoints and snapshots its best weights.
    run_epoch:
        ``run_epoch(epoch) -> record`` trains one epoch and returns its history record
        (at least ``train_loss``); ``epoch`` and, with ``valid_loss``, ``valid_loss``
        are added here.
    epochs:
        Train epochs ``0 .. epochs - 1`` (less those already in the checkpoint).
    valid_loss:
        ``valid_loss() -> float``, lower is better, after every epoch; drives early
        stopping and the choice of the best epoch. The caller sets eval mode or
        ``torch.no_grad`` as it needs.
    patience, min_delta:
        Stop after ``patience`` epochs in a row whose validation loss is not below the
        best by more than ``min_delta`` (``0``/``None``: run all epochs).
    checkpoint:
        The folder rank 0 replaces atomically after each epoch (``state.safetensors``:
        :meth:`Trainee.state` and the best snapshot as ``best.*``; ``state.json``: epoch,
        history, early-stopping state, ``fingerprint``). An existing checkpoint — or the
        old copy a kill between :func:`atomic_dir`'s renames leaves — is resumed: a run
        that stopped early stays stopped, one that ran out of epochs continues when
        ``epochs`` is larger. A checkpoint with another ``fingerprint`` is refused.
    progress, description:
        Show a rich progress bar (rank 0) labelled ``description``.
    items, unit:
        Items per epoch and their name: the bar shows the throughput (``unit``/s) of the
        last epoch. Every epoch's wall-clock time is in :attr:`LoopResult.epoch_seconds`.
    """
    fp = json.loads(json.dumps(fingerprint or {}, default=_json_default))
    history: list[dict] = []
    best: dict[str, torch.Tensor] | None = None
    best_score: float | None = None
    best_epoch, bad, start, resumed, stopped = -1, 0, 0, None, False
    found = find_checkpoint(checkpoint) if checkpoint is not None else None
    if found is not None:
        doc = json.loads((found / "state.json").read_text(encoding="utf-8"))
        if doc.get("fingerprint") != fp:
            raise ConfigError(
                f"checkpoint {found} was written with other settings or data; "
                "delete it or choose another checkpoint folder"
            )
        arrays = {k: torch.from_numpy(np.array(v, copy=True)) for k, v in load_tensors(found / "state.safetensors").items()}
        trainee.load_state({k: v for k, v in arrays.items() if not k.startswith("best.")}, doc)
        best = {k[5:]: v for k, v in arrays.items() if k.startswith("best.")} or None
        history, best_score, best_epoch, bad = doc["history"], doc["best_score"], doc["best_epoch"], doc["bad"]
        start = resumed = int(doc["epoch"]) + 1
        stopped = bool(doc.get("stopped_early", False))
    finished = stopped or start >= epochs

    bar = None
    if progress and distributed.is_main() and not finished:
        from rich.progress import TextColumn

        bar = progress_bar(TextColumn("{task.fields[info]}"), bold=True, transient=True)
        task = bar.add_task(description, total=epochs, completed=start, info="")
        bar.start()
    try:
        epoch, seconds, cpu = start, [], []
        while not finished:
            t0, c0 = time.perf_counter(), time.process_time()
            rec = {"epoch": epoch, **run_epoch(epoch)}
            seconds.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            if valid_loss is not None:
                score = float(valid_loss())
                rec["valid_loss"] = score
                if best_score is None or score < best_score - min_delta:
                    best_score, best_epoch, bad, best = score, epoch, 0, trainee.snapshot()
                else:
                    bad += 1
                stopped = bool(patience) and bad >= patience
            else:
                best_epoch = epoch
            history.append(rec)
            finished = stopped or epoch + 1 >= epochs
            if checkpoint is not None and distributed.is_main():
                tensors, extra = trainee.state()
                if best is not None:
                    tensors = {**tensors, **{f"best.{k}": v for k, v in best.items()}}
                with atomic_dir(checkpoint) as tmp:
                    save_tensors({k: v.detach().cpu().numpy() for k, v in tensors.items()}, tmp / "state.safetensors")
                    (tmp / "state.json").write_text(json.dumps({
                        **extra, "epoch": epoch, "history": history, "best_score": best_score,
                        "best_epoch": best_epoch, "bad": bad, "finished": finished, "stopped_early": stopped,
                        "fingerprint": fp,
                    }, indent=1, default=_json_default), encoding="utf-8")
            distributed.barrier()
            if bar is not None:
                info = f"loss {rec['train_loss']:.4f}" + (f"  valid {rec['valid_loss']:.4f}" if "valid_loss" in rec else "")
                if items:
                    info += f"  {items / max(seconds[-1], 1e-9):,.0f} {unit}/s"
                bar.update(task, completed=epoch + 1, info=info)
            epoch += 1
    finally:
        if bar is not None:
            bar.stop()
    return LoopResult(
        history=history, best=best,
        best_score=None if best_score is None or math.isnan(best_score) else best_score,
        best_epoch=best_epoch, resumed_from=resumed, stopped_early=stopped, epoch_seconds=seconds,
        epoch_cpu_seconds=cpu,
    )


# ------------------------------------------------------------------ fit_model
def fit_model(
    model: nn.Module,
    n_train: int,
    batch_loss: BatchLoss,
    valid_loss: ValidLoss | None = None,
    config: TrainConfig | None = None,
    params: Iterable[nn.Parameter] | None = None,
) -> TrainResult:
    """Train ``model`` in place and leave it holding its best weights.

    Parameters
    ----------
    model:
        The module to train (its parameters are updated in place).
    n_train:
        Number of training items; ``batch_loss`` receives arrays of item indices.
    batch_loss:
        ``batch_loss(module, rows) -> scalar tensor``, the mean loss over items ``rows``.
        Call ``module`` (which may be a DistributedDataParallel wrapper), not ``model``.
    valid_loss:
        ``valid_loss(model) -> float``, lower is better, called in eval mode without
        gradients after every epoch; drives early stopping and the choice of the best
        epoch. Without it the last epoch's weights are kept.
    config:
        A :class:`TrainConfig`.
    params:
        Parameters to optimise (default: all that require gradients).

    Returns
    -------
    TrainResult
    """
    cfg = config or TrainConfig()
    if n_train < 1:
        raise ConfigError("nothing to train on: the training set is empty")
    world, rank = distributed.world_size(), distributed.rank()
    if n_train < world or (n_train > cfg.batch_size and (cfg.batch_size + 1) // 2 < world):
        raise ConfigError(
            f"{n_train} training items in batches of {cfg.batch_size} cannot give each of {world} processes "
            f"a row in every batch; use batch_size >= {2 * world}"
        )
    params = [p for p in (params if params is not None else model.parameters()) if p.requires_grad]
    opt = make_optimizer(cfg.optimizer, params, cfg.lr, cfg.weight_decay, cfg.momentum)
    sched = None
    if cfg.plateau_factor is not None and valid_loss is not None:
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=cfg.plateau_factor,
                                                           patience=cfg.plateau_patience)
    trainee = _ModelTrainee(model, opt, jsonable(asdict(cfg)), sched)

    module: nn.Module = model
    dev = next(iter(model.parameters())).device
    sparse = _sparse_params(model) if cfg.optimizer == "lazy-adam" else []
    if world > 1:
        # row-sparse parameters (per-annotator heads) stay out of DDP's dense buckets;
        # their gradients are summed over the rows some rank touched (all_reduce_rows)
        nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, sparse)
        module = nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    sparse_tensors = [p for n, p in model.named_parameters() if n in set(sparse)]
    rng_devices = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else []

    amp = autocast_dtype(cfg.precision, dev)

    def run_epoch(epoch: int) -> dict:
        with torch.random.fork_rng(devices=rng_devices):
            torch.manual_seed(int(np.random.default_rng([cfg.seed, epoch, rank]).integers(2**62)))
            model.train()
            total, count = 0.0, 0
            for batch in batch_plan(n_train, cfg.batch_size, cfg.seed, epoch):
                rows = distributed.shard(batch, rank, world)
                opt.zero_grad(set_to_none=True)
                if amp is None:
                    loss = batch_loss(module, rows)
                else:
                    with torch.autocast(dev.type, dtype=amp):
                        loss = batch_loss(module, rows)
                    loss = loss.float()
                if not torch.isfinite(loss):
                    raise ConfigError(f"{cfg.description}: the loss became {loss.item()} in epoch {epoch}; lower lr")
                scale = len(rows) * world / len(batch)
                (loss * scale).backward()
                if world > 1:
                    for p in sparse_tensors:  # DDP averages the dense gradients; these are averaged here
                        p.grad = distributed.all_reduce_rows(p.grad, p.shape, p.device) / world
                opt.step()
                total += loss.item() * len(rows)
                count += len(rows)
        rec = {"train_loss": total / max(count, 1)}
        if sched is not None:
            rec["lr"] = float(opt.param_groups[0]["lr"])  # the rate this epoch trained with
        return rec

    def valid() -> float:
        model.eval()
        with torch.no_grad():
            score = float(valid_loss(model))
        if sched is not None:
            sched.step(score)
        return score

    res = epoch_loop(
        trainee, run_epoch, epochs=cfg.epochs, valid_loss=None if valid_loss is None else valid,
        patience=cfg.patience, min_delta=cfg.min_delta, checkpoint=_ckpt_path(cfg),
        fingerprint=_fingerprint(cfg, n_train, model), progress=cfg.progress, description=cfg.description,
        items=n_train, unit=cfg.unit,
    )
    if res.best is not None:
        model.load_state_dict(res.best)
    model.eval()
    return TrainResult(
        epochs_run=len(res.history), best_epoch=res.best_epoch, best_score=res.best_score,
        history=res.history, resumed_from=res.resumed_from, stopped_early=res.stopped_early,
        epoch_seconds=res.epoch_seconds, epoch_cpu_seconds=res.epoch_cpu_seconds,
    )


def autocast_dtype(precision: str, dev: torch.device) -> torch.dtype | None:
    """The :func:`torch.autocast` dtype of ``precision`` on ``dev`` (``None``: float32)."""
    if precision == "bf16":
        return torch.bfloat16
    if precision == "auto" and dev.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def _ckpt_path(cfg: TrainConfig) -> Path | None:
    return None if cfg.checkpoint_dir is None else Path(cfg.checkpoint_dir) / "last"


def _scheduler_state(sched) -> dict:
    """``ReduceLROnPlateau``'s counters (plain numbers; infinities are written as JSON's Infinity)."""
    return {k: v for k, v in sched.state_dict().items() if isinstance(v, (int, float, str, bool, list, type(None)))}
