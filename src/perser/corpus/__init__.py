"""Corpora: the data model, loaders for on-disk formats, consensus, agreement and splits."""

from perser.corpus.formats import FORMATS, detect_format, load_corpus
from perser.corpus.agreement import agreement, fleiss_kappa
from perser.corpus.consensus import consensus
from perser.corpus.model import Corpus, LabelSpace, make_clips, make_ratings, split_multilabel
from perser.corpus.splits import annotator_split, enrollment_split, filter_annotators, speaker_folds
from perser.corpus.stats import describe

__all__ = [
    "agreement",
    "annotator_split",
    "consensus",
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
