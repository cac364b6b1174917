"""Functional MAML++ over a parameter dict, written with :mod:`torch.func`.

Model-agnostic meta-learning (Finn et al. 2017) with the MAML++ ingredients of
Antoniou, Edwards & Storkey, "How to train your MAML" (ICLR 2019):

* **LSLR** — learned inner learning rates, one per parameter tensor ("layer") and
  per inner step, meta-learned with the initial parameters;
* **derivative-order annealing** — first-order meta-gradients for the first
  ``first_order_epochs`` epochs, second-order ones afterwards;
* **multi-step loss** (MSL) — the task loss is a weighted sum of the query losses
  after every inner step, the weights annealed towards the last step over
  ``msl_epochs`` epochs;
* **cosine annealing** of the outer (meta) learning rate.

Nothing is deep-copied: the adapted network is a *function* of a parameter dict,
``fn(params, x) -> outputs`` (typically :func:`torch.func.functional_call` of an
``nn.Module``), the inner loop uses :func:`torch.func.grad`, the tasks of a
meta-batch run in one :func:`torch.func.vmap`, and the meta-gradient is
:func:`torch.func.grad_and_value` of the meta-batch loss, in the style of
PyTorch's ``torch.func`` MAML example.

A meta-batch is a :class:`TaskBatch` of equally sized tasks: ``xs [T, K, ...]``,
``ys [T, K, ...]`` (support) and ``xq [T, Q, ...]``, ``yq [T, Q, ...]`` (query).
Combined-set meta-training (Meta-PerSER) passes the same tensors as support and
query.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import Tensor
from torch.func import functional_call, grad, grad_and_value, vmap

Params = dict[str, Tensor]
#: ``fn(params, x) -> outputs``
HeadFn = Callable[[Params, Tensor], Tensor]
#: ``loss_fn(outputs, targets) -> scalar``
LossFn = Callable[[Tensor, Tensor], Tensor]


@dataclass
class TaskBatch:
    """Equally sized tasks stacked along a leading task dimension."""

    xs: Tensor
    ys: Tensor
    xq: Tensor
    yq: Tensor

    def __len__(self) -> int:
        return int(self.xs.shape[0])

    def task(self, i: int | slice) -> "TaskBatch":
        """Tasks ``i`` (a slice keeps the task dimension; an int gives a batch of one)."""
        sl = slice(i, i + 1) if isinstance(i, int) else i
        return TaskBatch(self.xs[sl], self.ys[sl], self.xq[sl], self.yq[sl])


def module_fn(module: torch.nn.Module) -> HeadFn:
    """``fn(params, x)`` running ``module`` with ``params`` (buffers taken from the module)."""
    buffers = dict(module.named_buffers())

    def fn(params: Params, x: Tensor) -> Tensor:
        return functional_call(module, (params, buffers), (x,))

    return fn


def msl_weights(n_steps: int, epoch: int, msl_epochs: int) -> Tensor:
    """Multi-step-loss importance of the query loss after each inner step.

    Uniform at epoch 0; the non-final weights decay linearly by ``1 / (n_steps *
    msl_epochs)`` per epoch down to ``0.03 / n_steps`` while the final weight takes
    up the rest (MAML++ reference implementation). From epoch ``msl_epochs`` on
    (or when ``msl_epochs <= 0``) only the last step counts.
    """
    if n_steps < 1:
        raise ValueError("n_steps must be at least 1")
    w = np.zeros(n_steps, dtype=np.float64)
    if msl_epochs <= 0 or epoch >= msl_epochs:
        w[-1] = 1.0
        return torch.as_tensor(w, dtype=torch.float32)
    w[:] = 1.0 / n_steps
    decay = 1.0 / n_steps / msl_epochs
    floor = 0.03 / n_steps
    w[:-1] = np.maximum(w[:-1] - epoch * decay, floor)
    w[-1] = min(w[-1] + epoch * (n_steps - 1) * decay, 1.0 - (n_steps - 1) * floor)
    return torch.as_tensor(w, dtype=torch.float32)


def inner_loop(
    fn: HeadFn,
    loss_fn: LossFn,
    params: Params,
    lrs: Params,
    xs: Tensor,
    ys: Tensor,
    n_steps: int,
    first_order: bool = False,
    xq: Tensor | None = None,
    yq: Tensor | None = None,
) -> tuple[Params, Tensor | None]:
    """Adapt ``params`` to one task's support set with per-layer, per-step learning rates.

    Step ``s`` updates every tensor ``k`` as ``θ_k ← θ_k − lrs[k][s] · ∇_k L(θ; xs, ys)``.

    Parameters
    ----------
    fn, loss_fn:
        The network as a function of its parameters, and the task loss.
    params:
        Initial parameters (the meta-learned initialisation).
    lrs:
        ``lrs[k]`` is a ``[≥ n_steps]`` tensor of learning rates of tensor ``k``.
    xs, ys:
        The task's support set (no task dimension).
    n_steps:
        Number of inner gradient steps.
    first_order:
        Treat inner gradients as constants (first-order MAML): the meta-gradient
        then skips second derivatives.
    xq, yq:
        Query set; when given, the query loss after every step is returned.

    Returns
    -------
    (adapted params, query losses ``[n_steps]`` or ``None``)
    """

    def support_loss(p: Params) -> Tensor:
        return loss_fn(fn(p, xs), ys)

    p = params
    losses = []
    for s in range(n_steps):
        g = grad(support_loss)(p)
        if first_order:
            g = {k: v.detach() for k, v in g.items()}
        p = {k: p[k] - lrs[k][s] * g[k] for k in p}
        if xq is not None:
            losses.append(loss_fn(fn(p, xq), yq))
    return p, (torch.stack(losses) if losses else None)


def task_loss(
    fn: HeadFn,
    loss_fn: LossFn,
    params: Params,
    lrs: Params,
    xs: Tensor,
    ys: Tensor,
    xq: Tensor,
    yq: Tensor,
    n_steps: int,
    first_order: bool,
    step_weights: Tensor,
) -> Tensor:
    """Multi-step loss of one task: ``Σ_s w_s · L(θ_s; xq, yq)``."""
    _, q = inner_loop(fn, loss_fn, params, lrs, xs, ys, n_steps, first_order, xq, yq)
    return (step_weights * q).sum()


def meta_batch_loss(
    fn: HeadFn,
    loss_fn: LossFn,
    params: Params,
    lrs: Params,
    batch: TaskBatch,
    n_steps: int,
    first_order: bool,
    step_weights: Tensor,
    use_vmap: bool = True,
) -> Tensor:
    """Mean task loss of a meta-batch (tasks vmapped, or one by one with ``use_vmap=False``)."""

    def one(xs, ys, xq, yq):
        return task_loss(fn, loss_fn, params, lrs, xs, ys, xq, yq, n_steps, first_order, step_weights)

    if use_vmap:
        return vmap(one)(batch.xs, batch.ys, batch.xq, batch.yq).mean()
    return torch.stack([one(batch.xs[t], batch.ys[t], batch.xq[t], batch.yq[t]) for t in range(len(batch))]).mean()


def meta_gradients(
    fn: HeadFn,
    loss_fn: LossFn,
    params: Params,
    lrs: Params,
    batch: TaskBatch,
    n_steps: int,
    first_order: bool,
    step_weights: Tensor,
    use_vmap: bool = True,
) -> tuple[Tensor, Params, Params]:
    """``(meta-batch loss, ∂loss/∂params, ∂loss/∂lrs)`` by :func:`torch.func.grad_and_value`."""

    def f(p, a):
        return meta_batch_loss(fn, loss_fn, p, a, batch, n_steps, first_order, step_weights, use_vmap)

    (gp, ga), loss = grad_and_value(f, argnums=(0, 1))(params, lrs)
    return loss.detach(), gp, ga


def adapted_query_loss(fn: HeadFn, loss_fn: LossFn, params: Params, lrs: Params, n_steps: int, tasks) -> float:
    """Mean over ``tasks`` (``(xs, ys, xq, yq)`` tuples, sizes may differ) of the query
    loss after the inner loop on the support set; ``nan`` for no tasks."""
    p = {k: v.detach() for k, v in params.items()}
    a = {k: v.detach() for k, v in lrs.items()}
    losses = []
    for xs, ys, xq, yq in tasks:
        adapted, _ = inner_loop(fn, loss_fn, p, a, xs, ys, n_steps, first_order=True)
        with torch.no_grad():
            losses.append(float(loss_fn(fn(adapted, xq), yq)))
    return float(np.mean(losses)) if losses else math.nan


class MAMLPlusPlus:
    """Meta-learner state: the initial parameters, the learned inner learning rates,
    the outer optimiser (Adam) and its cosine-annealed learning rate.

    Parameters
    ----------
    fn, loss_fn:
        Network as a function of its parameters, and the task loss.
    params:
        Initial parameters to meta-learn (copied).
    n_inner_steps:
        Inner gradient steps during meta-training and adaptation.
    inner_lr:
        Initial value of every learned inner learning rate.
    learn_inner_lr:
        Meta-learn the per-layer per-step learning rates (LSLR); else keep them fixed.
    first_order_epochs:
        Epochs ``< first_order_epochs`` use first-order meta-gradients, later ones
        second order. ``0``: always second order; a huge value: always first order.
    msl_epochs:
        Epochs over which the multi-step-loss weights anneal towards the last step.
    meta_lr, min_meta_lr, n_epochs:
        Outer learning rate, cosine-annealed per epoch to ``min_meta_lr`` over ``n_epochs``.
    weight_decay:
        Adam weight decay of the outer optimiser.
    use_vmap:
        Run a meta-batch's tasks in one :func:`~torch.func.vmap` (else one by one).
    """

    def __init__(
        self,
        fn: HeadFn,
        loss_fn: LossFn,
        params: Params,
        n_inner_steps: int = 5,
        inner_lr: float = 0.01,
        learn_inner_lr: bool = True,
        first_order_epochs: int = 10,
        msl_epochs: int = 10,
        meta_lr: float = 1e-3,
        min_meta_lr: float = 1e-5,
        n_epochs: int = 50,
        weight_decay: float = 0.0,
        use_vmap: bool = True,
    ) -> None:
        self.fn = fn
        self.loss_fn = loss_fn
        self.n_inner_steps = int(n_inner_steps)
        self.first_order_epochs = int(first_order_epochs)
        self.msl_epochs = int(msl_epochs)
        self.learn_inner_lr = bool(learn_inner_lr)
        self.use_vmap = bool(use_vmap)
        self.params = {k: torch.nn.Parameter(v.detach().clone()) for k, v in params.items()}
        #: where the parameters live (and the learning rates and step weights with them)
        self.device = next(iter(self.params.values())).device if self.params else torch.device("cpu")
        self.lrs = {
            k: torch.nn.Parameter(torch.full((self.n_inner_steps,), float(inner_lr), device=self.device),
                                  requires_grad=self.learn_inner_lr)
            for k in params
        }
        groups = [{"params": list(self.params.values())}]
        if self.learn_inner_lr:
            groups.append({"params": list(self.lrs.values()), "weight_decay": 0.0})
        self.optimizer = torch.optim.Adam(groups, lr=meta_lr, weight_decay=weight_decay)
        self.max_meta_lr = float(meta_lr)
        self.min_meta_lr = float(min_meta_lr)
        self.n_epochs = max(1, int(n_epochs))
        self.set_epoch(0)

    # ------------------------------------------------------------ schedule
    def second_order(self, epoch: int | None = None) -> bool:
        """Whether meta-gradients at ``epoch`` (default: the current one) are second order."""
        return (self.epoch if epoch is None else epoch) >= self.first_order_epochs

    def step_weights(self, epoch: int | None = None) -> Tensor:
        return msl_weights(self.n_inner_steps, self.epoch if epoch is None else epoch, self.msl_epochs).to(self.device)

    @property
    def meta_lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    # ------------------------------------------------------------- training
    def meta_gradients(self, batch: TaskBatch, epoch: int | None = None) -> tuple[float, Params, Params]:
        """Loss and meta-gradients of a meta-batch at ``epoch`` (no update)."""
        ep = self.epoch if epoch is None else epoch
        p = {k: v.detach() for k, v in self.params.items()}
        a = {k: v.detach() for k, v in self.lrs.items()}
        loss, gp, ga = meta_gradients(
            self.fn, self.loss_fn, p, a, batch, self.n_inner_steps,
            first_order=not self.second_order(ep), step_weights=self.step_weights(ep), use_vmap=self.use_vmap,
        )
        return float(loss), gp, ga

    def apply(self, grads_params: Params, grads_lrs: Params) -> None:
        """One outer optimiser step with the given meta-gradients."""
        for k, v in self.params.items():
            v.grad = grads_params[k].detach().clone()
        for k, v in self.lrs.items():
            v.grad = grads_lrs[k].detach().clone() if self.learn_inner_lr else None
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def step(self, batch: TaskBatch) -> float:
        """Meta-gradients of ``batch`` and one outer step; returns the meta-batch loss."""
        loss, gp, ga = self.meta_gradients(batch)
        self.apply(gp, ga)
        return loss

    def cosine_lr(self, epoch: int) -> float:
        """Outer learning rate of ``epoch``: ``min + (max − min)(1 + cos(π e / n_epochs)) / 2``."""
        e = min(max(int(epoch), 0), self.n_epochs)
        return self.min_meta_lr + (self.max_meta_lr - self.min_meta_lr) * (1 + math.cos(math.pi * e / self.n_epochs)) / 2

    def set_epoch(self, epoch: int) -> None:
        """Move to ``epoch``: its derivative order, multi-step-loss weights and outer learning rate."""
        self.epoch = int(epoch)
        for g in self.optimizer.param_groups:
            g["lr"] = self.cosine_lr(self.epoch)

    def end_epoch(self) -> None:
        """Advance the epoch counter and the cosine schedule."""
        self.set_epoch(self.epoch + 1)

    # ----------------------------------------------------------- adaptation
    def adapt(self, x: Tensor, y: Tensor, n_steps: int | None = None) -> Params:
        """The learned inner loop on one support set; returns detached adapted parameters."""
        n = self.n_inner_steps if n_steps is None else int(n_steps)
        if n > self.n_inner_steps:
            raise ValueError(f"at most {self.n_inner_steps} inner steps were meta-learned, asked for {n}")
        p = {k: v.detach() for k, v in self.params.items()}
        a = {k: v.detach() for k, v in self.lrs.items()}
        out, _ = inner_loop(self.fn, self.loss_fn, p, a, x, y, n, first_order=True)
        return {k: v.detach() for k, v in out.items()}

    def query_loss(self, batch: TaskBatch) -> float:
        """Mean query loss after adapting to each task's support set (validation)."""
        return adapted_query_loss(self.fn, self.loss_fn, self.params, self.lrs, self.n_inner_steps,
                                  [(batch.xs[t], batch.ys[t], batch.xq[t], batch.yq[t]) for t in range(len(batch))])

    # ---------------------------------------------------------- persistence
    def tensors(self) -> dict[str, Tensor]:
        """Initial parameters (``theta.<name>``) and learning rates (``lr.<name>``)."""
        out = {f"theta.{k}": v.detach().clone() for k, v in self.params.items()}
        out.update({f"lr.{k}": v.detach().clone() for k, v in self.lrs.items()})
        return out

    def optimizer_tensors(self) -> dict[str, Tensor]:
        """The outer optimiser's state (Adam moments and step counts) as ``opt.<param>.<key>`` tensors."""
        out = {}
        for pid, st in self.optimizer.state_dict()["state"].items():
            for key, val in st.items():
                out[f"opt.{pid}.{key}"] = torch.as_tensor(val).detach().clone()
        return out

    def load_optimizer_tensors(self, t: dict[str, Tensor]) -> None:
        """Restore the state written by :meth:`optimizer_tensors`."""
        sd = self.optimizer.state_dict()
        state: dict[int, dict] = {}
        for name, v in t.items():
            if name.startswith("opt."):
                _, pid, key = name.split(".", 2)
                state.setdefault(int(pid), {})[key] = torch.as_tensor(v).clone()
        sd["state"] = state
        self.optimizer.load_state_dict(sd)
        self.set_epoch(self.epoch)

    def load_tensors(self, t: dict[str, Tensor]) -> None:
        with torch.no_grad():
            for k, v in self.params.items():
                v.copy_(torch.as_tensor(t[f"theta.{k}"]))
            for k, v in self.lrs.items():
                v.copy_(torch.as_tensor(t[f"lr.{k}"]))
