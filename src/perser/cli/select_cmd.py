"""``perser select``: the next clips to ask a new listener."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def _read_pool(file: Path) -> tuple[list[str], str]:
    """Items of a pool CSV (``clip_id`` or ``path`` column; other columns ignored)."""
    from perser.corpus.table import read_csv
    from perser.errors import ConfigError

    df = read_csv(file, dtype=str, keep_default_na=False)
    col = "clip_id" if "clip_id" in df.columns else "path" if "path" in df.columns else None
    if col is None:
        raise ConfigError(f"{file}: needs a 'clip_id' or 'path' column (has {list(df.columns)})")
    items = df[col].tolist()
    empty = [i + 2 for i, v in enumerate(items) if not str(v).strip()]
    if empty:
        raise ConfigError(f"{file}:{empty[0]}: empty {col}")
    if col == "path":
        items = [str((file.parent / p).resolve()) if not Path(p).is_absolute() else p for p in items]
    dup = sorted({v for v in items if items.count(v) > 1})
    if dup:
        raise ConfigError(f"{file}: {col} {dup[0]!r} is listed twice")
    if not items:
        raise ConfigError(f"{file}: the pool is empty")
    return items, col


def select_command(
    model_dir: Path = typer.Argument(..., help="A trained model folder."),
    pool: Path = typer.Option(..., "--pool", help="CSV of the clips that may be asked: a clip_id or path column."),
    ratings: Optional[Path] = typer.Option(None, "--ratings", "-r", help="CSV of the listener's answers so far "
                                           "(as for perser enroll: clip_id or path, and the label column(s))."),
    k: int = typer.Option(1, "--k", "-k", help="How many clips to choose (more than one: batch mode)."),
    strategy: str = typer.Option("active", "--strategy", help="random | active | diverse (parameters: "
                                 "active:criterion=head,density=1)."),
    param: List[str] = typer.Option([], "--param", "-p", help="A strategy parameter KEY=VALUE, repeatable."),
    seed: int = typer.Option(0, "--seed", help="Random seed of the strategy."),
    features: Optional[str] = typer.Option(None, "--features", "-f", help="Features file with the clips' features."),
    corpus: Optional[Path] = typer.Option(None, "--corpus", help="Corpus whose clips the clip ids name."),
    cache: Optional[Path] = typer.Option(None, "--cache", help="Feature store."),
) -> None:
    """Print the next clips to ask a new listener (CSV: rank, clip_id or path, expected gain)."""
    import sys

    import numpy as np
    import pandas as pd

    from perser.cli._common import parse_key_value
    from perser.enroll import make_strategy
    from perser.errors import ConfigError
    from perser.methods import load_model
    from perser.methods.inputs import clip_features, read_ratings

    if k < 1:
        raise ConfigError(f"--k must be at least 1, got {k}")
    params = dict(parse_key_value(p, "--param") for p in param)
    strat = make_strategy(strategy, seed=seed, **params)
    model = load_model(model_dir)
    items, col = _read_pool(pool)

    def feats(ids, paths):
        return clip_features(model, ids, paths, features=features, corpus=corpus, cache_dir=cache)

    X_pool = feats(items if col == "clip_id" else None, items if col == "path" else None)
    rated_idx, y_in, X_out, y_out = [], None, None, None
    if ratings is not None:
        r = read_ratings(ratings, model.space_)
        r_items, y = (r.clip_ids if r.clip_ids is not None else r.paths), r.y
        pos = {c: i for i, c in enumerate(items)}
        inside = np.array([c in pos for c in r_items], dtype=bool)
        rated_idx = [pos[c] for c in np.asarray(r_items, dtype=object)[inside]]
        y_in = y[inside]
        if (~inside).any():
            out_idx = np.flatnonzero(~inside)
            X_out = feats(None if r.clip_ids is None else [r.clip_ids[i] for i in out_idx],
                          None if r.paths is None else [r.paths[i] for i in out_idx])
            y_out = y[~inside]
    strat.fit(model)
    sel = strat.select(X_pool, n=k, rated=rated_idx, y=y_in, X_rated=X_out, y_rated=y_out)
    if len(sel.indices) < k:
        typer.echo(f"only {len(sel.indices)} clips of the pool are not rated yet", err=True)
    df = pd.DataFrame({"rank": np.arange(1, len(sel.indices) + 1), col: [items[i] for i in sel.indices],
                       "expected_gain": np.round(sel.gains, 6)})
    sys.stdout.write(df.to_csv(index=False))
    typer.echo(f"strategy {strat.name}: expected gain in {sel.details.get('unit', '')}", err=True)


def register(app: typer.Typer) -> None:
    app.command("select")(select_command)
