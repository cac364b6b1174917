"""Evaluation: the protocol (seen/unseen listeners × folds × K × seeds), metrics, reports.

>>> from perser.config import load_config
>>> from perser.evaluate import evaluate
>>> run = evaluate(load_config("exp.yaml"))          # doctest: +SKIP
>>> run.summary.head()                                # doctest: +SKIP

See :mod:`perser.evaluate.protocol` for the protocol, :mod:`perser.evaluate.metrics`
for the metrics and :mod:`perser.evaluate.report` for the run folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from perser.config import ExperimentConfig
from perser.evaluate.paper_metrics import paper_tables, predictions_frame, print_paper_summary
from perser.evaluate.protocol import EvalData, PlanSettings, Split, check_plan, make_plan
from perser.evaluate.runner import Block, RunOutput, run_plan
from perser.evaluate.scoring import confusion_counts, score_blocks, summarize
from perser.evaluate.stages import StageTimes

__all__ = ["EvalData", "EvaluationRun", "Split", "StageTimes", "check_plan", "evaluate", "evaluate_data",
           "make_plan", "plan_settings", "summarize"]


@dataclass
class EvaluationRun:
    """Everything one evaluation produced."""

    config: ExperimentConfig
    data: EvalData
    plan: list[Split]
    output: RunOutput
    results: pd.DataFrame
    summary: pd.DataFrame
    confusion: pd.DataFrame
    folder: Path | None = None
    #: paper-mode tables (``paper_runs.csv``, ``paper_summary.csv``; dimensional spaces), see
    #: :mod:`perser.evaluate.paper_metrics`
    paper: dict[str, pd.DataFrame] | None = None
    strategy_tests: pd.DataFrame | None = None  # enrollment strategies vs random (perser.enroll.compare)
    #: wall/CPU seconds and peak memory of each stage (``timings.csv``), see :mod:`perser.evaluate.stages`
    stages: StageTimes | None = None

    @property
    def blocks(self) -> list[Block]:
        return self.output.blocks


def plan_settings(cfg: ExperimentConfig) -> PlanSettings:
    return PlanSettings(
        k=list(cfg.k), seeds=list(cfg.seeds), n_folds=cfg.n_folds, fold_by=cfg.fold_by,
        folds=None if cfg.folds is None else [str(f) for f in cfg.folds], scenarios=list(cfg.scenarios),
        seen_k=cfg.seen_k, unseen_column=cfg.unseen_column, unseen_fraction=cfg.unseen_fraction,
        enroll_from=cfg.enroll_from, min_test=cfg.min_test, common_listeners=cfg.common_listeners,
        min_train_ratings=cfg.min_train_ratings, max_listeners=cfg.max_listeners,
        folds_file=None if cfg.folds_file is None else str(cfg.folds_file),
        min_fold_train_ratings=cfg.min_fold_train_ratings,
    )


def _methods(cfg: ExperimentConfig) -> tuple[dict[str, dict], bool]:
    from perser.errors import ConfigError
    from perser.methods import available_methods, default_methods

    names = list(cfg.methods) if cfg.methods else default_methods()
    unknown = [m for m in list(names) + list(cfg.method_params) if m not in available_methods()]
    if unknown:
        raise ConfigError(f"unknown method(s) {sorted(set(unknown))}; available: {', '.join(available_methods())}")
    if cfg.baseline not in names:
        names = [cfg.baseline, *names]
    from perser.methods import get_method

    out = {}
    for m in names:  # the run's device and precision, where a method has them and its params do not say
        params = dict(cfg.method_params.get(m, {}))
        accepted = set(get_method(m).param_names())
        for key in ("device", "precision"):
            if getattr(cfg, key) is not None and key in accepted:
                params.setdefault(key, getattr(cfg, key))
        out[m] = params
    return out, bool(cfg.methods)


def evaluate_data(cfg: ExperimentConfig, data: EvalData, write: bool = True, console=None,
                  stages: StageTimes | None = None) -> EvaluationRun:
    """Run the protocol of ``cfg`` on already loaded ``data``; write the run folder.

    ``stages`` (e.g. holding the ``load`` stage already) receives the time of every
    further stage (:mod:`perser.evaluate.stages`); the table is printed with the summary
    and written to the run folder as ``timings.csv``."""
    from perser.evaluate.report import print_summary, write_run

    stages = stages if stages is not None else StageTimes()
    methods, explicit = _methods(cfg)
    if write and cfg.run_dir.exists() and not cfg.overwrite:  # fail before the work, not after
        from perser.errors import ConfigError

        raise ConfigError(f"run folder {cfg.run_dir} exists; pass --overwrite (overwrite: true) to replace it")
    with stages.stage("split"):
        plan = make_plan(data, plan_settings(cfg))
    if not any(a for s in plan for a in s.assignments.values()):
        from perser.errors import ConfigError

        raise ConfigError("no listener has enough ratings for the largest K plus min_test; lower k or min_test")
    from perser.enroll.protocol import StrategyPlan

    strategies = StrategyPlan(cfg.enroll_strategy, cfg.enroll_strategy_params)
    out = run_plan(data, plan, methods, threshold=cfg.threshold, explicit_methods=explicit, progress=cfg.progress,
                   strategies=strategies)
    for what in ("fit", "enroll", "predict"):
        for m, t in out.timings.items():
            calls = t["n_fit"] + t["n_shared_fit"] if what == "fit" else t["n_enroll"]
            stages.add(what, m, t[f"{what}_s"], t[f"{what}_cpu_s"], calls=calls)
    with stages.stage("metrics"):
        results = score_blocks(out.blocks, data, pool_folds=cfg.pool_folds, style_column=cfg.style_column)
        summary = summarize(results, baseline=cfg.baseline, n_boot=cfg.n_bootstrap, level=cfg.ci_level,
                            seed=min(cfg.seeds))
        confusion = confusion_counts(out.blocks, data)
        paper = paper_tables(out.blocks, data.space, baseline=cfg.baseline)
        run = EvaluationRun(cfg, data, plan, out, results, summary, confusion, paper=paper, stages=stages)
        sections = []
        if strategies.others:
            from perser.enroll.compare import strategy_tests

            run.strategy_tests = strategy_tests(results, n_boot=cfg.n_bootstrap, level=cfg.ci_level, seed=min(cfg.seeds))
            sections.append(("Enrollment strategies against random enrollment (paired on the same listeners: "
                             "gain = strategy at k - random at random_k, positive is better; Wilcoxon p)",
                             run.strategy_tests))
    if write:
        with stages.stage("report"):
            extra = {"predictions.csv": predictions_frame(out.blocks, data.space), **paper}
            if run.strategy_tests is not None:
                extra["strategies.csv"] = run.strategy_tests
            run.folder = write_run(cfg.run_dir, cfg=cfg, data=data, plan=plan, run=out, results=results,
                                   summary=summary, confusion=confusion, overwrite=cfg.overwrite,
                                   make_report=cfg.report, extra_files=extra, extra_tables=sections)
        from perser._io import atomic_file

        with atomic_file(run.folder / "timings.csv") as tmp:  # after the report, so that it has the report's row
            stages.frame().to_csv(tmp, index=False)
    if console is not False:
        from perser.evaluate.report import exclusion_reasons, wide_console

        console = console or wide_console()
        print_summary(summary, data.space.kind, console=console)
        print_paper_summary(paper.get("paper_summary.csv"), console=console)
        for scen in [x for x in ("unseen", "seen") if any(x in sp.assignments for sp in plan)]:
            n_eval = sum(len(sp.assignments.get(scen, [])) for sp in plan)
            why = exclusion_reasons(plan, scen)
            detail = "; ".join(f"{r}: {n}" for r, n in why.items())
            console.print(f"{scen} listeners: {n_eval} evaluated, {sum(why.values())} excluded (summed over seeds "
                          f"and folds){' (' + detail + ')' if detail else ''}", highlight=False)
        stages.print(console)
    return run


def evaluate(cfg: ExperimentConfig, write: bool = True, console=None) -> EvaluationRun:
    """Load the corpora of ``cfg``, run every method over the protocol, write the run folder.

    Returns the :class:`EvaluationRun`; prints the terminal summary unless
    ``console=False``.
    """
    from perser.evaluate.data import load_eval_data

    stages = StageTimes()
    with stages.stage("load"):
        data = load_eval_data(cfg)
    return evaluate_data(cfg, data, write=write, console=console, stages=stages)
