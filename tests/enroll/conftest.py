"""Hand-built head models with known head outputs, for exact checks of the selection."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from perser.corpus.model import LabelSpace  # noqa: F401

CAT = LabelSpace("emotion", "categorical", classes=("a", "b", "c"))
DIM = LabelSpace("avd", "dimensional", dimensions=("arousal", "valence"), scale=(1, 5))
MULTI = LabelSpace("tags", "multilabel", classes=("a", "b", "c"))


class FakeHeads:
    """A model whose seen heads output fixed per-clip arrays: ``table[clip_key] -> [H, O]``.

    Features are one number per clip, the clip's key (an integer).
    """

    name = "fake"

    def __init__(self, space: LabelSpace, table: np.ndarray, heads=None):
        self.space_ = space
        self.table = np.asarray(table, dtype=np.float32)  # [n_keys, H, O]
        self.head_annotators_ = list(heads or [f"h{i}" for i in range(self.table.shape[1])])

    def head_outputs(self, X, activated=True):
        keys = np.asarray(X)[:, 0].astype(int)
        return torch.from_numpy(self.table[keys])

    def embed(self, X):
        return torch.from_numpy(np.asarray(X, dtype=np.float32))


def keys(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.float32)[:, None]


@pytest.fixture
def fake():
    return FakeHeads


def _evaluate_conftest():
    """The evaluation tests' toy corpus builder (tests/evaluate/conftest.py)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "evaluate" / "conftest.py"
    spec = importlib.util.spec_from_file_location("perser_tests_evaluate_conftest", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def make_toy():
    """A small in-memory corpus with two perception styles (see tests/evaluate/conftest.py)."""
    return _evaluate_conftest().toy_corpus


@pytest.fixture(scope="session")
def pagekit():
    """tests/enroll/pagekit.py: a served model with a pool of WAV files."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("perser_tests_pagekit", Path(__file__).with_name("pagekit.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
