"""Self-supervised speech encoders (WavLM, HuBERT, wav2vec 2.0, data2vec-audio) via ``transformers``.

Every hidden layer is kept: the output of the convolutional front end's projection
(layer 0) and of each transformer layer, mean-pooled over the clip's valid frames
(``pooling="mean"``, ``[layers + 1, dim]`` per clip) or mean and standard deviation
concatenated (``pooling="mean+std"``, ``[layers + 1, 2 * dim]``). A downstream model can
then learn a softmax-weighted sum of layers without re-extracting (the convention of
SUPERB / s3prl: Yang et al. 2021, "SUPERB: Speech processing Universal PERformance Benchmark").

Weights are never downloaded. A model is

* a local folder written by ``model.save_pretrained(dir)`` (``config.json`` and
  ``model.safetensors`` or ``pytorch_model.bin``; ``preprocessor_config.json`` if the
  model has a feature extractor), or
* a Hugging Face model id already in the local Hugging Face cache (looked up offline).

Clips are read, resampled to the model's rate and normalised as the model's feature
extractor says, sorted by length and run in batches. Models that accept attention masks
(``return_attention_mask`` in their feature extractor, or ``feat_extract_norm="layer"``)
get padded batches with masks; the others are only batched with clips of identical
length, because padding would change their outputs (``pad_unmasked=True`` zero-pads them
into shared batches without a mask instead, as Hugging Face advises for batched inference
with such models: faster on corpora of varied clip lengths, slightly different numbers
for the shorter clips of a batch, stored under their own key). Clips longer than ``chunk_seconds``
are cut into near-equal chunks whose frames are pooled together. Every chunk is a row of a
forward pass and counts against ``batch_size`` and ``max_batch_seconds``: the chunks of a
batch (even of one clip longer than the cap) run in as many passes as the cap needs, their
frames pooled across passes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from pathlib import Path

import numpy as np

from perser.audio import SILENCE_PEAK, audio_info, read_audio, split_chunks
from perser.errors import FeatureError
from perser._io import package_versions
from perser.features.base import Extractor, Job, Sink
from perser.features.store import file_digest

__all__ = ["SSLExtractor", "resolve_model_dir", "encoder_fingerprint", "weight_files", "POOLINGS"]

POOLINGS = ("mean", "mean+std")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")

_HOW = (
    "Supply a model as a local folder written by `model.save_pretrained(DIR)` (holding config.json and "
    "model.safetensors or pytorch_model.bin, plus preprocessor_config.json when the model has one), "
    "or as a Hugging Face model id already downloaded into the local Hugging Face cache "
    "(perser looks it up offline, as with HF_HUB_OFFLINE=1; weights are never downloaded)."
)


def resolve_model_dir(model: str | os.PathLike) -> Path:
    """The local folder of ``model`` (a folder, or a model id in the local Hugging Face cache).

    Raises
    ------
    FeatureError
        Saying how to supply a model, when none is found.
    """
    p = Path(model).expanduser()
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise FeatureError(f"SSL model folder {p} has no config.json. {_HOW}")
        return p.resolve()
    if p.exists():
        raise FeatureError(f"SSL model {p} is a file, not a model folder. {_HOW}")
    name = str(model)
    if name.count("/") == 1 and not name.startswith((".", "/", "~")):
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(name, local_files_only=True))
        except Exception:
            pass
    raise FeatureError(f"SSL model {name!r} not found: no such folder, and not in the local Hugging Face cache. {_HOW}")


def weight_files(model_dir: Path) -> list[Path]:
    """The weight files of a model folder, sorted; a :class:`FeatureError` when there is none."""
    weights = sorted(f for f in model_dir.iterdir() if f.suffix in _WEIGHT_SUFFIXES and f.is_file())
    if not weights:
        raise FeatureError(f"SSL model folder {model_dir} holds no weight file (*.safetensors or *.bin). {_HOW}")
    return weights


def encoder_fingerprint(model_dir: Path, digest=file_digest) -> str:
    """Hash of a speech encoder folder's config files and weight files' contents (part of the store key).

    ``digest(path)`` hashes one weight file; pass a cached one (see
    :meth:`perser.features.store.FeatureStore.content_hashes`) to hash each file once.
    """
    h = hashlib.sha256()
    for name in ("config.json", "preprocessor_config.json"):
        f = model_dir / name
        if f.is_file():
            h.update(name.encode() + b"\0" + f.read_bytes() + b"\0")
    for f in weight_files(model_dir):
        h.update(f.name.encode() + b"\0" + digest(str(f.resolve())).encode() + b"\0")
    return h.hexdigest()[:32]


def _conv_output_lengths(config, lengths: np.ndarray) -> np.ndarray:
    """Number of frames the convolutional front end makes of ``lengths`` samples."""
    out = np.asarray(lengths, dtype=np.int64)
    for k, s in zip(config.conv_kernel, config.conv_stride):
        out = np.maximum((out - k) // s + 1, 0)
    return out


class SSLExtractor(Extractor):
    """All hidden layers of a self-supervised speech encoder, pooled over time.

    Parameters
    ----------
    model : str or path-like
        A local model folder, or a model id in the local Hugging Face cache.
    pooling : {"mean", "mean+std"}
        Per layer: the mean over valid frames, or mean and standard deviation concatenated.
    device : str, optional
        ``"cpu"``, ``"cuda"``, ``"cuda:1"`` ...; ``None`` takes the GPU when there is one.
    precision : {"auto", "fp32", "fp16", "bf16"}
        ``"auto"`` is fp16 on a GPU and fp32 on a CPU. Part of the store key.
    batch_size : int
        Most rows (clips, or chunks of long clips) per forward pass.
    max_batch_seconds : float
        Most audio per forward pass, counted as ``rows x longest row`` (padding included),
        every chunk of a long clip a row.
    chunk_seconds : float
        Longer clips are cut into near-equal chunks of at most this length; at most
        ``max_batch_seconds``.
    pad_unmasked : bool
        Models without attention masks (``feat_extract_norm="group"``: wav2vec2-base,
        HuBERT-base): batch clips of different lengths zero-padded, without a mask (the
        padding then enters the group normalisation of the shorter clips; frames past a
        clip's end are still left out of the pooling). Default ``False``: only clips of
        identical length share a forward pass, so every clip's features equal those of the
        clip alone. Part of the store key when it changes anything.
    max_duration : float, optional
        Longer files fail with an error.
    digest : callable, optional
        Hash function for weight files (the store passes its cached one).
    """

    name = "ssl"

    def __init__(
        self,
        model: str | os.PathLike,
        pooling: str = "mean",
        device: str | None = None,
        precision: str = "auto",
        batch_size: int = 8,
        max_batch_seconds: float = 160.0,
        chunk_seconds: float = 30.0,
        max_duration: float | None = None,
        silence_peak: float = SILENCE_PEAK,
        digest=file_digest,
        pad_unmasked: bool = False,
    ) -> None:
        if pooling not in POOLINGS:
            raise FeatureError(f"unknown pooling {pooling!r}; expected one of {POOLINGS}")
        if precision not in ("auto", "fp32", "fp16", "bf16"):
            raise FeatureError(f"unknown precision {precision!r}; expected auto, fp32, fp16 or bf16")
        if batch_size < 1 or chunk_seconds <= 0:
            raise FeatureError("batch_size must be >= 1 and chunk_seconds > 0")
        if chunk_seconds > max_batch_seconds:
            raise FeatureError(
                f"chunk_seconds ({chunk_seconds}) exceeds max_batch_seconds ({max_batch_seconds}): "
                "one chunk would not fit in a forward pass"
            )
        self.spec = f"ssl:{model}"
        self.model_dir = resolve_model_dir(model)
        self.pooling = pooling
        self.batch_size = int(batch_size)
        self.max_batch_seconds = float(max_batch_seconds)
        self.chunk_seconds = float(chunk_seconds)
        self.pad_unmasked = bool(pad_unmasked)
        self.max_duration = max_duration
        self.silence_peak = silence_peak
        self._read_configs()
        import torch

        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if precision == "auto":
            precision = "fp16" if self.device.type == "cuda" else "fp32"
        self.precision = precision
        self._weights = weight_files(self.model_dir)  # a folder without weights fails here, hashing waits
        self._digest = digest
        self._model = None

    @cached_property
    def fingerprint(self) -> str:
        """Hash of the model's configs and weights (computed when the store key is first needed)."""
        return encoder_fingerprint(self.model_dir, self._digest)

    def key_files(self) -> list[str]:
        return [str(f.resolve()) for f in self._weights]

    # ------------------------------------------------------------- configuration
    def _read_configs(self) -> None:
        try:
            from transformers import AutoConfig
        except ImportError:  # pragma: no cover - transformers is an optional dependency
            raise FeatureError("SSL features need transformers: pip install 'perser[ssl]'") from None
        try:
            self.config = AutoConfig.from_pretrained(self.model_dir, local_files_only=True)
        except Exception as e:
            raise FeatureError(f"SSL model folder {self.model_dir}: invalid config.json ({e}). {_HOW}") from None
        if not hasattr(self.config, "conv_kernel") or not hasattr(self.config, "conv_stride"):
            raise FeatureError(
                f"SSL model {self.model_dir} ({self.config.model_type}) is not a waveform encoder with a convolutional "
                "front end (WavLM, HuBERT, wav2vec2, data2vec-audio, UniSpeech ...)"
            )
        pre = self.model_dir / "preprocessor_config.json"
        fe = json.loads(pre.read_text()) if pre.is_file() else {}
        self.sample_rate = int(fe.get("sampling_rate", 16000))
        self.normalize = bool(fe.get("do_normalize", True))
        if "return_attention_mask" in fe:
            self.use_mask = bool(fe["return_attention_mask"])
        else:
            self.use_mask = getattr(self.config, "feat_extract_norm", "group") == "layer"

    def settings(self) -> dict:
        return {
            "extractor": "ssl",
            "model": self.fingerprint,
            "model_type": self.config.model_type,
            "pooling": self.pooling,
            "precision": self.precision,
            "sample_rate": self.sample_rate,
            "normalize": self.normalize,
            "attention_mask": self.use_mask,
            "chunk_seconds": self.chunk_seconds,
            # padding without a mask changes the numbers; with a mask it changes nothing
            **({"pad_unmasked": True} if self.pad_unmasked and not self.use_mask else {}),
            **package_versions("torch", "transformers"),  # an upgrade may change the numbers
        }

    def meta(self) -> dict:
        return {**super().meta(), "model_dir": str(self.model_dir), "layers": self.n_layers, "dim": self.dim}

    @property
    def n_layers(self) -> int:
        """Pooled layers per clip: the front end's output and every transformer layer."""
        return int(self.config.num_hidden_layers) + 1

    @property
    def dim(self) -> int:
        return int(self.config.hidden_size) * (2 if self.pooling == "mean+std" else 1)

    @property
    def model(self):
        if self._model is None:
            import torch
            from transformers import AutoModel

            from transformers.utils import logging as hf_logging

            bars = hf_logging.is_progress_bar_enabled()
            hf_logging.disable_progress_bar()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model = AutoModel.from_pretrained(self.model_dir, local_files_only=True)
            except Exception as e:
                raise FeatureError(f"could not load the SSL model in {self.model_dir}: {e}. {_HOW}") from None
            finally:
                if bars:
                    hf_logging.enable_progress_bar()
            model.eval().to(self.device)
            if self.precision == "fp16" and self.device.type != "cuda":
                model.half()
            self._model = model
            self._torch = torch
        return self._model

    def close(self) -> None:
        self._model = None

    # --------------------------------------------------------------- extraction
    def _read(self, job: Job) -> tuple[list[np.ndarray], str | None]:
        try:
            x = read_audio(job.path, self.sample_rate, max_duration=self.max_duration, silence_peak=self.silence_peak)
        except FeatureError as e:
            return [], str(e)
        if _conv_output_lengths(self.config, np.array([len(x)]))[0] < 1:
            return [], f"{job.path}: too short for the model ({len(x) / self.sample_rate * 1000:.1f} ms)"
        if self.normalize:
            x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
        return split_chunks(x.astype(np.float32), int(self.chunk_seconds * self.sample_rate)), None

    def _rows(self, duration: float) -> tuple[int, float]:
        """Chunks a clip of ``duration`` seconds makes, and the length of each (seconds)."""
        n = max(1, int(np.ceil(duration / self.chunk_seconds)))
        return n, duration / n

    def _batches(self, jobs: list[Job], sink: Sink) -> list[list[Job]]:
        """Jobs sorted by length (longest first) and grouped into batches; unreadable ones go to ``sink``.

        A batch holds at most ``batch_size`` rows and ``max_batch_seconds`` of padded rows,
        counting every chunk of a long clip; a clip that alone exceeds either is a batch of
        its own (its chunks then run in several forward passes, see :meth:`_passes`).
        """
        lengths = []
        for job in jobs:
            try:
                info = audio_info(job.path)
            except FeatureError as e:
                sink(job.digest, None, str(e))
                continue
            lengths.append((info.duration, job))
        lengths.sort(key=lambda t: -t[0])
        batches: list[list[Job]] = []
        cur: list[Job] = []
        cur_rows, cur_max = 0, 0.0
        for dur, job in lengths:
            n, row = self._rows(dur)
            rows, longest = cur_rows + n, max(cur_max, row)
            if cur and (rows > self.batch_size or rows * longest > self.max_batch_seconds):
                batches.append(cur)
                cur, cur_rows, cur_max = [], 0, 0.0
                rows, longest = n, row
            cur.append(job)
            cur_rows, cur_max = rows, longest
        if cur:
            batches.append(cur)
        return batches

    def _passes(self, segs: list[tuple[int, np.ndarray]]) -> list[list[tuple[int, np.ndarray]]]:
        """Rows (longest first) split into forward passes within ``batch_size`` and ``max_batch_seconds``."""
        cap = self.max_batch_seconds * self.sample_rate
        passes: list[list] = []
        cur: list = []
        cur_max = 0
        for item in segs:
            n = len(item[1])
            if cur and (len(cur) >= self.batch_size or (len(cur) + 1) * max(cur_max, n) > cap):
                passes.append(cur)
                cur, cur_max = [], 0
            cur.append(item)
            cur_max = max(cur_max, n)
        if cur:
            passes.append(cur)
        return passes

    def _forward(self, segments: list[np.ndarray]):
        """Sum and sum of squares over valid frames of every hidden layer, per segment: ``[L, B, D]``."""
        torch = self._torch
        lengths = np.array([len(s) for s in segments])
        frames = _conv_output_lengths(self.config, lengths)
        x = np.zeros((len(segments), lengths.max()), dtype=np.float32)
        for i, s in enumerate(segments):
            x[i, : len(s)] = s
        inputs = {"input_values": torch.from_numpy(x).to(self.device)}
        if self.use_mask:
            inputs["attention_mask"] = torch.from_numpy(np.arange(x.shape[1])[None, :] < lengths[:, None]).to(
                self.device, torch.long
            )
        if self.precision == "fp16" and self.device.type != "cuda":
            inputs["input_values"] = inputs["input_values"].half()
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(self.precision)
        autocast = (
            torch.autocast(self.device.type, dtype=dtype)
            if dtype is not None and (self.device.type == "cuda" or self.precision == "bf16")
            else contextlib.nullcontext()
        )
        with torch.inference_mode(), autocast, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = self.model(**inputs, output_hidden_states=True)
        hs = torch.stack(out.hidden_states).float()  # [L, B, T, D]
        mask = torch.from_numpy(np.arange(hs.shape[2])[None, :] < frames[:, None]).to(hs.device)
        hs = hs * mask[None, :, :, None]
        s = hs.sum(dim=2, dtype=torch.float64)
        ss = (hs.double() ** 2).sum(dim=2) if self.pooling == "mean+std" else None
        return s.cpu().numpy(), (None if ss is None else ss.cpu().numpy()), frames

    def _pool(self, s: np.ndarray, ss: np.ndarray | None, n: int) -> np.ndarray:
        mean = s / n
        if ss is None:
            return mean.astype(np.float32)
        std = np.sqrt(np.maximum(ss / n - mean**2, 0.0))
        return np.concatenate([mean, std], axis=-1).astype(np.float32)

    def _run_batch(self, batch: list[tuple[Job, list[np.ndarray]]], sink: Sink) -> None:
        segs = [(k, seg) for k, (_, chunks) in enumerate(batch) for seg in chunks]
        segs.sort(key=lambda item: -len(item[1]))  # stable: a clip's chunks stay in order
        if self.use_mask or self.pad_unmasked:
            groups = self._passes(segs)
        else:  # no masks: only identical lengths share a forward pass
            by_len: dict[int, list] = {}
            for item in segs:
                by_len.setdefault(len(item[1]), []).append(item)
            groups = [p for same in by_len.values() for p in self._passes(same)]
        acc: dict[int, list] = {}
        for group in groups:
            s, ss, frames = self._forward([seg for _, seg in group])
            for b, (k, _) in enumerate(group):
                a = acc.setdefault(k, [0.0, 0.0, 0])
                a[0] = a[0] + s[:, b]
                if ss is not None:
                    a[1] = a[1] + ss[:, b]
                a[2] += int(frames[b])
        for k, (job, _) in enumerate(batch):
            a = acc[k]
            y = self._pool(a[0], a[1] if self.pooling == "mean+std" else None, a[2])
            if not np.isfinite(y).all():
                sink(job.digest, None, f"{job.path}: the model produced non-finite hidden states ({self.precision})")
            else:
                sink(job.digest, y, None)

    def run(self, jobs: list[Job], sink: Sink, workers: int = 1) -> None:
        self.model  # load before reading audio, so a broken model fails first
        batches = self._batches(jobs, sink)

        def read_batch(batch: list[Job]):
            return [(job, *self._read(job)) for job in batch]

        with ThreadPoolExecutor(max_workers=max(1, min(workers, 8))) as pool:
            pending = pool.submit(read_batch, batches[0]) if batches else None
            for i in range(len(batches)):
                loaded = pending.result()
                pending = pool.submit(read_batch, batches[i + 1]) if i + 1 < len(batches) else None
                ok = []
                for job, chunks, err in loaded:
                    if err is not None:
                        sink(job.digest, None, err)
                    else:
                        ok.append((job, chunks))
                if not ok:
                    continue
                try:
                    self._run_batch(ok, sink)
                except FeatureError:
                    raise
                except Exception as e:
                    if len(ok) == 1:
                        sink(ok[0][0].digest, None, f"{ok[0][0].path}: the model failed ({type(e).__name__}: {e})")
                    else:  # retry one by one so one bad clip (or memory) does not sink the batch
                        for item in ok:
                            try:
                                self._run_batch([item], sink)
                            except Exception as e1:
                                sink(item[0].digest, None, f"{item[0].path}: the model failed ({type(e1).__name__}: {e1})")
