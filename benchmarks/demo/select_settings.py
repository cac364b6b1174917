"""How the demo's settings were chosen: on the *seen* listeners only.

    python benchmarks/demo/select_settings.py --out /tmp/perser-demo-bench

Reuses the corpus and features that ``run_demo.py`` left under ``--out`` (``emotion``
and ``avd`` folders) and evaluates candidate settings in the seen-listener scenario
(the methods are trained on these listeners' ratings of the training clips and
tested on their ratings of the held-out speakers' clips; ``similar`` predicts a seen
listener with their own head, ``finetune`` enrolls them with K of their training
clips). The new listeners, on whom the demo's claims are made, are not looked at.

* the multi-annotator network: training length (8 epochs of batches of 256, or 15 of
  64) and head shrinkage toward the consensus head (0, 30, 100, 300), read from
  ``similar`` (a seen listener's own head);
* ``finetune``'s L2-SP prior (0, 30, 100, 300 clips) on the chosen network, K = 5, 10, 20;
* ``meta``'s initial inner learning rate (0.1, 0.03, 0.01), K = 5, 10, 20;
* the consensus model's training length.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from run_demo import md_table  # noqa: E402

from perser.evaluate import evaluate  # noqa: E402
from perser.evaluate.demo import FULL_METHOD_PARAMS, demo_config  # noqa: E402
from perser.methods import register  # noqa: E402

SIM = "perser.methods.similar:SimilarAnnotator"
FT = "perser.methods.finetune:FineTune"
CONS = "perser.methods.consensus:ConsensusModel"


def candidates() -> dict[str, tuple[str, dict]]:
    base = {"hidden": [64], "patience": 3}
    out: dict[str, tuple[str, dict]] = {}
    for tag, train in (("b256e8", {"batch_size": 256, "epochs": 8}), ("b64e15", {"batch_size": 64, "epochs": 15})):
        for lam in (0, 30, 100, 300):
            out[f"similar-{tag}-shrink{lam}"] = (SIM, {**base, **train, "head_shrinkage": float(lam)})
    for a in (0, 30, 100, 300):
        out[f"finetune-l2sp{a}"] = (FT, {**FULL_METHOD_PARAMS["finetune"], "l2sp": float(a)})
    for lr in (0.1, 0.03, 0.01):
        out[f"meta-inner_lr{lr:g}"] = ("perser.methods.meta:MetaPerSER", {**FULL_METHOD_PARAMS["meta"], "inner_lr": lr})
    for ep, bs, pat in ((15, 64, 3), (50, 32, 5), (100, 16, 10)):
        out[f"consensus-e{ep}-b{bs}"] = (CONS, {"hidden": [64], "epochs": ep, "batch_size": bs, "patience": pat})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("/tmp/perser-demo-bench"))
    args = ap.parse_args()
    metrics = {"emotion": ["accuracy_argmax", "uar_balanced", "log_loss"],
               "avd": ["ccc/mean", "ccc/arousal", "ccc/valence", "ccc/dominance"]}
    cands = candidates()
    for name, (target, _) in cands.items():
        register(name, target)
    for space in ("emotion", "avd"):
        cfg = demo_config(args.out / space, space=space, seeds=[0], overwrite=True)
        cfg.method_params = {name: params for name, (_, params) in cands.items()}
        cfg.methods = list(cands)
        cfg.baseline = "consensus-e15-b64"
        cfg.scenarios = ["seen"]
        cfg.seen_k = [5, 10, 20]
        cfg.out = args.out / space / "run-selection"
        cfg.progress = False
        cfg.report = False
        run = evaluate(cfg, console=False)
        print(f"\n### {space}, seen listeners (seed 0; p against consensus-e15-b64, the earlier consensus)\n")
        print(md_table(run.summary, "seen", metrics[space]))


if __name__ == "__main__":
    main()
