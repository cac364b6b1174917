"""Audio features: extractors and the content-addressed feature store.

Contract used by the rest of perser (filled in by the features modules)::

    feats = perser.features.extract(corpus, "egemaps", cache_dir=..., workers=1)
    feats.X          # float32 [n_clips, d] or [n_clips, layers, dim]
    feats.clip_ids   # aligned to X rows, in corpus.clips order (failed clips left out)
    feats.frame()    # for 2-D features: a DataFrame indexed by clip_id
"""
