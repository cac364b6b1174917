"""The typed experiment configuration: one object per experiment, loadable from YAML.

Every key is also a command-line flag of ``perser evaluate`` (``--n-folds 3``,
``--k 5,10``, ``--method-params.similar.epochs 5``, ``--mapping.classes.fea null``);
flags override the file. String values may name environment variables
(``corpus: ${IEMOCAP_ROOT}``); an unset variable is an error naming it.

Example::

    name: demo
    corpus: runs/demo/corpus
    space: emotion
    methods: [consensus, similar, finetune]
    k: [5, 10, 20, 30]
    seeds: [0, 1]
    n_folds: 5
    unseen_column: new
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from perser.errors import ConfigError

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class LabelMapping(BaseModel):
    """How one corpus's ratings become ratings in the experiment's label space.

    ``classes`` maps each source class to a target class, or to ``null`` to drop its
    ratings (counted). Every source class that occurs must be listed. ``dimensions``
    maps target dimension -> source dimension (same name when absent); values are
    rescaled linearly from the source scale (``scale``, default the source space's)
    onto the target scale, e.g. 1-7 onto 1-5: ``1 + (v - 1) * 4 / 6``.
    """

    model_config = ConfigDict(extra="forbid")

    classes: dict[str, str | None] | None = None
    dimensions: dict[str, str] | None = None
    scale: tuple[float, float] | None = None


class ExperimentConfig(BaseModel):
    """One evaluation experiment (see :func:`perser.evaluate.evaluate`)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    name: str = Field("experiment", description="name of the run (also the default output folder)")
    description: str = Field("", description="one line saying what the experiment is")
    # ---- data
    corpus: Path | None = Field(None, description="corpus folder (the training corpus of a cross-corpus run)")
    format: str | None = Field(None, description="format of `corpus` (default: detected)")
    corpus_options: dict[str, Any] = Field(default_factory=dict, description="options of the corpus loader")
    eval_corpus: Path | None = Field(None, description="corpus whose listeners are enrolled and tested (cross-corpus)")
    eval_format: str | None = None
    eval_corpus_options: dict[str, Any] = Field(default_factory=dict)
    space: str | None = Field(None, description="label space (of the evaluation corpus); default: its only space")
    train_space: str | None = Field(None, description="label space of the training corpus (default: `space`)")
    dimensions: list[str] | None = Field(None, description="dimensions to keep (dimensional spaces)")
    target_classes: list[str] | None = Field(None, description="classes of the target space when `mapping` maps classes")
    mapping: LabelMapping | None = Field(None, description="mapping of the evaluation corpus's labels")
    train_mapping: LabelMapping | None = Field(None, description="mapping of the training corpus's labels (cross-corpus)")
    features: str | list[str] = Field(
        "egemaps", description="feature spec for perser.features.extract or a precomputed feature file (.npz, "
                               ".parquet, .csv; see perser.features.Features.load), or a list of specs whose vectors are "
                               "concatenated per clip (e.g. [ssl:DIR, text:DIR]; with a list, feature_settings may be "
                               "keyed by spec)")
    feature_cache: Path | None = Field(None, description="feature store folder (default: perser's cache)")
    feature_settings: dict[str, Any] = Field(
        default_factory=dict,
        description="extractor settings, part of the store key (SSL: pooling, precision, batch_size, "
                    "chunk_seconds, pad_unmasked; both: max_duration); use those `perser extract` used")
    workers: int = Field(1, ge=1, description="feature extraction processes")
    # ---- methods
    methods: list[str] | None = Field(None, description="registry names; default: every registered method but the opt-in similar-finetuned")
    method_params: dict[str, dict[str, Any]] = Field(default_factory=dict, description="hyper-parameters per method")
    device: str | None = Field(None, description="where the neural methods train: auto, cpu, cuda, cuda:N (each "
                               "method that has a device hyper-parameter; method_params override it)")
    precision: Literal["auto", "fp32", "bf16"] | None = Field(
        None, description="training arithmetic of the neural methods: auto (bfloat16 autocast on a GPU that has it), "
                          "fp32 or bf16 (as device)")
    baseline: str = Field("consensus", description="method every other is compared with")
    # ---- protocol
    scenarios: list[Literal["unseen", "seen"]] = Field(default_factory=lambda: ["unseen", "seen"])
    k: list[int] = Field(default_factory=lambda: [5, 10, 20, 30], description="enrollment sizes")
    seen_k: list[int] | None = Field(None, description="enrollment sizes for seen listeners (default: k)")
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    n_folds: int = Field(5, ge=2)
    fold_by: Literal["auto", "speaker", "session", "fold", "split"] = "auto"
    folds: list[str | int] | None = Field(None, description="run only these folds (names)")
    folds_file: Path | None = Field(
        None, description="fixed folds of the evaluation corpus from a JSON file in the format of Tavernor & Mower "
                          "Provost's stored folds ({fold: {train_fnames: [...], val_fnames: [...], test_fnames: "
                          "[...]}}, clip file names; see perser.evaluate.fold_file): the same folds for every seed, "
                          "instead of fold_by/n_folds; val_fnames clips are neither enrolled nor tested")
    unseen_column: str | None = Field(None, description="boolean annotators.csv column marking new listeners")
    unseen_fraction: float = Field(0.25, ge=0, lt=1, description="fraction of listeners held out as unseen "
                                   "(0: none, only the seen-listener scenario)")
    max_listeners: int | None = Field(None, ge=1, description="cap on unseen listeners per seed (random)")
    enroll_from: Literal["train", "test"] = "train"
    enroll_strategy: list[str] = Field(default_factory=lambda: ["random"], description="how new listeners' "
                                       "enrollment clips are chosen from their pool: random (the papers' protocol), "
                                       "active, diverse; several at once are compared on the same listeners")
    enroll_strategy_params: dict[str, dict[str, Any]] = Field(default_factory=dict, description="parameters per "
                                                              "enrollment strategy (e.g. active: {criterion: head})")
    min_test: int = Field(5, ge=1, description="fewest test ratings a listener needs")
    common_listeners: bool = Field(True, description="keep only listeners eligible for every K")
    min_train_ratings: int = Field(1, ge=1, description="fewest training ratings of a seen listener")
    min_fold_train_ratings: int = Field(0, ge=0, description="fewest ratings an evaluated listener needs among the "
                                        "fold's training clips of the evaluation corpus (0: no such filter); "
                                        "Tavernor & Mower Provost keep target annotators with at least 30")
    train_splits: list[str] | None = Field(None, description="cross-corpus: train only on the training corpus's "
                                                             "clips of these official splits (clips.split, e.g. "
                                                             "[train] for MSP-Podcast; never its test sets)")
    valid_splits: list[str] | None = Field(None, description="cross-corpus: stop early on the training corpus's clips "
                                                             "of these official splits (e.g. [development] for "
                                                             "MSP-Podcast) instead of a held-out share of the "
                                                             "training clips; they are never trained on")
    # ---- scoring and output
    pool_folds: bool = True
    threshold: float | None = Field(None, gt=0, lt=1, description="multilabel decision threshold (default: each "
                                    "method's own, 0.5 unless it says otherwise)")
    style_column: str | None = Field("style", description="annotators.csv column with perception styles")
    n_bootstrap: int = Field(2000, ge=100)
    ci_level: float = Field(0.95, gt=0, lt=1)
    out: Path | None = Field(None, description="run folder (default: runs/<name>)")
    overwrite: bool = False
    report: bool = True
    progress: bool = True

    @field_validator("k", "seen_k")
    @classmethod
    def _positive(cls, v):
        if v is not None:
            if not v or min(v) < 1:
                raise ValueError("enrollment sizes must be positive integers")
            return sorted(set(v))
        return v

    @model_validator(mode="after")
    def _check(self):
        if self.corpus is None:
            raise ValueError("no corpus given (corpus: PATH, or --corpus/--train PATH)")
        if self.train_mapping is not None and self.eval_corpus is None:
            raise ValueError("train_mapping applies to a cross-corpus run; give eval_corpus too")
        return self

    # ---------------------------------------------------------------- loading
    @property
    def run_dir(self) -> Path:
        return self.out if self.out is not None else Path("runs") / self.name

    def resolved(self) -> dict:
        """The configuration as plain data with absolute paths (what ``config.yaml`` in a run folder holds)."""
        doc = self.model_dump(mode="json")
        for key in ("corpus", "eval_corpus", "feature_cache", "out", "folds_file"):
            if doc.get(key) is not None:
                doc[key] = str(Path(doc[key]).absolute())
        if doc.get("out") is None:
            doc["out"] = str(self.run_dir.absolute())
        return doc


class TrainConfig(BaseModel):
    """One training run: a method fitted on the seen annotators of a corpus (see
    :func:`perser.methods.train`; ``perser train --config`` reads it from YAML, its flags override).

    Example::

        method: similar
        features: egemaps
        space: emotion
        split: train
        params: {epochs: 30, seed: 0}
    """

    model_config = ConfigDict(extra="forbid")

    corpus: Path | None = Field(None, description="corpus folder (perser train's argument)")
    format: str | None = Field(None, description="format of `corpus` (default: detected)")
    method: str | None = Field(None, description="registry name of the method")
    space: str | None = Field(None, description="label space to train on (default: the corpus's only one)")
    features: str | list[str] | None = Field(None, description="egemaps | compare | ssl:MODEL_DIR | text:MODEL_DIR "
                                             "| a feature file (.npz/.parquet/.csv), or a list of specs whose "
                                             "vectors are concatenated per clip ([ssl:DIR, text:DIR])")
    feature_settings: dict[str, Any] = Field(default_factory=dict, description="extractor settings, part of the "
                                             "store key: the ones `perser extract` used (for a list of feature "
                                             "sets, shared or keyed by spec)")
    feature_cache: Path | None = Field(None, description="feature store folder (default: perser's cache)")
    split: str | None = Field(None, description="train on the clips of this split only (clips.split column)")
    params: dict[str, Any] = Field(default_factory=dict, description="hyper-parameters of the method")
    new_listeners: bool = Field(False, description="also train on the listeners annotators.csv marks as new "
                                                   "(column 'new'); by default they are left out, to be enrolled")

    @classmethod
    def from_yaml(cls, path: str | Path | None, overrides: dict[str, Any] | None = None) -> "TrainConfig":
        """The configuration in ``path`` (YAML; relative ``corpus``/``feature_cache`` read
        relative to its folder) with ``overrides`` (keys of this config; ``params`` and
        ``feature_settings`` are merged key by key, the others replace)."""
        doc: dict = {}
        if path is not None:
            doc = read_yaml(path)
            folder = Path(path).resolve().parent
            for key in ("corpus", "feature_cache"):
                v = doc.get(key)
                if isinstance(v, str) and not _ENV.search(v) and not os.path.isabs(v):
                    doc[key] = str(folder / v)
            for key in ("params", "feature_settings"):
                if not isinstance(doc.get(key) or {}, dict):
                    raise ConfigError(f"{path}: {key!r} must be a mapping")
        for key, value in (overrides or {}).items():
            if key in ("params", "feature_settings"):
                doc[key] = {**(doc.get(key) or {}), **(value or {})}
            elif value is not None:
                doc[key] = value
        return _validated(cls, doc, path)


def _validated(model: type[BaseModel], doc: dict, path: str | Path | None) -> Any:
    """``doc`` with its ``${VAR}`` expanded, validated as ``model``; errors as one
    :class:`ConfigError` (``file: key: message; key: message``)."""
    doc = _expand(doc)
    try:
        return model.model_validate(doc)
    except ValidationError as e:
        lines = [f"{'.'.join(str(x) for x in err['loc']) or 'config'}: {err['msg']}" for err in e.errors()]
        raise ConfigError((f"{path}: " if path is not None else "") + "; ".join(lines)) from None


def _expand(v: Any, where: str = "") -> Any:
    if isinstance(v, str):
        def sub(m):
            name = m.group(1)
            if name not in os.environ:
                raise ConfigError(f"{where or 'config'}: environment variable {name} is not set "
                                  f"(set it, or override the key with a flag)")
            return os.environ[name]
        return _ENV.sub(sub, v)
    if isinstance(v, dict):
        return {k: _expand(x, f"{where}.{k}" if where else str(k)) for k, x in v.items()}
    if isinstance(v, list):
        return [_expand(x, where) for x in v]
    return v


def read_yaml(path: str | Path) -> dict:
    """A YAML mapping from ``path``; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: malformed YAML: {e}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys")
    return doc


def parse_value(text: str) -> Any:
    """A flag's value: YAML scalars (``3``, ``0.5``, ``true``, ``null``); ``a,b`` is a list."""
    text = text.strip()
    if text.startswith("[") or text.startswith("{"):
        return yaml.safe_load(text)
    if "," in text:
        return [parse_value(x) for x in text.split(",") if x.strip()]
    return yaml.safe_load(text)


def set_path(doc: dict, dotted: str, value: Any) -> None:
    """Set ``doc[a][b][c] = value`` for ``dotted = "a.b.c"``.

    Dashes read as underscores in the config's own keys and in hyper-parameter names
    (``method_params.<method>.<param>``), never in method or class names."""
    parts = dotted.split(".")
    head = parts[0].replace("-", "_")
    if head not in ExperimentConfig.model_fields:
        raise ConfigError(f"unknown config key {head!r} (from --{dotted}); known keys: "
                          f"{', '.join(ExperimentConfig.model_fields)}")
    cur = doc
    keys = [head, *parts[1:]]
    if head == "method_params" and len(keys) == 3:  # --method-params.random-annotator.min-ratings
        keys[2] = keys[2].replace("-", "_")
    for key in keys[:-1]:
        if not isinstance(cur.get(key), dict):
            cur[key] = {}
        cur = cur[key]
    field = ExperimentConfig.model_fields.get(head)
    if len(keys) == 1 and field is not None and "list" in str(field.annotation) and not isinstance(value, list) \
            and value is not None:
        value = [value]
    cur[keys[-1]] = value


ALIASES = {"train": "corpus", "eval": "eval_corpus", "seed": "seeds", "method": "methods"}


def parse_overrides(args: list[str]) -> dict[str, Any]:
    """``["--k", "5,10", "--n-folds=3", "--report"]`` -> ``{"k": [5, 10], "n_folds": 3, "report": True}``.

    A flag without a value is ``true``; ``--no-<key>`` is ``false``.
    """
    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        a = args[i]
        if not a.startswith("--"):
            raise ConfigError(f"unexpected argument {a!r}; config keys are given as --key value")
        key, eq, val = a[2:].partition("=")
        if eq:
            value: Any = parse_value(val)
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            value = parse_value(args[i + 1])
            i += 1
        elif key.startswith("no-"):
            key, value = key[3:], False
        else:
            value = True
        head, dot, rest = key.partition(".")
        head = head.replace("-", "_")
        head = ALIASES.get(head, head)
        out[head + (dot + rest if dot else "")] = value
        i += 1
    return out


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None,
                base: dict | None = None) -> ExperimentConfig:
    """The configuration in ``path`` (YAML) with ``overrides`` (dotted keys) applied.

    Relative paths in the file are read relative to the file's folder.
    """
    doc: dict = dict(base or {})
    if path is not None:
        file_doc = read_yaml(path)
        folder = Path(path).resolve().parent
        for key in ("corpus", "eval_corpus", "feature_cache", "out", "folds_file"):
            v = file_doc.get(key)
            if isinstance(v, str) and not _ENV.search(v) and not os.path.isabs(v) and key != "out":
                file_doc[key] = str(folder / v)
        doc.update(file_doc)
    for dotted, value in (overrides or {}).items():  # before expansion: a flag may replace a ${VAR}
        set_path(doc, dotted, value)
    return _validated(ExperimentConfig, doc, path)


def recipe_path(name: str) -> Path:
    """The packaged recipe ``name`` (``perser/recipes/<name>.yaml``)."""
    from importlib import resources

    folder = resources.files("perser") / "recipes"
    f = folder / f"{name.removesuffix('.yaml')}.yaml"
    if not f.is_file():
        known = sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")) \
            if folder.is_dir() else []
        raise ConfigError(f"no recipe {name!r}; recipes: {', '.join(known) or 'none'}")
    return Path(str(f))
