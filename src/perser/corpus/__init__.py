"""Corpora: the data model, loaders for on-disk formats, consensus, agreement and splits."""

from perser.corpus.formats import FORMATS, detect_format, load_corpus
from perser.corpus.model import Corpus, LabelSpace, make_clips, make_ratings, split_multilabel

__all__ = [
    "Corpus",
    "LabelSpace",
    "FORMATS",
    "detect_format",
    "load_corpus",
    "make_clips",
    "make_ratings",
    "split_multilabel",
]
