"""``perser corpus``: describe, convert and synthesise corpora."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from perser.cli._common import OPTION_HELP, parse_options, report_warnings

corpus_app = typer.Typer(
    name="corpus",
    help="Describe, convert and synthesise corpora (per-annotator ratings kept).",
    no_args_is_help=True,
)

FORMAT_HELP = "Corpus format (table, iemocap, msp-podcast, msp-improv, crema-d); detected from the layout when omitted."


def _load(path: Path, fmt: Optional[str], err: Console, options: Optional[dict] = None):
    from perser.corpus.formats import check_options, detect_format, load_corpus

    options = options or {}
    if fmt is None:
        fmt = detect_format(path)
        err.print(f"detected format: {fmt}", style="dim", highlight=False)
    check_options(fmt, options)  # before the status line: a typo fails at once
    with err.status(f"loading {path} ...") if err.is_terminal else contextlib.nullcontext():
        return load_corpus(path, format=fmt, **options)


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _dist_table(title: str, rows: dict[str, dict]) -> Table:
    t = Table(title=title, title_justify="left")
    t.add_column("")
    for c in ("n", "min", "q1", "median", "q3", "max", "mean"):
        t.add_column(c, justify="right")
    for name, d in rows.items():
        t.add_row(name, *(_fmt(d.get(c)) for c in ("n", "min", "q1", "median", "q3", "max", "mean")))
    return t


def print_description(d: dict, console: Console) -> None:
    """Render :func:`perser.corpus.stats.describe` output as rich tables."""
    t = Table(title=f"corpus {d['name']}" + (f" ({d['format']})" if d.get("format") else ""), title_justify="left",
              show_header=False)
    t.add_column("", style="bold")
    t.add_column("", justify="right")
    for key, label in (("n_clips", "clips"), ("n_ratings", "ratings"), ("n_annotators", "annotators"),
                       ("n_self_evaluations", "self-evaluations"), ("clips_without_ratings", "clips without ratings")):
        t.add_row(label, _fmt(d[key]))
    t.add_row("speakers", _fmt(d["speakers"]["n"]))
    if d.get("duration"):
        t.add_row("hours of audio", _fmt(d["duration"]["hours"]))
    console.print(t)
    console.print(_dist_table("distributions", {
        "ratings per clip": d["ratings_per_clip"],
        "clips per annotator": d["clips_per_annotator"],
        "clips per speaker": d["speakers"]["clips_per_speaker"],
    }))
    for col, counts in d.get("splits", {}).items():
        s = Table(title=f"clips per {col}", title_justify="left")
        s.add_column(col)
        s.add_column("clips", justify="right")
        for k, v in counts.items():
            s.add_row(k, _fmt(v))
        console.print(s)
    for name, sp in d["spaces"].items():
        ag = sp.get("agreement", {})
        if sp["kind"] == "dimensional":
            console.print(f"[bold]space {name}[/bold] (dimensional, scale {sp['scale'][0]:g}–{sp['scale'][1]:g}): "
                          f"{sp['n_ratings']:,} ratings of {sp['n_clips_rated']:,} clips by "
                          f"{sp['n_annotators']:,} annotators", highlight=False)
            t = Table()
            for c in ("dimension", "mean", "std", "min", "median", "max", "Krippendorff α (interval)"):
                t.add_column(c, justify="left" if c == "dimension" else "right")
            for dim, x in sp["label_distribution"].items():
                t.add_row(dim, _fmt(x["mean"]), _fmt(x["std"]), _fmt(x["min"]), _fmt(x["median"]), _fmt(x["max"]),
                          _fmt((ag.get("krippendorff_alpha") or {}).get(dim)))
            console.print(t)
            continue
        console.print(f"[bold]space {name}[/bold] ({sp['kind']}): {sp['n_ratings']:,} ratings of "
                      f"{sp['n_clips_rated']:,} clips by {sp['n_annotators']:,} annotators", highlight=False)
        t = Table()
        for c in ("class", "ratings", "share"):
            t.add_column(c, justify="left" if c == "class" else "right")
        per = ag.get("per_class") or {}
        if per:
            t.add_column("Fleiss κ", justify="right")
            t.add_column("Krippendorff α", justify="right")
        for cls, x in sp["label_distribution"].items():
            extra = [_fmt(per[cls]["fleiss_kappa"]), _fmt(per[cls]["krippendorff_alpha"])] if per else []
            t.add_row(cls, _fmt(x["count"]), _fmt(x["share"]), *extra)
        console.print(t)
        if ag:
            line = f"  Fleiss' κ {_fmt(ag.get('fleiss_kappa'))}, Krippendorff's α (nominal) {_fmt(ag.get('krippendorff_alpha'))}"
            if "plurality_share" in ag:
                line += f", plurality share {_fmt(ag.get('plurality_share'))}"
            if per:
                line = "  mean over classes:" + line[1:]
            console.print(line + f" (over {ag['n_clips_pairable']:,} clips rated twice or more)", highlight=False, soft_wrap=True)


@corpus_app.command("stats")
def stats_cmd(
    path: Path = typer.Argument(..., help="Corpus root folder."),
    format: Optional[str] = typer.Option(None, "--format", "-f", help=FORMAT_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON instead of tables."),
    option: Optional[List[str]] = typer.Option(None, "--option", "-o", metavar="KEY=VALUE", help=OPTION_HELP),
) -> None:
    """Print the shape of a corpus and its agreement figures."""
    from perser.corpus.stats import describe

    options = parse_options(option)
    out, err = Console(), Console(stderr=True)
    with report_warnings(err):
        corpus = _load(path, format, err, options)
        d = describe(corpus)
    if as_json:
        typer.echo(json.dumps(d, indent=2, ensure_ascii=False))
    else:
        print_description(d, out)


@corpus_app.command("convert")
def convert_cmd(
    path: Path = typer.Argument(..., help="Corpus root folder."),
    out: Path = typer.Argument(..., help="Folder to write the table-format corpus to."),
    format: Optional[str] = typer.Option(None, "--format", "-f", help=FORMAT_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
    option: Optional[List[str]] = typer.Option(None, "--option", "-o", metavar="KEY=VALUE", help=OPTION_HELP),
) -> None:
    """Write any supported corpus in perser's plain table format (audio is referenced, not copied)."""
    from perser.corpus.table import write

    from perser.errors import CorpusError

    options = parse_options(option)
    if out.exists() and not overwrite:
        raise CorpusError(f"{out} exists; pass --overwrite to replace it")
    err = Console(stderr=True)
    with report_warnings(err):
        corpus = _load(path, format, err, options)
        write(corpus, out, overwrite=overwrite)
    typer.echo(f"wrote {out} ({len(corpus.clips):,} clips, {len(corpus.ratings):,} ratings, "
               f"{corpus.ratings['annotator_id'].nunique():,} annotators)")


@corpus_app.command("make-demo")
def make_demo_cmd(
    out: Path = typer.Argument(..., help="Folder to create."),
    clips: int = typer.Option(1500, "--clips", min=1, help="Number of clips."),
    annotators: int = typer.Option(120, "--annotators", min=1, help="Number of seen listeners."),
    new: int = typer.Option(40, "--new", min=0, help="Number of new listeners held out for enrollment."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same bytes)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
) -> None:
    """Synthesise the demo corpus (speech-like audio, simulated listeners; no download)."""
    from perser.corpus.synthetic import make_demo

    err = Console(stderr=True)
    with report_warnings(err):
        path = make_demo(out, n_clips=clips, n_annotators=annotators, n_new=new, seed=seed, overwrite=overwrite)
    typer.echo(f"wrote the demo corpus to {path}")


def register(app: typer.Typer) -> None:
    """Add the ``corpus`` command group to the ``perser`` app."""
    app.add_typer(corpus_app, name="corpus")
