"""perser: personalized speech emotion recognition.

Predict how one particular listener would label the emotion in a speech clip, and
learn a new listener from a handful of that listener's labels.
"""

from __future__ import annotations

__version__ = "0.1.0"

from perser.errors import ConfigError, CorpusError, FeatureError, PerserError, PerserWarning
from perser.corpus import Corpus, LabelSpace, load_corpus

__all__ = [
    "__version__",
    "Corpus",
    "LabelSpace",
    "load_corpus",
    "PerserError",
    "CorpusError",
    "FeatureError",
    "ConfigError",
    "PerserWarning",
]
