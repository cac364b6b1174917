"""Run folders: ``results.csv``, ``summary.csv``, ``report.html`` and the terminal table.

A run folder holds

``results.csv``   long: method, scenario, k, seed, fold, annotator, metric, value
``summary.csv``   method, scenario, k, metric, mean, ci_low, ci_high, p_vs_consensus, then unit, n, baseline,
                  gain_vs_baseline, p_vs_baseline (see :mod:`perser.evaluate.scoring`)
``listeners.csv`` per (seed, fold, scenario): listeners evaluated and excluded, by reason
``confusion.csv`` categorical spaces: counts of (true, decided) class per method, K and decision
``predictions.csv`` every prediction: method, scenario, k, seed, fold, listener, clip_id, the listener's
                  label(s) and the prediction (class probabilities ``p_<class>``; ``pred_<dim>``)
``paper_runs.csv``, ``paper_summary.csv``  dimensional spaces: Tavernor & Mower Provost's CCC_ind and
                  CCC_con as their code computes them (:mod:`perser.evaluate.paper_metrics`)
``config.yaml``   the resolved configuration
``run.json``      configuration, package versions, protocol counts, timings and notes
``report.html``   self-contained (plots embedded as base64 PNG)
``timings.csv``   wall and CPU seconds and peak memory of each stage (load, split, fit/enroll/predict per
                  method, metrics, report; :mod:`perser.evaluate.stages`)

The folder is written to a temporary sibling and renamed into place; ``timings.csv`` is
added to it afterwards (atomically), so that it holds the writing's own time.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from perser._io import atomic_dir, package_versions
from perser.evaluate.metrics import DESCRIPTIONS
from perser.evaluate.scoring import base_metric, listener_gains, lower_is_better

HEADLINE = {
    "categorical": ["accuracy_argmax", "uar_balanced", "macro_f1_balanced", "log_loss"],
    "multilabel": ["macro_f1", "macro_f1_sklearn", "micro_f1"],
    "dimensional": ["ccc/mean", "ccc_con/mean"],
}


#: packages whose versions every result file records
RESULT_PACKAGES = ("perser", "numpy", "pandas", "scipy", "scikit-learn", "torch", "opensmile", "transformers")

#: shown in the HTML report and summary.csv but left out of the terminal table (width)
TERMINAL_SKIP = {"macro_f1_balanced", "micro_f1"}


def headline_metrics(kind: str, summary: pd.DataFrame) -> list[str]:
    present = set(summary["metric"]) if len(summary) else set()
    out = [m for m in HEADLINE[kind] if m in present]
    if "retrieval" in present:
        out.append("retrieval")
    return out


def listener_table(plan) -> pd.DataFrame:
    rows = []
    for s in plan:
        for scen, assigns in s.assignments.items():
            ex = s.excluded.get(scen, {})
            rows.append({"seed": s.seed, "fold": s.fold, "scenario": scen, "evaluated": len(assigns),
                         "excluded": int(sum(ex.values())),
                         "reasons": "; ".join(f"{r}: {n}" for r, n in ex.items())})
        if "train" in s.excluded:
            rows.append({"seed": s.seed, "fold": s.fold, "scenario": "train", "evaluated": len(s.seen),
                         "excluded": int(sum(s.excluded["train"].values())),
                         "reasons": "; ".join(f"{r}: {n}" for r, n in s.excluded["train"].items())})
    return pd.DataFrame(rows, columns=["seed", "fold", "scenario", "evaluated", "excluded", "reasons"])


def exclusion_reasons(plan, scenario: str) -> dict[str, int]:
    """Excluded listeners of ``scenario`` by reason, summed over seeds and folds."""
    why: dict[str, int] = {}
    for s in plan:
        for r, n in s.excluded.get(scenario, {}).items():
            why[r] = why.get(r, 0) + int(n)
    return why


def chance_retrieval(data, plan, style_column: str | None) -> float | None:
    """Expected same-style rate of a seen listener drawn at random (per unseen listener, averaged)."""
    if not style_column or data.annotators is None or style_column not in data.annotators.columns:
        return None
    st = data.annotators[style_column].astype(str)
    st.index = st.index.astype(str)
    rates = []
    for s in plan:
        seen = [a for a in s.seen if a in st.index]
        if not seen:
            continue
        counts = st.loc[seen].value_counts(normalize=True)
        for a in s.assignments.get("unseen", []):
            if a.annotator in st.index:
                rates.append(float(counts.get(st[a.annotator], 0.0)))
    return float(np.mean(rates)) if rates else None


# ------------------------------------------------------------------- plots
def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_k_curves(summary: pd.DataFrame, metrics: list[str], scenario: str) -> str | None:
    plt = _plt()
    s = summary[(summary["scenario"] == scenario) & summary["metric"].isin(metrics)]
    if s.empty:
        return None
    metrics = [m for m in metrics if m in set(s["metric"])]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        g = s[s["metric"] == metric]
        for method, gm in g.groupby("method", sort=True):
            gm = gm.sort_values("k")
            ax.plot(gm["k"], gm["mean"], marker="o", label=method)
            ax.fill_between(gm["k"], gm["ci_low"], gm["ci_high"], alpha=0.15)
        ax.set_xlabel("K (enrollment clips)")
        ax.set_title(metric + (" (lower is better)" if lower_is_better(metric) else ""), fontsize=10)
        ax.set_xticks(sorted(g["k"].unique()))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"{scenario} listeners: mean over listeners with 95% bootstrap CI", fontsize=10)
    return _png(fig)


def plot_gains(results: pd.DataFrame, metric: str, scenario: str, baseline: str) -> str | None:
    plt = _plt()
    ks = sorted(results.loc[(results["scenario"] == scenario) & (results["metric"] == metric), "k"].unique())
    panels = [(k, listener_gains(results, metric, scenario, k, baseline)) for k in ks]
    panels = [(k, g) for k, g in panels if not g.empty]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4), squeeze=False, sharey=True)
    for ax, (k, g) in zip(axes[0], panels):
        data = [g[c].dropna().to_numpy() for c in g.columns]
        ax.boxplot(data, showmeans=True)
        ax.set_xticks(range(1, len(g.columns) + 1), list(g.columns), rotation=45, ha="right", fontsize=8)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_title(f"K={k}", fontsize=10)
    axes[0][0].set_ylabel(f"per-listener gain in {metric}\nover {baseline} (positive = better)")
    fig.suptitle(f"{scenario} listeners", fontsize=10)
    return _png(fig)


def plot_confusions(confusion: pd.DataFrame, scenario: str, k: int, decision: str) -> str | None:
    plt = _plt()
    c = confusion[(confusion["scenario"] == scenario) & (confusion["k"] == k) & (confusion["decision"] == decision)]
    if c.empty:
        return None
    methods = sorted(c["method"].unique())
    fig, axes = plt.subplots(1, len(methods), figsize=(3.0 * len(methods), 3.1), squeeze=False)
    for ax, m in zip(axes[0], methods):
        cm = c[c["method"] == m].pivot_table(index="true", columns="pred", values="count", aggfunc="sum", sort=False)
        arr = cm.to_numpy(dtype=float)
        arr = arr / np.clip(arr.sum(axis=1, keepdims=True), 1, None)
        ax.imshow(arr, vmin=0, vmax=1, cmap="Blues")
        ax.set_xticks(range(len(cm.columns)), list(cm.columns), rotation=45, fontsize=7)
        ax.set_yticks(range(len(cm.index)), list(cm.index), fontsize=7)
        for i in range(arr.shape[0]):
            for j in range(arr.shape[1]):
                ax.text(j, i, f"{arr[i, j]:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if arr[i, j] > 0.5 else "black")
        ax.set_title(m, fontsize=9)
        ax.set_xlabel("decided", fontsize=8)
    axes[0][0].set_ylabel("listener's label", fontsize=8)
    fig.suptitle(f"{scenario} listeners, K={k}, {decision} decision (rows normalised)", fontsize=10)
    return _png(fig)


def plot_retrieval(summary: pd.DataFrame, chance: float | None) -> str | None:
    plt = _plt()
    s = summary[(summary["metric"] == "retrieval") & (summary["scenario"] == "unseen")]
    if s.empty:
        return None
    fig, ax = plt.subplots(figsize=(4.5, 3.4))
    for method, g in s.groupby("method", sort=True):
        g = g.sort_values("k")
        ax.errorbar(g["k"], g["mean"], yerr=[g["mean"] - g["ci_low"], g["ci_high"] - g["mean"]], marker="o",
                    capsize=3, label=method)
    if chance is not None:
        ax.axhline(chance, ls="--", color="gray", label=f"chance ({chance:.2f})")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("K (enrollment clips)")
    ax.set_ylabel("same-style retrieval rate")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


# ------------------------------------------------------------------- tables
def _fmt(x: float, digits: int = 3) -> str:
    return "" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def _fmt_p(p: float) -> str:
    if p is None or not np.isfinite(p):
        return ""
    return f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"


def summary_baseline(summary: pd.DataFrame) -> str:
    """The method the summary's ``p_vs_baseline`` compares against (``consensus`` if unnamed)."""
    if "baseline" in summary.columns and len(summary) and summary["baseline"].notna().any():
        return str(summary["baseline"].dropna().iloc[0])
    return "consensus"


