"""Which tf.distribute strategies a reproducible fit can run under, and their scope.

A fresh optimizer must be created inside the scope of the strategy the model was built
under, or its slot variables would not be mirrored; variables assigned there reach
every replica. Strategies whose updates are asynchronous are refused.
"""
from __future__ import annotations

import contextlib

from .errors import ModelError

#: tf.distribute strategies whose fits op determinism covers (tested: Mirrored, MultiWorkerMirrored).
REPRODUCIBLE_STRATEGIES = {"_DefaultDistributionStrategy", "OneDeviceStrategy", "MirroredStrategy",
                           "MultiWorkerMirroredStrategy", "CollectiveAllReduceStrategy"}


def strategy_scope(model):
    """The scope of the strategy ``model`` was built under (a no-op context without
    one). Refuses strategies that cannot be made reproducible."""
    strategy = getattr(model, "_distribute_strategy", None)
    if strategy is None:
        return contextlib.nullcontext()
    name = type(strategy).__name__
    if "ParameterServer" in name:
        raise ModelError(f"{name} cannot be made reproducible: its workers update variables "
                         "asynchronously and TensorFlow's op determinism does not support it; use "
                         "MirroredStrategy or MultiWorkerMirroredStrategy")
    if name not in REPRODUCIBLE_STRATEGIES:
        raise ModelError(f"{name} is not known to be reproducible; supported: MirroredStrategy, "
                         "MultiWorkerMirroredStrategy, OneDeviceStrategy")
    return strategy.scope()
