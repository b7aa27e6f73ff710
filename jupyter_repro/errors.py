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
