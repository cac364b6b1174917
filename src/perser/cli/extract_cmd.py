"""``perser extract``: compute features of a corpus (or audio files) into the feature store."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from perser.cli._common import OPTION_HELP, parse_options

FORMAT_HELP = (
    "Corpus format (table, iemocap, msp-podcast, msp-improv, crema-d); detected from the layout when omitted. "
    "A folder that is no corpus is read as a folder of audio files."
)


def extract_command(
    path: Path = typer.Argument(..., help="A corpus folder, a folder of audio files, or one audio file."),
    features: str = typer.Option(..., "--features", "-f", help="egemaps | compare | ssl:MODEL_DIR | text:MODEL_DIR (a corpus's transcripts)"),
    cache: Optional[Path] = typer.Option(None, "--cache", help="Feature store (default: $PERSER_CACHE or ~/.cache/perser/features)."),
    workers: int = typer.Option(1, "--workers", "-j", min=1, help="openSMILE worker processes (SSL: audio-reading threads)."),
    device: Optional[str] = typer.Option(None, "--device", help="SSL device: cpu, cuda, cuda:1 (default: the GPU when present)."),
    shard: Optional[str] = typer.Option(None, "--shard", help="Extract only shard i of N ('i/N', 0-based); under torchrun each rank takes its own."),
    fmt: Optional[str] = typer.Option(None, "--format", help=FORMAT_HELP),
    pooling: Optional[str] = typer.Option(None, "--pooling", help="SSL pooling over time: mean | mean+std [default: mean]; text pooling over tokens: cls | mean [default: cls, the [CLS] vector]."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="SSL clips per forward pass."),
    precision: str = typer.Option("auto", "--precision", help="SSL precision: auto (fp16 on GPU) | fp32 | fp16 | bf16."),
    max_duration: Optional[float] = typer.Option(None, "--max-duration", help="Fail clips longer than this many seconds."),
    pad_unmasked: bool = typer.Option(False, "--pad-unmasked", help="SSL models without attention masks (wav2vec2-base, HuBERT-base): batch clips of different lengths zero-padded (faster; slightly different numbers, own cache key)."),
    export: Optional[Path] = typer.Option(None, "--export", "-o", help="Also write the features to a .npz, .parquet or .csv file."),
    option: Optional[List[str]] = typer.Option(None, "--option", metavar="KEY=VALUE", help=OPTION_HELP),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Extract features into the content-addressed store; print where they are and what was computed."""
    from rich.console import Console

    from perser.cli._common import report_warnings
    from perser.errors import ConfigError
    from perser.features import extract, parse_shard

    out, err = Console(), Console(stderr=True)
    parse_shard(shard)  # a bad --shard fails before any corpus is read
    settings: dict = {"max_duration": max_duration}
    if features.startswith("ssl:"):
        settings.update(pooling=pooling or "mean", batch_size=batch_size, precision=precision, pad_unmasked=pad_unmasked)
    elif features.startswith("text:"):
        settings = {"pooling": pooling}  # None: the text extractor's default ([CLS])
    elif pooling is not None:
        raise ConfigError(f"--pooling applies to ssl: and text: features, not {features!r}")
    with report_warnings(err):
        source = _source(path, fmt, err, parse_options(option))
        feats = extract(source, features, cache_dir=cache, workers=workers, device=device, shard=shard,
                        progress=err if progress and err.is_terminal else False, **settings)  # bars on stderr
    shape = "x".join(str(s) for s in feats.X.shape[1:])
    out.print(f"features: {feats.location}  ({feats.spec}, {len(feats)} clips x {shape})", highlight=False, soft_wrap=True)
    out.print(
        f"computed {feats.n_computed}, reused {feats.n_reused}, failed {len(feats.failures)}  ({feats.seconds:.1f} s)",
        highlight=False,
    )
    for cid, msg in list(feats.failures.items())[:10]:
        err.print(f"[yellow]failed:[/yellow] {cid}: {msg}", highlight=False, soft_wrap=True)
    if len(feats.failures) > 10:
        err.print(f"[yellow]... and {len(feats.failures) - 10} more failed clips[/yellow]", highlight=False)
    if export is not None:
        out.print(f"written: {feats.save(export)}", highlight=False, soft_wrap=True)


def _source(path: Path, fmt: Optional[str], err, options: Optional[dict] = None):
    """A Corpus when ``path`` is one (or ``--format`` says so), else the path itself (audio files).

    ``options`` go to the corpus loader; they are refused for a folder of audio files.
    """
    from perser.errors import ConfigError, CorpusError, FeatureError

    options = options or {}
    if not path.exists():
        raise FeatureError(f"{path}: no such file or folder")
    if fmt is not None:
        from perser.corpus import load_corpus

        return load_corpus(path, format=fmt, **options)
    if path.is_dir():
        from perser.corpus import detect_format, load_corpus

        try:
            fmt = detect_format(path)
        except CorpusError:
            if options:
                raise ConfigError(f"{path} is not a corpus layout: loader options {sorted(options)} do not apply") from None
            err.print(f"{path}: not a corpus layout; extracting every audio file under it", style="dim", highlight=False)
            return path
        err.print(f"detected corpus format: {fmt}", style="dim", highlight=False)
        return load_corpus(path, format=fmt, **options)
    if options:
        raise ConfigError(f"{path} is a file, not a corpus: loader options {sorted(options)} do not apply")
    return path


def register(app: typer.Typer) -> None:
    app.command("extract")(extract_command)
