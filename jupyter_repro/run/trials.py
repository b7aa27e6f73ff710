"""Seed trials: the same fit from several initial states, to see past one unlucky draw.

The initial state for a seed comes from the model's own initializers: the model is
cloned (``keras.models.clone_model``, fresh layers from the same config) under that
seed and the clone's variables are taken — every variable, Dropout's seed state
included. The registered snapshot stays the state for the session seed.
"""
from __future__ import annotations

import numbers
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..errors import ModelError, ReproError
from ..model.snapshot import Snapshot, read_variables
from ..seeding.seeder import validate_seed
from ..values.source import binds


def trial_seeds(session_seed: int, trials: int = None, seeds: str = None) -> List[int]:
    """``--trials N``: the session seed and the N-1 after it; ``--seeds 1,2,3``: those."""
    if trials is not None and seeds is not None:
        raise ReproError("give --trials N or --seeds 1,2,3, not both")
    if seeds is not None:
        try:
            values = [int(s) for s in seeds.split(",") if s.strip()]
        except ValueError as error:
            raise ReproError(f"--seeds takes comma-separated integers, e.g. 1,2,3; got {seeds!r}") from error
        if not values or len(set(values)) != len(values):
            raise ReproError(f"--seeds needs distinct integers, e.g. 1,2,3; got {seeds!r}")
        return [validate_seed(v) for v in values]
    if trials < 1:
        raise ReproError(f"--trials must be at least 1, got {trials}")
    if session_seed is None:
        raise ReproError("--trials N starts from the session seed, and there is none: run %repro_seed 42 first, "
                         "or pass --seed 42")
    validate_seed(session_seed + trials - 1)  # the last one first: refused before a long list is made
    return [validate_seed(session_seed + i) for i in range(trials)]


def initial_state(model, snapshot: Snapshot, seed: int) -> List[np.ndarray]:
    """The variables a fresh copy of ``model`` gets from its initializers under ``seed``."""
    import keras

    keras.utils.set_random_seed(seed)
    try:
        clone = keras.models.clone_model(model)
    except Exception as error:  # Keras raises several types for models it cannot clone
        raise ModelError(f"trials need a model Keras can clone (Sequential or functional): {error}") from error
    values = read_variables(clone)
    shapes = [(v.shape, str(v.dtype)) for v in values]
    if shapes != [(tuple(s), d) for _, s, d in snapshot.specs]:
        raise ModelError("a clone of the model does not have the snapshot's variables; "
                         "trials need a Sequential or functional model")
    return values


def checked_seeds(seeds) -> List[int]:
    """``seeds`` (``Session.trials``) as a list of distinct valid seeds, or ``ReproError``."""
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence) or not seeds:
        raise ReproError(f"trials need a non-empty list of seeds, e.g. [1, 2, 3]; got {str(seeds)[:40]!r}")
    values = [validate_seed(seed) for seed in seeds]
    if len(set(values)) != len(values):
        raise ReproError(f"trials need distinct seeds; got {values[:10]}")
    return values


def require_metrics(names: Sequence[str], source: Optional[str], namespace: Optional[dict]) -> None:
    """Refuse, before any trial runs, a ``--metric`` that is not a name, or that the cell
    never sets and the notebook does not have (found only after a first fit otherwise)."""
    for name in names:
        if not name.isidentifier():
            raise ReproError(f"--metric {name!r}: give the name of a variable the cell sets, e.g. --metric test_rmse")
        if source is not None and name not in (namespace or {}) and not binds(source, name):
            raise ReproError(f"--metric {name}: the cell never sets {name}, and the notebook has no {name}; "
                             f"set it in the cell, e.g. {name} = ...")


def trial_row(seed: int, metrics: Dict[str, float], user_values: Dict[str, object]) -> Dict[str, float]:
    row = {"seed": seed, **metrics}
    for name, value in user_values.items():
        if isinstance(value, np.ndarray) and value.size == 1:
            value = value.item()
        if not isinstance(value, numbers.Real):
            raise ReproError(f"--metric {name}: the cell must set {name} to a number "
                             f"(it is {'not defined' if value is None else type(value).__name__})")
        row[name] = float(value)
    return row


def trials_frame(rows: Sequence[Dict[str, float]]):
    """Per-seed rows, then mean, std, min and max of every column."""
    import pandas as pd

    frame = pd.DataFrame(rows).set_index("seed")
    summary = frame.agg(["mean", "std", "min", "max"])
    return pd.concat([frame, summary])