def wide_summary(summary: pd.DataFrame, metrics: list[str], scenario: str) -> pd.DataFrame:
    """method × K rows; per metric 'mean [lo, hi]' and its p-value against the baseline
    (the summary's ``baseline`` column; ``consensus`` by default)."""
    s = summary[(summary["scenario"] == scenario) & summary["metric"].isin(metrics)]
    rows = []
    for (method, k), g in s.groupby(["method", "k"], sort=True):
        row = {"method": method, "K": int(k)}
        thr = [d for d in g.get("decision", pd.Series(dtype=object)).dropna() if str(d).startswith("threshold")]
        if thr:  # multilabel: the decision threshold behind this row's F1 values
            row["threshold"] = thr[0].removeprefix("threshold").replace("(range over listeners)", "").strip()
        for m in metrics:
            r = g[g["metric"] == m]
            if r.empty:
                continue
            r = r.iloc[0]
            row[m] = f"{_fmt(r['mean'])} [{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]"
            if m != "retrieval":
                row[f"p {m}"] = _fmt_p(r["p_vs_baseline"])
        rows.append(row)
    out = pd.DataFrame(rows)
    if not out.empty:
        out = out.sort_values(["K", "method"], kind="stable")
    return out


def decisions(summary: pd.DataFrame, metrics: list[str] | None = None) -> dict[str, str]:
    """Per metric, the decision its values use; where methods differ (multilabel
    thresholds), each decision with its methods: ``threshold 0.5 (consensus); threshold 0.3 (meta)``."""
    if "decision" not in summary.columns or not len(summary):
        return {}
    out = {}
    for metric in metrics if metrics is not None else sorted(set(summary["metric"])):
        g = summary[summary["metric"] == metric]
        by: dict[str, list[str]] = {}
        for method, d in zip(g["method"], g["decision"].fillna("")):
            if d and method not in by.setdefault(d, []):
                by[d].append(method)
        if len(by) == 1:
            out[metric] = next(iter(by))
        elif by:
            out[metric] = "; ".join(f"{d} ({', '.join(sorted(ms))})" for d, ms in by.items())
    return out


