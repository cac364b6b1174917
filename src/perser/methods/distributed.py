"""Data-parallel training across processes (``torchrun``) with small, explicit helpers.

``torchrun --nproc_per_node N -m perser train ...`` starts N processes with the
environment variables ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``; :func:`init` joins them into a process group (NCCL when CUDA is
available, gloo otherwise). Without those variables every function here degrades to
the single-process case (rank 0 of 1), so callers need no special path.

Typical use::

    distributed.init()                         # no-op outside torchrun
    rows = distributed.shard(batch_rows)       # this rank's part of a global batch
    ...backward on this rank's rows...
    distributed.all_reduce_sum(grads)          # sum the (pre-weighted) gradients
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch
import torch.distributed as dist


_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def launched_by_torchrun() -> bool:
    """True when the torchrun environment variables describe more than one process."""
    return all(k in os.environ for k in _ENV) and int(os.environ.get("WORLD_SIZE", "1")) > 1


def default_backend() -> str:
    """``"nccl"`` when CUDA is available, else ``"gloo"``."""
    return "nccl" if torch.cuda.is_available() else "gloo"


def init(backend: str | None = None) -> bool:
    """Join the process group described by the torchrun environment.

    Returns True when running distributed (world size > 1). Safe to call twice and
    outside torchrun (then it returns False and does nothing).
    """
    if is_initialized():
        return world_size() > 1
    if not launched_by_torchrun():
        return False
    backend = backend or default_backend()
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend)
    return world_size() > 1


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank (0 outside a process group)."""
    return dist.get_rank() if is_initialized() else 0


def world_size() -> int:
    """Number of processes (1 outside a process group)."""
    return dist.get_world_size() if is_initialized() else 1


def is_main() -> bool:
    """True on rank 0: the process that prints, saves checkpoints and writes models."""
    return rank() == 0


def device() -> torch.device:
    """The device this rank computes on (its CUDA device under NCCL, else CPU)."""
    if is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def shard(items: np.ndarray | Sequence, rank_: int | None = None, world: int | None = None):
    """This rank's contiguous part of ``items`` (``np.array_split`` into ``world`` parts)."""
    r = rank() if rank_ is None else rank_
    w = world_size() if world is None else world
    return np.array_split(np.asarray(items), w)[r]


def all_reduce_sum(tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Sum ``tensors`` over ranks, in place, in one flat collective; returns them.

    Outside a process group the tensors are returned unchanged.
    """
    tensors = list(tensors)
    if not is_initialized() or world_size() == 1 or not tensors:
        return tensors
    # NCCL reduces only CUDA tensors: CPU tensors (meta-training's head gradients) travel
    # through this rank's device and come back; under gloo everything stays where it is
    flat = torch.cat([t.detach().reshape(-1).to(device()) for t in tensors])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    off = 0
    for t in tensors:
        n = t.numel()
        t.copy_(flat[off : off + n].view_as(t))
        off += n
    return tensors


def all_reduce_rows(grad: torch.Tensor | None, shape: Sequence[int], on: torch.device | str = "cpu") -> torch.Tensor:
    """Sum row-sparse gradients over ranks: a coalesced sparse COO tensor (``sparse_dim=1``)
    holding the rows that any rank touched.

    ``grad`` is this rank's row-sparse (or dense) gradient of a parameter of ``shape``,
    or ``None`` (no rows), on device ``on``. Two collectives: the ranks gather each other's row indices,
    then sum one dense ``[union of rows, ...]`` block, so the traffic is the batch's rows,
    not the table. Outside a process group ``grad`` comes back coalesced.
    """
    shape = tuple(int(s) for s in shape)
    if grad is None:
        grad = torch.sparse_coo_tensor(torch.zeros((1, 0), dtype=torch.long), torch.zeros((0, *shape[1:])), shape, check_invariants=False)
    grad = (grad if grad.is_sparse else grad.to_sparse(1)).coalesce().to(on)
    if not is_initialized() or world_size() == 1:
        return grad
    dev = device() if dist.get_backend() == "nccl" else torch.device(on)
    rows, vals = grad.indices()[0].to(dev), grad.values().to(dev)
    n = torch.tensor([len(rows)], device=dev)
    counts = [torch.zeros_like(n) for _ in range(world_size())]
    dist.all_gather(counts, n)
    top = int(max(int(c) for c in counts))
    padded = torch.full((top,), -1, dtype=torch.long, device=dev)
    padded[: len(rows)] = rows
    gathered = [torch.empty_like(padded) for _ in range(world_size())]
    dist.all_gather(gathered, padded)
    union = torch.unique(torch.cat(gathered))
    union = union[union >= 0]
    block = torch.zeros((len(union), *shape[1:]), dtype=vals.dtype, device=dev)
    block[torch.searchsorted(union, rows)] = vals
    dist.all_reduce(block, op=dist.ReduceOp.SUM)
    return torch.sparse_coo_tensor(union[None].to(on), block.to(on), shape, check_invariants=False).coalesce()


def all_reduce_mean(tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Average ``tensors`` over ranks, in place (e.g. per-rank mean gradients of equal-size shards)."""
    tensors = all_reduce_sum(tensors)
    w = world_size()
    if w > 1:
        for t in tensors:
            t.div_(w)
    return tensors


def broadcast_module(module: torch.nn.Module, src: int = 0) -> None:
    """Copy ``module``'s parameters and buffers from rank ``src`` to every rank."""
    if not is_initialized() or world_size() == 1:
        return
    dev = device()
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            if t.device == dev:
                dist.broadcast(t.data, src=src)
            else:  # a CPU module under NCCL: broadcast a device copy
                buf = t.data.to(dev)
                dist.broadcast(buf, src=src)
                t.data.copy_(buf)


def barrier() -> None:
    if is_initialized() and world_size() > 1:
        dist.barrier()


def shutdown() -> None:
    """Leave the process group (no-op outside one)."""
    if is_initialized():
        dist.destroy_process_group()
