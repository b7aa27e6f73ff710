"""jupyter-repro: bit-identical Keras training in Jupyter notebooks.

``%load_ext jupyter_repro`` adds ``%repro_seed``, ``%repro_snapshot``, ``%%repro_fit``,
``%repro_history`` and ``%repro_env``. The core (``Session`` and what it uses: seeding,
snapshot, inputs, ledger, verdict, cache...) is plain Python and works from scripts too. Importing this package
imports neither TensorFlow nor NumPy: names below load their module on first use, so
``%load_ext`` at kernel start stays in the milliseconds.
"""
import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "DistributionError": "errors", "ModelError": "errors", "ReproError": "errors", "SeedError": "errors", "SnapshotMismatch": "errors",
    "FitReport": "run.fit", "Session": "run.session", "reproducible_fit": "run.session", "Verdict": "run.verdict", "Inputs": "run.inputs",
    "SeedReport": "seeding.seeder", "Seeder": "seeding.seeder", "cell_seed": "seeding.seeder", "hash_seed_at_start": "seeding.seeder",
    "seed_everything": "seeding.seeder",
    "Snapshot": "model.snapshot", "model_fingerprint": "model.snapshot",
    "Ledger": "run.ledger",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
