"""jupyter-repro: bit-identical Keras training in Jupyter notebooks.

``%load_ext jupyter_repro`` adds ``%repro_seed``, ``%repro_snapshot`` and
``%%repro_fit``. The core (``seeding``, ``snapshot``, ``fit``) is plain Python and
works from scripts too. Importing this package never imports TensorFlow.
"""
from .errors import ModelError, ReproError, SeedError, SnapshotMismatch
from .fit import FitReport, reproducible_fit
from .seeding import SeedReport, Seeder, cell_seed, hash_seed_at_start, seed_everything
from .snapshot import Snapshot, model_fingerprint

__version__ = "0.1.0"

__all__ = [
    "FitReport", "ModelError", "ReproError", "SeedError", "SeedReport", "Seeder",
    "Snapshot", "SnapshotMismatch", "cell_seed", "hash_seed_at_start", "model_fingerprint",
    "reproducible_fit", "seed_everything",
]

_loaded = {}


def load_ipython_extension(shell):
    """``%load_ext jupyter_repro``; the IPython part is imported only here."""
    from .magics import load

    if shell not in _loaded:
        _loaded[shell] = load(shell)


def unload_ipython_extension(shell):
    """``%unload_ext jupyter_repro``: removes every hook and magic that load added."""
    from .magics import unload

    magics = _loaded.pop(shell, None)
    if magics is not None:
        unload(shell, magics)
