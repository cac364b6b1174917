"""Suite-wide test settings.

The suite runs in parallel worker processes (``pytest -n 2``); one torch thread per
process avoids oversubscribing the cores, which slows tiny-tensor work many times over.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_configure(config):
    import torch

    torch.set_num_threads(1)
