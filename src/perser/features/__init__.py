"""Audio features: extractors and the content-addressed feature store.

Contract used by the rest of perser::

    feats = perser.features.extract(corpus, "egemaps", cache_dir=..., workers=1)
    feats.X          # float32 [n_clips, d] or [n_clips, layers, dim]
    feats.clip_ids   # aligned to X rows, in corpus.clips order (failed clips left out)
    feats.failures   # clip_id -> error message of every clip left out
    feats.frame()    # for 2-D features: a DataFrame indexed by clip_id
    feats.select(ids)  # rows of X for those clips, in that order

Specs: ``"egemaps"`` (openSMILE eGeMAPSv02 functionals, 88 values), ``"compare"``
(ComParE_2016 functionals, 6373 values), ``"ssl:<model dir>"`` (every hidden layer of
a local Hugging Face speech encoder, mean-pooled: ``[layers + 1, dim]`` per clip).
Features are stored under ``$PERSER_CACHE`` (default ``~/.cache/perser/features``) by
content hash of the audio and a key of the extractor and its settings; see
:mod:`perser.features.store`.
"""

from perser.features.base import Extractor, Job
from perser.features.extract import Features, extract, make_extractor, parse_shard
from perser.features.store import FeatureStore, default_cache_dir

__all__ = [
    "Extractor",
    "Features",
    "FeatureStore",
    "Job",
    "default_cache_dir",
    "extract",
    "make_extractor",
    "parse_shard",
]
