"""Weights a notebook loads from a file between fits: the user's change, not a fit's.

``model.load_weights("best.weights.h5")`` sets the model's variables and, for a file
saved with a built optimizer, the optimizer's variables too, its step count included. A
changed step count is how a session tells that a model was trained outside
``%%repro_fit`` (then its weights are a fit's, restored from the snapshot); a load must
not read as one: the loaded weights are the next fit's start and an input, by content
(``model_state.UserChanges``). So each registered model's ``load_weights`` is watched,
on the instance only (as ``run/fit.py`` watches ``fit``), and each load remembered with
the step count it left; a step count that moved on after the load is training again.
"""
from __future__ import annotations

import os
import weakref
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from .model_state import optimizer_steps


@dataclass(frozen=True)
class Load:
    """One ``load_weights`` call: the file, and the optimizer's ``(id, steps)`` it left."""

    path: str
    steps: Optional[Tuple[int, int]]

    @property
    def name(self) -> str:
        return os.path.basename(self.path) or self.path


class WeightLoads:
    """The last ``load_weights`` of each watched model since its last run."""

    def __init__(self):
        self._loads: Dict[int, Tuple[weakref.ref, Load]] = {}
        self._watched: Dict[int, weakref.ref] = {}

    def watch(self, model) -> None:
        """Wrap ``model.load_weights`` (once) to remember each load."""
        if id(model) in self._watched and self._watched[id(model)]() is model:
            return
        original = model.load_weights
        loads = self

        def load_weights(filepath, *args, **kwargs):
            result = original(filepath, *args, **kwargs)
            loads._loads[id(model)] = (weakref.ref(model), Load(os.fspath(filepath), optimizer_steps(model)))
            return result

        load_weights.__wrapped__ = original
        object.__setattr__(model, "load_weights", load_weights)
        self._watched[id(model)] = weakref.ref(model)

    def since_last_run(self, model) -> Optional[Load]:
        known = self._loads.get(id(model))
        return known[1] if known is not None and known[0]() is model else None

    def forget(self, model) -> None:
        """A run ended (or a snapshot was taken): loads before it are history."""
        self._loads.pop(id(model), None)

    def close(self) -> None:
        """Put every watched model's own ``load_weights`` back."""
        for ref in self._watched.values():
            model = ref()
            if model is not None and "load_weights" in vars(model):
                object.__delattr__(model, "load_weights")
        self._watched.clear()
        self._loads.clear()
