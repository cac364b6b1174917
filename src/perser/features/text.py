"""Text features of each clip's transcript from a local Hugging Face text encoder (``text:DIR``).

Tavernor & Mower Provost concatenate frozen speech features with BERT features of the
transcript; their loaders take the ``[CLS]`` vector of the encoder's last hidden layer
(``jtavernor/SER-Datasets``, ``src/SERDatasets/features.py``, ``get_bert_embedding``,
``return_cls=True``). That is the default here (``pooling="cls"``); ``pooling="mean"``
averages the last layer over the transcript's tokens instead.

Transcripts come from the corpus (:func:`read_transcripts`):

* a ``transcript`` column of the clips table (any format, e.g. a table-format corpus);
* IEMOCAP: ``Session*/dialog/transcriptions/<dialog>.txt`` lines ``<utt> [start-end]: text``;
* MSP-Podcast: ``Transcripts/<clip>.txt``;
* MSP-IMPROV: ``Text/<clip>.txt`` or ``All_human_transcriptions/session*/**/<clip>.txt``;
* MuSE: ``Whisper-Transcriptions/*/<clip>.txt`` (the authors prefer these for MuSE), else
  ``Combined/Utterance Transcripts/<clip>.txt``.

A clip without a transcript is left out of the features with a counted warning (listed
in ``Features.failures``), never given a zero vector. Vectors are stored in the same
content-addressed store as audio features, keyed by a hash of the transcript text and
of the encoder's settings (weights digest, pooling, maximum length, library versions).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd

from perser.errors import ConfigError, FeatureError, SkipLog

POOLINGS = ("cls", "mean")
#: the settings :func:`extract_text` takes (besides the spec, store, device and progress)
TEXT_SETTINGS = ("pooling", "max_length", "batch_size", "transcripts")
_IEMOCAP_LINE = re.compile(r"^(\S+)\s+\[[^\]]*\]:\s?(.*)$")


def read_transcripts(corpus) -> dict[str, str]:
    """Clip id -> transcript text for the clips of ``corpus`` that have one (see the module docstring)."""
    clips = corpus.clips
    ids = [str(c) for c in clips.index]
    out: dict[str, str] = {}
    if "transcript" in clips.columns:
        for c, t in zip(ids, clips["transcript"].tolist()):
            if t is not None and not (isinstance(t, float) and np.isnan(t)) and str(t).strip():
                out[c] = str(t).strip()
        return out
    root = Path(corpus.root) if corpus.root is not None else None
    fmt = corpus.meta.get("source_format") or corpus.meta.get("format")
    if root is None:
        return out
    wanted = set(ids)
    if fmt == "iemocap":
        for f in sorted(root.glob("Session*/dialog/transcriptions/*.txt")):
            if f.name.startswith("._"):
                continue
            for line in f.read_text(encoding="utf-8", errors="replace").splitlines():
                m = _IEMOCAP_LINE.match(line.strip())
                if m and m.group(1) in wanted:
                    out[m.group(1)] = m.group(2).strip()
        return out
    patterns = {
        "msp-podcast": ["Transcripts/{c}.txt"],
        "msp-improv": ["Text/{c}.txt", "All_human_transcriptions/session*/**/{c}.txt"],
        "muse": ["Whisper-Transcriptions/*/{c}.txt", "Combined/Utterance Transcripts/{c}.txt"],
    }.get(fmt, [])
    index: dict[str, Path] = {}
    for pat in patterns:  # one glob per pattern; the first pattern that has a clip wins
        for f in root.glob(pat.format(c="*")):
            index.setdefault(f.stem, f)
    for c in ids:
        f = index.get(c)
        if f is not None:
            text = f.read_text(encoding="utf-8", errors="replace").strip()
            if text:
                out[c] = text
    return out


def _text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class TextEncoder:
    """A local Hugging Face text encoder turning strings into one vector each."""

    def __init__(self, model_dir: str, pooling: str = "cls", max_length: int = 512, batch_size: int = 16,
                 device: str | None = None):
        if pooling not in POOLINGS:
            raise ConfigError(f"text features: pooling {pooling!r} is not one of {POOLINGS}")
        self.model_dir = Path(model_dir)
        if not (self.model_dir / "config.json").is_file():
            raise FeatureError(f"text model folder {self.model_dir}: no config.json (a local Hugging Face "
                               "text encoder saved with save_pretrained is needed; nothing is downloaded)")
        self.pooling, self.max_length, self.batch_size = pooling, int(max_length), int(batch_size)
        self.device = device
        self._model = self._tok = None

    def weight_files(self) -> list[str]:
        return sorted(str(p.resolve()) for p in self.model_dir.iterdir()
                      if p.is_file() and p.suffix in (".json", ".txt", ".safetensors", ".bin", ".model"))

    def settings(self, digests: dict[str, str]) -> dict:
        from perser._io import package_versions
        from perser.features.base import FORMAT_VERSION

        return {"format": FORMAT_VERSION, "extractor": "text", "files": digests, "pooling": self.pooling,
                "max_length": self.max_length, **package_versions("torch", "transformers", "tokenizers")}

    def _load(self):
        if self._model is not None:
            return
        try:
            import torch
            from transformers import AutoModel, AutoTokenizer
        except ImportError:  # pragma: no cover - transformers is an optional dependency
            raise FeatureError("text features need transformers: pip install 'perser[ssl]'") from None
        try:
            self._tok = AutoTokenizer.from_pretrained(str(self.model_dir), local_files_only=True)
            self._model = AutoModel.from_pretrained(str(self.model_dir), local_files_only=True)
        except Exception as e:  # noqa: BLE001 - any loading failure names the folder
            raise FeatureError(f"text model folder {self.model_dir}: cannot load tokenizer and model ({e})") from None
        dev = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._model.to(dev).eval()
        self._dev = dev

    def encode(self, texts: list[str]) -> np.ndarray:
        """``float32 [len(texts), hidden]``."""
        import torch

        self._load()
        out = []
        for i in range(0, len(texts), self.batch_size):
            batch = texts[i:i + self.batch_size]
            tok = self._tok(batch, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
            tok = {k: v.to(self._dev) for k, v in tok.items()}
            with torch.no_grad():
                h = self._model(**tok).last_hidden_state  # [b, t, hidden]
            if self.pooling == "cls":
                v = h[:, 0]
            else:
                m = tok["attention_mask"].unsqueeze(-1).to(h.dtype)
                v = (h * m).sum(1) / m.sum(1).clamp(min=1)
            out.append(v.float().cpu().numpy())
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 0), dtype=np.float32)


def extract_text(corpus, spec: str, cache_dir=None, progress: bool = True, device: str | None = None,
                 pooling: str = "cls", max_length: int = 512, batch_size: int = 16, transcripts=None):
    """:class:`~perser.features.extract.Features` of ``text:DIR`` for every clip of ``corpus``
    that has a transcript (``transcripts``: a mapping clip id -> text to use instead of
    the corpus's own)."""
    from perser.corpus.model import Corpus
    from perser.features.extract import Features
    from perser.features.store import FeatureStore

    t0 = time.perf_counter()
    model = spec[len("text:"):]
    if not model:
        raise ConfigError("spec 'text:' needs a model: text:/path/to/model_dir")
    if transcripts is None:
        if not isinstance(corpus, Corpus):
            raise ConfigError("text features need a corpus (its transcripts) or transcripts= a mapping clip -> text")
        transcripts = read_transcripts(corpus)
        ids = [str(c) for c in corpus.clips.index]
    else:
        transcripts = {str(k): str(v) for k, v in dict(transcripts).items()}
        ids = [str(c) for c in corpus.clips.index] if isinstance(corpus, Corpus) else list(transcripts)
    enc = TextEncoder(model, pooling=pooling, max_length=max_length, batch_size=batch_size, device=device)
    store = FeatureStore(cache_dir)
    files = enc.weight_files()
    digests = store.content_hashes(files)
    settings = enc.settings({Path(f).name: digests[f] for f in files})
    key = "text-" + hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:20]
    failures: dict[str, str] = {}
    todo: dict[str, str] = {}
    values: dict[str, np.ndarray] = {}
    for c in ids:
        t = transcripts.get(c)
        if t is None or not t.strip():
            failures[c] = f"clip {c!r}: no transcript"
            continue
        d = _text_digest(t)
        if d in values or d in todo:
            continue
        got = store.get(key, d)
        if got is not None:
            values[d] = got
        else:
            todo[d] = t
    if todo:
        vecs = enc.encode(list(todo.values()))
        for d, v in zip(todo, vecs):
            store.put(key, d, v)
            values[d] = v
    if store.read_meta(key) is None:
        store.write_meta(key, {"spec": spec, "settings": settings, "feature_names": None})
    rows, kept = [], []
    n_reused = 0
    for c in ids:
        if c in failures:
            continue
        d = _text_digest(transcripts[c])
        rows.append(values[d])
        kept.append(c)
        n_reused += d not in todo
    if failures:
        log = SkipLog("features " + spec)
        for c, msg in failures.items():
            log.add("clip(s) without a transcript left out of the text features", msg)
        log.emit(stacklevel=3)
    if not rows and ids:
        raise FeatureError(f"{spec}: none of the {len(ids)} clips has a transcript")
    X = np.stack(rows).astype(np.float32) if rows else np.zeros((0, 0), dtype=np.float32)
    return Features(X=X, clip_ids=np.array(kept, dtype=object), spec=spec, failures=failures, key=key,
                    cache_dir=store.root, n_computed=len(kept) - n_reused, n_reused=n_reused,
                    seconds=time.perf_counter() - t0)


