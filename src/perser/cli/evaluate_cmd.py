"""``perser evaluate`` and ``perser demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from perser.cli._common import report_warnings


def _keys_help() -> str:
    from perser.config import ExperimentConfig

    lines = []
    for name, f in ExperimentConfig.model_fields.items():
        desc = f.description or ""
        default = f.get_default(call_default_factory=True)
        shown = ",".join(map(str, default)) if isinstance(default, list) else default
        if shown is not None and shown != {} and shown != "":
            desc = f"{desc} [default: {str(shown).lower() if isinstance(shown, bool) else shown}]".strip()
        lines.append(f"--{name.replace('_', '-')}" + (f": {desc}" if desc else ""))
    return "\n\n".join(lines)


def register(app: typer.Typer) -> None:
    @app.command(
        "evaluate",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        help="Run every method over the evaluation protocol (seen/unseen listeners, K sweep, seeds) and write "
             "a run folder (results.csv, summary.csv, report.html).\n\nEvery config key is also a flag and "
             "overrides the file: --k 5,10 --seeds 0,1 --method-params.similar.top-k 3 --train PATH --eval PATH. "
             "Lists are comma-separated.",
        epilog="Config keys:\n\n" + _keys_help(),
    )
    def evaluate_cmd(
        ctx: typer.Context,
        config: Optional[Path] = typer.Option(None, "--config", "-c", help="Experiment YAML file."),
        recipe: Optional[str] = typer.Option(None, "--recipe", help="A packaged recipe (see --list-recipes)."),
        list_recipes: bool = typer.Option(False, "--list-recipes", help="List the packaged recipes and exit."),
        show_config: bool = typer.Option(False, "--show-config", help="Print the resolved config and exit."),
    ) -> None:
        import yaml

        from perser.config import load_config, parse_overrides, recipe_path
        from perser.errors import ConfigError
        from perser.evaluate.report import wide_console

        console = wide_console()
        if list_recipes:
            from importlib import resources

            folder = resources.files("perser") / "recipes"
            for f in sorted(folder.iterdir(), key=lambda p: p.name):
                if f.name.endswith(".yaml"):
                    head = (yaml.safe_load(f.read_text(encoding="utf-8")) or {}).get("description", "")
                    console.print(f"[bold]{f.name.removesuffix('.yaml')}[/bold]  {head}", highlight=False)
            return
        if config is not None and recipe is not None:
            raise ConfigError("give --config or --recipe, not both")
        path = recipe_path(recipe) if recipe else config
        cfg = load_config(path, parse_overrides(list(ctx.args)))
        if show_config:
            console.print(yaml.safe_dump(cfg.resolved(), sort_keys=False), highlight=False)
            return
        from perser.evaluate import evaluate

        with report_warnings(console):
            run = evaluate(cfg, console=console)
        console.print(f"run folder: [bold]{run.folder}[/bold] (report.html, results.csv, summary.csv)", highlight=False)

    @app.command("demo", help="Build the synthetic demo corpus, extract eGeMAPS, run every method over the K "
                              "sweep on new and seen listeners, write the report and print the summary.")
    def demo_cmd(
        out: Path = typer.Option(Path("perser-demo"), "--out", "-o", help="Folder for corpus, features and run."),
        quick: bool = typer.Option(False, "--quick", help="A much smaller corpus and protocol (seconds)."),
        space: str = typer.Option("emotion", "--space", help="emotion (categorical) or avd (dimensional)."),
        seeds: Optional[str] = typer.Option(None, "--seeds", help="Comma-separated seeds (default: the demo's)."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run folder."),
        workers: Optional[int] = typer.Option(None, "--workers", help="Feature extraction processes (default: CPUs, "
                                                                        "at most 2)."),
    ) -> None:
        from perser.evaluate.demo import run_demo
        from perser.evaluate.report import wide_console

        console = wide_console()
        with report_warnings(console):
            run, seconds = run_demo(out, quick=quick, space=space, overwrite=overwrite, workers=workers,
                                    seeds=None if seeds is None else [int(s) for s in seeds.split(",") if s.strip()],
                                    console=console)
        console.print(f"demo finished in {seconds:.0f} s; report: [bold]{run.folder / 'report.html'}[/bold]",
                      highlight=False)
