"""Tiny randomly initialised self-supervised speech models for tests (no download).

:func:`save_tiny_model` writes a WavLM, HuBERT or wav2vec2 of a few thousand parameters
with ``save_pretrained``, so that code loading real models from a local folder can be
tested end to end. Needs ``transformers`` (the ``test`` and ``ssl`` extras).
"""

from __future__ import annotations

from pathlib import Path

TINY = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    conv_dim=(16, 16),
    conv_stride=(5, 4),
    conv_kernel=(10, 8),
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=2,
)


def save_tiny_model(folder: Path, kind: str = "wavlm", seed: int = 0, mask: bool = True) -> Path:
    """A randomly initialised tiny WavLM / HuBERT / wav2vec2 saved with ``save_pretrained``.

    ``mask=False`` gives a model without attention masks (``feat_extract_norm="group"``).
    """
    import torch
    from transformers import (
        AutoModel,
        HubertConfig,
        Wav2Vec2Config,
        Wav2Vec2FeatureExtractor,
        WavLMConfig,
    )

    extra = {"feat_extract_norm": "layer" if mask else "group"}
    if kind == "wavlm":
        cfg = WavLMConfig(**TINY, **extra, num_buckets=32, max_bucket_distance=100)
    elif kind == "hubert":
        cfg = HubertConfig(**TINY, **extra)
    elif kind == "wav2vec2":
        cfg = Wav2Vec2Config(**TINY, **extra)
    else:
        raise ValueError(kind)
    torch.manual_seed(seed)
    model = AutoModel.from_config(cfg).eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True, return_attention_mask=mask).save_pretrained(folder)
    return folder
