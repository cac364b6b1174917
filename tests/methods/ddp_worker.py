"""Trains a small consensus model; run under ``torchrun`` by ``test_training.py``.

Usage: ``python ddp_worker.py OUT_FOLDER [similar]`` (single process) or
``torchrun --nproc_per_node 2 ddp_worker.py OUT_FOLDER [similar]`` (two processes, gloo).
Rank 0 saves the model to ``OUT_FOLDER``. With ``similar``, a multi-annotator model
with sparse head updates (heads outside DDP, their rows all-reduced) and no consensus
head: the consensus term is a mean over each shard's distinct clips, so with it two
processes would not reproduce one exactly.
"""

import sys

import numpy as np
import torch

from perser.corpus.model import LabelSpace
from perser.methods import distributed, make_method
from perser.methods.base import RatingSet

torch.set_num_threads(1)


def data() -> RatingSet:
    rng = np.random.default_rng(0)
    space = LabelSpace("emotion", "categorical", classes=("a", "b", "c"))
    X = rng.standard_normal((90, 5)).astype(np.float32)
    W = rng.standard_normal((5, 3))
    ys = [(X @ W + 0.5 * rng.standard_normal((90, 3))).argmax(1) for _ in range(3)]
    return RatingSet(X, np.array([f"c{i}" for i in range(90)], dtype=object), np.tile(np.arange(90), 3),
                     np.repeat(["r0", "r1", "r2"], 90).astype(object), np.concatenate(ys), space)


def main(out: str, method: str = "consensus") -> None:
    distributed.init()
    if method == "similar":
        m = make_method("similar", hidden=(16,), dropout=0.0, epochs=3, batch_size=20, lr=1e-2, patience=0,
                        valid_fraction=0.1, progress=False, seed=3, min_ratings=5, consensus_weight=0.0)
        rs = data()
        # nine annotators of 30 ratings each: a batch of 20 holds some heads, not all
        rs = RatingSet(rs.X, rs.clip_ids, rs.clip_index, np.array([f"r{i // 30}" for i in range(len(rs.y))], dtype=object),
                       rs.y, rs.space)
        m.fit(rs)
        if distributed.is_main():
            m.save(out)
        distributed.barrier()
        distributed.shutdown()
        return
    # batch 20 over 81 training clips: the last batch of 1 row joins the one before; the
    # 21-row batch splits unevenly (11/10), which the loss weighting must handle
    m = make_method("consensus", hidden=(16,), dropout=0.0, epochs=4, batch_size=20, lr=1e-2,
                    patience=0, valid_fraction=0.1, progress=False, seed=3)
    m.fit(data())
    if distributed.is_main():
        m.save(out)
    distributed.barrier()
    distributed.shutdown()


if __name__ == "__main__":
    main(*sys.argv[1:])
