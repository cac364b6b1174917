"""``perser train``, ``perser enroll`` and ``perser predict``: thin shells over
:mod:`perser.methods`.

Features come either from the feature store (``--features egemaps``, ``compare``,
``ssl:MODEL_DIR`` or ``text:MODEL_DIR``, computed on first use; or a list of them,
``--features '[ssl:DIR, text:DIR]'``, concatenated per clip as ``perser evaluate`` does) or
from a precomputed file (``--features feats.npz`` / ``.parquet`` / ``.csv``, indexed by clip
id, as ``perser extract --export`` writes). A trained model records its feature sets, so
``enroll`` and ``predict`` make the same features from audio files; a model with text
features also needs each clip's transcript (a ``transcript`` column of the ratings CSV or of
``predict --clips``'s CSV, or the transcripts of ``--corpus``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer


# --------------------------------------------------------------------- train
def _key_values(pairs: list[str], flag: str, into: dict) -> dict:
    """``KEY=VALUE`` pairs (YAML values, see :func:`perser.cli._common.parse_key_value`) added
    to ``into``, later ones winning; a malformed pair names the flag."""
    from perser.cli._common import parse_key_value

    for kv in pairs:
        key, value = parse_key_value(kv, flag)
        into[key] = value
    return into


def parse_features(text: Optional[str]):
    """``--features``: one spec, or a YAML list of specs (``'[ssl:DIR, text:DIR]'``)."""
    import yaml

    from perser.errors import ConfigError

    if text is None or not text.strip().startswith("["):
        return text
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"--features {text!r}: not a YAML list ({e})") from None
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"--features {text!r}: give a non-empty list of feature specs, e.g. '[ssl:DIR, text:DIR]'")
    return [v.strip() for v in value]


def train_command(
    path: Path = typer.Argument(..., help="The corpus folder."),
    features: Optional[str] = typer.Option(None, "--features", "-f", help="egemaps | compare | ssl:MODEL_DIR | text:MODEL_DIR | a features file (.npz/.parquet/.csv), or a list of specs concatenated per clip: '[ssl:DIR, text:DIR]'."),
    method: Optional[str] = typer.Option(None, "--method", "-m", help="consensus | random-annotator | mean-annotator | similar | finetune | meta"),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write the trained model to."),
    space: Optional[str] = typer.Option(None, "--space", "-s", help="Label space to train on [default: the corpus's only one]."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML with method, space, features, split and params (flags override)."),
    split: Optional[str] = typer.Option(None, "--split", help="Train on the clips of this split only (clips.split column)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Training epochs."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Mini-batch size."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Learning rate."),
    device: Optional[str] = typer.Option(None, "--device", help="Where to train: auto, cpu, cuda, cuda:N [default: auto, this rank's GPU under torchrun with NCCL, else the CPU]."),
    precision: Optional[str] = typer.Option(None, "--precision", help="Training arithmetic: auto, fp32 or bf16 [default: auto, bfloat16 autocast on a GPU that has it]."),
    param: List[str] = typer.Option([], "--param", "-p", help="Any hyper-parameter as KEY=VALUE (YAML value), repeatable."),
    feature_setting: List[str] = typer.Option([], "--feature-setting", "-F", help="Extractor setting as KEY=VALUE (pooling, precision, pad_unmasked, max_duration ...), repeatable: the ones perser extract used; for a list of feature sets, per set as SPEC='{pooling: mean}'."),
    fmt: Optional[str] = typer.Option(None, "--format", help="Corpus format [default: detected]."),
    cache: Optional[Path] = typer.Option(None, "--cache", help="Feature store [default: $PERSER_CACHE or ~/.cache/perser/features]."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Checkpoint folder; rerun the same command to resume."),
    new_listeners: Optional[bool] = typer.Option(None, "--new-listeners/--seen-only", help="Also train on the listeners annotators.csv marks as new (column 'new') [default: seen only]."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
    force: bool = typer.Option(False, "--force", help="Replace an existing non-empty model folder."),
) -> None:
    """Train a personalization method on the seen annotators of a corpus (runs under torchrun too).

    Listeners that ``annotators.csv`` marks as new (a true ``new`` column, as in the
    demo corpus) are left out unless ``--new-listeners`` (or ``new_listeners: true``)
    asks for them: they are the ones to enroll, and a model trained on them would
    hold their own heads."""
    from rich.console import Console

    from perser.config import TrainConfig
    from perser.methods import distributed, train

    err = Console(stderr=True)
    params = _key_values(param, "--param", {})
    for k, v in (("seed", seed), ("epochs", epochs), ("batch_size", batch_size), ("lr", lr), ("device", device),
                 ("precision", precision)):
        if v is not None:
            params[k] = v
    if checkpoint is not None:
        params["checkpoint_dir"] = str(checkpoint)
    cfg = TrainConfig.from_yaml(config, {
        "corpus": path, "method": method, "features": parse_features(features), "space": space, "split": split, "format": fmt,
        "feature_cache": cache, "params": params, "new_listeners": new_listeners,
        "feature_settings": _key_values(feature_setting, "--feature-setting", {}),
    })
    distributed.init()
    main = distributed.is_main()
    model = train(cfg, out, force=force, progress=progress and main and err.is_terminal,
                  echo=lambda line: err.print(line, highlight=False, soft_wrap=True))
    if main:
        hist = getattr(model, "history_", None)
        extra = f"; best epoch {hist.best_epoch + 1} of {hist.epochs_run}" if hist is not None else ""
        typer.echo(f"model written: {out}{extra}")
    distributed.barrier()
    distributed.shutdown()


# -------------------------------------------------------------------- enroll
def enroll_command(
    model_dir: Path = typer.Argument(..., help="A trained model folder."),
    annotator: str = typer.Option(..., "--annotator", "-a", help="Name of the new listener."),
    ratings: Path = typer.Option(..., "--ratings", "-r", help="CSV: clip_id or path, the listener's label column(s), and transcript for a model with text features."),
    out: Path = typer.Option(..., "--out", "-o", help="Profile folder to write."),
    features: Optional[str] = typer.Option(None, "--features", "-f", help="Features file with the clips' features (.npz/.parquet/.csv)."),
    corpus: Optional[Path] = typer.Option(None, "--corpus", help="Corpus whose clips the clip ids name (features from the store)."),
    cache: Optional[Path] = typer.Option(None, "--cache", help="Feature store."),
) -> None:
    """Enroll a new listener from their rated clips; write their profile."""
    from perser.methods import load_model
    from perser.methods.inputs import clip_features, read_ratings

    model = load_model(model_dir)
    r = read_ratings(ratings, model.space_)
    X = clip_features(model, r.clip_ids, r.paths, features=features, corpus=corpus, cache_dir=cache,
                      transcripts=r.transcripts)
    y = r.y
    profile = model.enroll(X, y, annotator=annotator)
    profile.save(out)
    summary = {k: v for k, v in profile.data.items() if k != "ranking"}
    typer.echo(f"profile written: {out}  ({model.name}, K={len(y)}) {json.dumps(summary, default=str)}")


# ------------------------------------------------------------------- predict
def predict_command(
    model_dir: Path = typer.Argument(..., help="A trained model folder."),
    items: Optional[List[str]] = typer.Argument(None, help="Audio files, or clip ids (with --features or --corpus)."),
    profile: Optional[Path] = typer.Option(None, "--profile", "-p", help="A listener's profile folder [default: no listener]."),
    clips: Optional[Path] = typer.Option(None, "--clips", "-i", help="CSV of the clips instead of ITEMS: clip_id and/or path, and transcript for a model with text features."),
    features: Optional[str] = typer.Option(None, "--features", "-f", help="Features file holding the clips (.npz/.parquet/.csv)."),
    corpus: Optional[Path] = typer.Option(None, "--corpus", help="Corpus whose clips the clip ids name."),
    output_format: str = typer.Option("csv", "--format", help="csv | json"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write here instead of standard output."),
    cache: Optional[Path] = typer.Option(None, "--cache", help="Feature store."),
) -> None:
    """Predict a listener's labels for clips (CSV or JSON)."""
    from perser.errors import ConfigError
    from perser.methods import Profile, load_model
    from perser.methods.inputs import clip_features, read_clips

    if output_format not in ("csv", "json"):
        raise ConfigError(f"--format {output_format!r}: use csv or json")
    if bool(items) == (clips is not None):
        raise ConfigError("name the clips either as arguments or with --clips FILE (one of the two)")
    model = load_model(model_dir)
    prof = Profile.load(profile) if profile is not None else None
    if clips is not None:
        cl = read_clips(clips)
        names = cl.names
        X = clip_features(model, cl.clip_ids, cl.paths, features=features, corpus=corpus, cache_dir=cache,
                          transcripts=cl.transcripts)
    else:
        names = list(items)
        X = clip_features(model, names, features=features, corpus=corpus, cache_dir=cache)
    df = model.predict(prof, X).to_frame(names)
    if output_format == "csv":
        text = df.to_csv()
    else:
        text = json.dumps(
            {"method": model.name, "annotator": prof.annotator if prof else None, "space": model.space_.name,
             "predictions": json.loads(df.reset_index().to_json(orient="records"))},
            indent=2,
        ) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        from perser._io import atomic_write

        atomic_write(out, text)
        typer.echo(f"predictions written: {out}", err=True)


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
    app.command("enroll")(enroll_command)
    app.command("predict")(predict_command)