#: what each decision means, for the terminal caption and the report
DECISION_MEANING = {
    "argmax": "the most probable class",
    "balanced": "distribution / listener's predicted label prior, then argmax",
    "probabilities": "scores the predicted distribution, no decision",
    "threshold": "a class is on when its probability >= threshold",
    "values": "predicted values, no decision",
    "profile": "the seen listener(s) the profile copies",
}


def decision_caption(summary: pd.DataFrame, metrics: list[str]) -> str:
    """One line naming the decision of each metric in ``metrics`` (and what the decisions mean)."""
    dec = decisions(summary, metrics)
    if not dec:
        return ""
    used = {d.split()[0] for d in dec.values()}
    meaning = "; ".join(f"{k}: {v}" for k, v in DECISION_MEANING.items() if k in used)
    return "decision per metric: " + ", ".join(f"{m} {d}" for m, d in dec.items()) + f" ({meaning})"


def wide_console():
    """A rich console; when writing to a file or pipe, wide enough for the summary tables."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=max(console.width, 230))


def print_summary(summary: pd.DataFrame, kind: str, console=None, title: str = "") -> None:
    """The rich terminal table: per scenario, method × K with CIs and p-values."""
    from rich.table import Table

    if console is None:
        console = wide_console()
    metrics = [m for m in headline_metrics(kind, summary) if m not in TERMINAL_SKIP]
    for scen in [s for s in ("unseen", "seen") if s in set(summary["scenario"])]:
        w = wide_summary(summary, metrics, scen)
        if w.empty:
            continue
        t = Table(title=f"{title}{scen} listeners — mean [95% CI over listeners], "
                        f"p: Wilcoxon vs {summary_baseline(summary)}",
                  title_justify="left")
        for c in w.columns:
            t.add_column(str(c), justify="left" if c == "method" else "right", no_wrap=True,
                         min_width=len(str(c)) if c in ("method", "K") else None)
        for _, r in w.iterrows():
            t.add_row(*[str(r[c]) if pd.notna(r[c]) else "" for c in w.columns])
        console.print(t)
        caption = decision_caption(summary[summary["scenario"] == scen], metrics)
        if caption:
            console.print(caption, highlight=False, soft_wrap=True)


def _html_table(df: pd.DataFrame) -> str:
    return df.to_html(index=False, border=0, classes="t", na_rep="", escape=True)


def render_html(ctx: dict) -> str:
    """The self-contained report page."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>perser report: {html.escape(ctx['name'])}</title>",
        "<style>body{font-family:sans-serif;max-width:1200px;margin:1em auto;padding:0 1em;color:#222}"
        "table.t{border-collapse:collapse;font-size:12px;margin:.5em 0}table.t td,table.t th{padding:2px 8px;"
        "border-bottom:1px solid #ddd;text-align:right}table.t td:first-child{text-align:left}"
        "pre{background:#f6f6f6;padding:.6em;font-size:11px;overflow-x:auto}img{max-width:100%}"
        "h2{border-bottom:1px solid #ccc}</style></head><body>",
        f"<h1>perser evaluation: {html.escape(ctx['name'])}</h1>",
        f"<p>{html.escape(ctx['headline'])}</p>",
    ]
    if ctx["notes"]:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in ctx["notes"]) + "</ul>")
    parts.append("<h2>Metrics and decisions</h2><ul>"
                 + "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in ctx["descriptions"].items())
                 + "</ul><p>Confidence intervals: 95% percentile bootstrap over listeners (seeds for corpus-level "
                 "metrics). p (tables): two-sided Wilcoxon signed-rank test of each method against the baseline, "
                 f"{html.escape(ctx.get('baseline', 'consensus'))}, on the same listeners; summary.csv also has p_vs_consensus. "
                 "gain: mean paired difference, signed so that positive is better.</p>")
    for scen, table in ctx["tables"].items():
        parts.append(f"<h2>{html.escape(scen)} listeners</h2>")
        parts.append(_html_table(table))
        for title, img in ctx["plots"].get(scen, []):
            if img:
                parts.append(f"<h3>{html.escape(title)}</h3><img alt='{html.escape(title)}' "
                             f"src='data:image/png;base64,{img}'>")
    for title, table in ctx.get("extra", []):
        parts.append(f"<h2>{html.escape(title)}</h2>" + _html_table(table))
    for title, img in ctx["plots"].get("other", []):
        if img:
            parts.append(f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' src='data:image/png;base64,{img}'>")
    parts.append("<h2>Listeners per split</h2>" + _html_table(ctx["listeners"]))
    parts.append("<h2>Timings (seconds, whole run)</h2>" + _html_table(ctx["timings"]))
    parts.append("<h2>Configuration</h2><pre>" + html.escape(ctx["config_yaml"]) + "</pre>")
    parts.append("<h2>Versions</h2><pre>" + html.escape(json.dumps(ctx["versions"], indent=1)) + "</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_run(out: Path, *, cfg, data, plan, run, results: pd.DataFrame, summary: pd.DataFrame,
              confusion: pd.DataFrame, overwrite: bool = False, make_report: bool = True,
              extra_files: dict[str, pd.DataFrame] | None = None,
              extra_tables: list[tuple[str, pd.DataFrame]] | None = None) -> Path:
    """Write the run folder atomically; returns its path.

    ``extra_files`` are further tables written as CSV into the folder under their
    names (``predictions.csv``, the paper-mode tables); ``extra_tables`` are
    ``(title, frame)`` sections added to the report (e.g. the enrollment strategies'
    paired tests)."""
    from perser.errors import ConfigError

    out = Path(out)
    if out.exists() and not overwrite:
        raise ConfigError(f"run folder {out} exists; pass --overwrite (overwrite: true) to replace it")
    with atomic_dir(out) as tmp:
        versions = package_versions(*RESULT_PACKAGES, python=True, missing=None)
        resolved = cfg.resolved()
        listeners = listener_table(plan)
        chance = chance_retrieval(data, plan, cfg.style_column)
        timings = pd.DataFrame([{"method": m, **{k: round(v, 3) if isinstance(v, float) else v for k, v in t.items()}}
                                for m, t in run.timings.items()])
        results.to_csv(tmp / "results.csv", index=False)
        summary.to_csv(tmp / "summary.csv", index=False)
        for fname, table in (extra_files or {}).items():
            table.to_csv(tmp / fname, index=False)
        listeners.to_csv(tmp / "listeners.csv", index=False)
        if len(confusion):
            confusion.to_csv(tmp / "confusion.csv", index=False)
        config_yaml = yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True)
        (tmp / "config.yaml").write_text(config_yaml, encoding="utf-8")
        notes = list(data.notes) + [f"method skipped: {v}" for v in run.skipped_methods.values()]
        if len(summary) and "consensus" not in set(summary["method"]):
            notes.append("consensus was not run: summary.csv's p_vs_consensus is empty")
        excl = listeners[listeners["scenario"] != "train"].groupby("scenario")[["evaluated", "excluded"]].sum()
        doc = {
            "name": cfg.name, "config": resolved, "versions": versions, "space": data.space.to_dict(),
            "n_clips": int(len(data.clips)), "n_ratings": int(len(data.ratings)),
            "listeners": {s: {"evaluated (summed over seeds and folds)": int(r["evaluated"]),
                              "excluded (summed over seeds and folds)": int(r["excluded"]),
                              "excluded by reason (summed over seeds and folds)": exclusion_reasons(plan, s)}
                          for s, r in excl.iterrows()},
            "chance_retrieval": chance, "timings": run.timings, "notes": notes,
        }
        (tmp / "run.json").write_text(json.dumps(doc, indent=2, default=str), encoding="utf-8")
        if make_report:
            kind = data.space.kind
            metrics = headline_metrics(kind, summary)
            main_metric = metrics[0] if metrics else None
            plots: dict[str, list] = {}
            tables = {}
            kmax = int(results["k"].max()) if len(results) else None
            for scen in [s for s in ("unseen", "seen") if s in set(summary["scenario"])]:
                tables[scen] = wide_summary(summary, metrics, scen)
                p = [("Metric against K", plot_k_curves(summary, [m for m in metrics if m != "retrieval"], scen))]
                if main_metric:
                    for m in metrics[:2]:
                        if base_metric(m) != "ccc_con" and m != "retrieval":
                            p.append((f"Per-listener gain over {cfg.baseline}: {m}",
                                      plot_gains(results, m, scen, cfg.baseline)))
                if len(confusion):
                    ks = sorted(confusion.loc[confusion["scenario"] == scen, "k"].unique())
                    for dec in ("argmax", "balanced"):
                        if ks:
                            p.append((f"Confusion matrices ({dec} decision, K={ks[-1]})",
                                      plot_confusions(confusion, scen, int(ks[-1]), dec)))
                plots[scen] = p
            plots["other"] = [("Retrieval rate of a same-style seen listener (unseen listeners)",
                               plot_retrieval(summary, chance))]
            dec = decisions(summary)
            descriptions = {m: DESCRIPTIONS.get(base_metric(m), "") + (f"; decision: {dec[m]}" if dec.get(m) else "")
                            for m in sorted(set(summary["metric"]))}
            headline = (f"Label space {data.space.name!r} ({data.space.kind}); {len(data.clips)} clips, "
                        f"{len(data.ratings)} ratings; methods {', '.join(sorted(set(summary['method'])))}; "
                        f"K {sorted(set(results['k']))} (largest {kmax}); seeds {cfg.seeds}; "
                        f"baseline {cfg.baseline}.")
            page = render_html({
                "name": cfg.name, "headline": headline, "notes": notes, "descriptions": descriptions,
                "baseline": cfg.baseline,
                "tables": tables, "plots": plots, "listeners": listeners, "timings": timings,
                "config_yaml": config_yaml, "versions": versions, "extra": list(extra_tables or []),
            })
            (tmp / "report.html").write_text(page, encoding="utf-8")
    return out
