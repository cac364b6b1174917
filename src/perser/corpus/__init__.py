"""Corpora: the data model, loaders for on-disk formats, consensus, agreement and splits.

The submodules :mod:`~perser.corpus.consensus` and :mod:`~perser.corpus.agreement` hold the
consensus labels and agreement figures (same-named functions inside them).
"""

from perser.corpus.formats import FORMATS, detect_format, load_corpus
from perser.corpus.agreement import fleiss_kappa
from perser.corpus.model import Corpus, LabelSpace, make_clips, make_ratings, split_multilabel
from perser.corpus.splits import annotator_split, enrollment_split, filter_annotators, speaker_folds
from perser.corpus.stats import describe

__all__ = [
    "annotator_split",
    "describe",
    "enrollment_split",
    "filter_annotators",
    "fleiss_kappa",
    "speaker_folds",
    "Corpus",
    "LabelSpace",
    "FORMATS",
    "detect_format",
    "load_corpus",
    "make_clips",
    "make_ratings",
    "split_multilabel",
]
