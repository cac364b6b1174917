"""Small, format-faithful copies of IEMOCAP, MSP-Podcast, MSP-IMPROV and CREMA-D.

Each ``write_*`` function writes a tiny tree in the corpus's real on-disk layout
(tabs, spacing, quoting, file names and the documented quirks) with short 16 kHz
mono PCM16 wav files, and returns a :class:`Fixture` holding the root and the
ratings a correct loader must produce (``ratings``, on the loader's scales, with
the injected quirks already resolved) so that tests can compare.

The simulated listeners are simple but personal: each clip has a latent emotion
(a class and arousal/valence/dominance in 0..1); each annotator reports the latent
class with a personal accuracy, otherwise a class from a personal preference,
and rates each dimension with a personal bias and noise. The audio's pitch and
loudness follow the clip's arousal and valence, so features carry some of the
emotion. Same seed, same bytes.

One module per corpus, mirroring :mod:`perser.corpus`: :mod:`.iemocap`, :mod:`.msp_podcast`,
:mod:`.msp_improv`, :mod:`.crema_d`, :mod:`.muse`; the simulation they share lives in :mod:`._sim`, the
comparison helpers in :mod:`.check`.
"""

from perser.testing.corpora._sim import SR, Fixture
from perser.testing.corpora.check import assert_same_ratings, load_quietly, one_rating
from perser.testing.corpora.crema_d import write_crema_d
from perser.testing.corpora.iemocap import write_iemocap
from perser.testing.corpora.msp_improv import write_msp_improv
from perser.testing.corpora.msp_podcast import write_msp_podcast
from perser.testing.corpora.muse import write_muse

__all__ = ["SR", "Fixture", "assert_same_ratings", "load_quietly", "one_rating", "write_iemocap", "write_msp_podcast",
           "write_msp_improv", "write_crema_d", "write_muse"]
