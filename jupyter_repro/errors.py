"""The core's own exceptions.

The core raises these; ``magics.py`` turns them into a plain IPython ``UsageError``
at the boundary, so scripts get a typed exception and notebooks a one-line message.
"""


class ReproError(Exception):
    """Base class: a mistake the user can fix; the message says how."""


class SeedError(ReproError):
    """A seed that is not a non-negative integer."""


class ModelError(ReproError):
    """The object is not a usable Keras model (not a model, not built, not compiled)."""


class SnapshotMismatch(ReproError):
    """The model's variables no longer match the snapshot (architecture changed)."""


class DistributionError(ReproError):
    """A distributed setup a reproducible fit cannot run under: a seed set after
    ``keras.distribution.initialize()``, a layout the snapshot's shapes cannot take, a
    process count other than the snapshot's."""


class Unfingerprintable(Exception):
    """A value that cannot be hashed by content (``values/fingerprint.py``); ``reason`` says
    why in a few words ("is a generator"), so a verdict says "not compared" instead of
    guessing. ``consumable``: data a fit can still hash batch by batch as it reads it.
    Not a ``ReproError``: no mistake of the user's, and never shown as an error."""

    def __init__(self, reason: str, consumable: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.consumable = consumable
