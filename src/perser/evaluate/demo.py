"""``perser demo``: the synthetic demo corpus, eGeMAPS features and every method over the K sweep.

The demo corpus (:func:`perser.corpus.synthetic.make_demo`) has listeners of four
perception styles and held-out *new* listeners (``annotators.csv``: ``style``,
``new``), so the report can also say how often ``similar`` retrieves a seen listener
of the new listener's own style. The settings below keep the whole demo within a
two-minute budget on a 2-core machine (its measured time is in
``benchmarks/demo/RESULTS.md``): 1,000 clips, 60 seen and 60 new listeners (the new
ones carry the statistical power of the unseen-listener comparison), 3
speaker-independent folds and 2 seeds.

The K sweep is 5, 10, 20 (``--quick``: 5, 10), not the evaluation's default 5, 10, 20,
30, for two reasons. Time: every K is one more enrollment and prediction per new
listener, fold and seed for every method, and the demo must stay inside its two-minute
budget. Listeners: the K-curves compare the same listeners at every K
(``common_listeners``), so K=30 would exclude every listener with fewer than 30 ratings
in the training folds from *all* K -- and the demo corpus gives some listeners as few
as 24 ratings in all (``MIN_RATINGS_PER_ANNOTATOR`` in :mod:`perser.corpus.synthetic.latent`).
To see K=30 on the demo corpus, evaluate the demo's configuration
(:func:`demo_config`) with ``k: [5, 10, 20, 30]``.
"""

from __future__ import annotations

import time
from pathlib import Path

from perser.config import ExperimentConfig, load_config

#: corpus sizes: (clips, seen listeners, new listeners)
FULL_CORPUS = (1000, 60, 60)
QUICK_CORPUS = (200, 20, 8)

#: neural methods' settings for the demo: small networks and few epochs (eGeMAPS has 88
#: values). ``random-annotator``, ``mean-annotator``, ``similar`` and ``finetune`` share
#: these settings, so the evaluation fits their network once per fold. The training
#: length (15 epochs of batches of 64), ``head_shrinkage`` (100) and finetune's L2-SP
#: default were chosen on the seen listeners (their own heads on unseen clips), not on
#: the new listeners (``benchmarks/demo/RESULTS.md``).
_MULTI = {"hidden": [64], "epochs": 15, "batch_size": 64, "patience": 3, "head_shrinkage": 100.0}
#: the consensus model (also the starting point of ``meta``): 50 epochs of batches of 32
#: clips with early stopping; ``meta``'s initial inner learning rate 0.01 (the default,
#: 0.1, overshot on a few clips); both chosen on the seen listeners like the settings above
_CONSENSUS = {"hidden": [64], "epochs": 50, "batch_size": 32, "patience": 5}
FULL_METHOD_PARAMS: dict[str, dict] = {
    "consensus": dict(_CONSENSUS),
    "random-annotator": dict(_MULTI),
    "mean-annotator": dict(_MULTI),
    "similar": dict(_MULTI),
    "finetune": {**_MULTI, "steps": 10},
    "meta": {**_CONSENSUS, "meta_epochs": 3, "inner_lr": 0.01},
}
QUICK_METHOD_PARAMS: dict[str, dict] = {
    name: {**p, "epochs": 2, **({"meta_epochs": 1, "iters_per_epoch": 3} if name == "meta" else {}),
           **({"steps": 2} if name == "finetune" else {})}
    for name, p in FULL_METHOD_PARAMS.items()
}


def _accepted(params: dict[str, dict]) -> dict[str, dict]:
    """Keep only the hyper-parameters each registered method accepts (methods evolve)."""
    from perser.methods import available_methods, get_method

    out = {}
    for name, p in params.items():
        if name not in available_methods():
            continue
        try:
            sig = get_method(name).param_names()
        except ImportError:
            continue
        out[name] = {k: v for k, v in p.items() if k in sig}
    return out


def demo_config(out: Path, quick: bool = False, space: str = "emotion", seeds: list[int] | None = None,
                overwrite: bool = False, workers: int = 1) -> ExperimentConfig:
    """The demo's experiment configuration."""
    out = Path(out)
    doc = {
        "name": "demo-quick" if quick else "demo",
        "corpus": str(out / "corpus"),
        "format": "table",
        "space": space,
        "features": "egemaps",
        "feature_cache": str(out / "features"),
        "workers": workers,
        "method_params": (params := _accepted(QUICK_METHOD_PARAMS if quick else FULL_METHOD_PARAMS)),
        "methods": list(params),  # the demo's methods (not meta-finetune, the Meta-PerSER recipe's baseline)
        "unseen_column": "new",
        "k": [5, 10] if quick else [5, 10, 20],
        "seen_k": [5] if quick else [10],
        "seeds": seeds or ([0] if quick else [0, 1]),
        "n_folds": 2 if quick else 3,
        "min_test": 5,
        "out": str(out / "run"),
        "overwrite": overwrite,
        "n_bootstrap": 500 if quick else 2000,
    }
    return load_config(overrides=doc)


def build_corpus(out: Path, quick: bool = False, console=None) -> Path:
    """The demo corpus under ``out/corpus``, made once (kept when it has the wanted size)."""
    import yaml

    from perser.corpus.synthetic import make_demo

    n_clips, n_ann, n_new = QUICK_CORPUS if quick else FULL_CORPUS
    folder = Path(out) / "corpus"
    spec = folder / "corpus.yaml"
    if spec.is_file():
        meta = (yaml.safe_load(spec.read_text(encoding="utf-8")) or {}).get("meta") or {}
        gen = meta.get("generator", meta)
        if (gen.get("n_clips"), gen.get("n_annotators"), gen.get("n_new")) == (n_clips, n_ann, n_new):
            return folder
    if console:
        console.print(f"synthesising the demo corpus ({n_clips} clips, {n_ann}+{n_new} listeners) ...", highlight=False)
    return make_demo(folder, n_clips=n_clips, n_annotators=n_ann, n_new=n_new, seed=0, overwrite=True)


def run_demo(out: str | Path = "perser-demo", quick: bool = False, space: str = "emotion",
             seeds: list[int] | None = None, overwrite: bool = False, workers: int | None = None, console=None):
    """Build the corpus, extract features, evaluate every method; returns ``(run, seconds)``.

    ``workers`` (feature extraction processes) defaults to the number of CPUs, at most 2.
    """
    import os

    if workers is None:
        workers = max(1, min(2, os.cpu_count() or 1))
    from perser.evaluate import evaluate

    t0 = time.perf_counter()
    out = Path(out)
    cfg = demo_config(out, quick=quick, space=space, seeds=seeds, overwrite=overwrite, workers=workers)
    if cfg.run_dir.exists() and not overwrite:
        from perser.errors import ConfigError

        raise ConfigError(f"{cfg.run_dir} exists; pass --overwrite to replace the demo's run folder")
    build_corpus(out, quick=quick, console=console)
    run = evaluate(cfg, console=console)
    return run, time.perf_counter() - t0