def combine(features: list, spec: str | None = None, last_layer: bool = False):
    """Several :class:`~perser.features.extract.Features` of the same clips side by side.

    Each set must be one vector per clip (``[n, d]``). A ``[n, layers, dim]`` SSL stack
    is an error unless ``last_layer=True``, which takes its last layer (the encoder's
    last hidden state, what Tavernor & Mower Provost use). The result keeps the clips
    every set has, in the first set's order, and lists the others in ``failures`` with
    the set(s) they lack.
    """
    from perser.features.extract import Features

    if not features:
        raise ConfigError("combine: no feature sets")
    if len(features) == 1:
        return features[0]
    mats = []
    for f in features:
        X = f.X
        if X.ndim == 3 and (X.shape[1] == 1 or last_layer):
            X = X[:, -1]
        if X.ndim != 2:
            raise ConfigError(f"features {f.spec!r} are {tuple(X.shape[1:])} per clip: several feature sets are "
                              "concatenated per clip, so each must be one vector (last_layer=True takes an SSL "
                              "stack's last layer)")
        mats.append(pd.DataFrame(X, index=pd.Index(f.clip_ids.astype(str))))
    common = [c for c in mats[0].index if all(c in m.index for m in mats[1:])]
    failures: dict[str, str] = {}
    for f in features:
        failures.update(f.failures)
    for m, f in zip(mats, features):
        for c in m.index:
            if c not in set(common) and c not in failures:
                lacking = [g.spec for g, mm in zip(features, mats) if c not in mm.index]
                failures[c] = f"clip {c!r}: no {', '.join(lacking)} features"
    X = np.concatenate([m.loc[common].to_numpy(np.float32) for m in mats], axis=1)
    names = []
    for f, m in zip(features, mats):
        names += [f"{f.spec}:{n}" for n in (f.feature_names or [f"f{i}" for i in range(m.shape[1])])]
    return Features(X=X, clip_ids=np.array(common, dtype=object), spec=spec or "+".join(f.spec for f in features),
                    failures=failures, feature_names=names, key="+".join(f.key for f in features),
                    cache_dir=features[0].cache_dir, n_computed=sum(f.n_computed for f in features),
                    n_reused=sum(f.n_reused for f in features), seconds=sum(f.seconds for f in features))


__all__ = ["POOLINGS", "TextEncoder", "combine", "extract_text", "read_transcripts"]
