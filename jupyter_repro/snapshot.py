"""The full initial state of a compiled Keras model, and putting it back.

``get_weights()`` misses what Keras 3 keeps beside the weights: the state of every
``SeedGenerator`` (Dropout's, for one) and non-trainable statistics live in
``model.variables``. Recompiling with the same optimizer *instance* keeps its step
count and moments. So a snapshot holds every variable of ``model.variables`` and the
optimizer's class and config as they were at snapshot time, and ``recompile`` always
builds a brand-new optimizer from them.
"""
from __future__ import annotations

import copy
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from . import distribution
from .distribution import strategy_scope
from .errors import ModelError, SnapshotMismatch
from .fingerprint import fingerprint_arrays

Spec = Tuple[str, Tuple[int, ...], str]  # (path, shape, dtype)


def require_model(model, label: str = "the object"):
    """Raise ``ModelError`` unless ``model`` is a built, compiled Keras model."""
    keras = sys.modules.get("keras")
    if keras is None or not isinstance(model, keras.Model):
        raise ModelError(f"{label} is not a Keras model (it is a {type(model).__name__})")
    if not model.variables:
        raise ModelError(f"{label} has no variables yet: give it an Input shape or call it "
                         "on a batch before taking a snapshot")
    if not getattr(model, "compiled", False) or not hasattr(model, "_compile_config"):
        raise ModelError(f"{label} is not compiled: call {label}.compile(...) first")
    return model


def variable_specs(model) -> List[Spec]:
    return [(v.path, tuple(int(d) for d in v.shape), str(v.dtype)) for v in model.variables]


def read_variables(model) -> List[np.ndarray]:
    """A private NumPy copy of every variable, in ``model.variables`` order.

    ``Variable.numpy()`` already returns an array that owns its memory on TensorFlow
    (measured: one memory copy); a second copy is made only for an array that does
    not (a view a backend could change under us).
    """
    return read_arrays(model.variables)


def read_arrays(variables) -> List[np.ndarray]:
    """A private NumPy copy of each variable (a model's, an optimizer's)."""
    for variable in variables:
        distribution.require_readable(variable)  # refuses one split across processes, before reading any
    arrays = [np.asarray(v.numpy()) for v in variables]
    return [a if a.flags.owndata and a.flags.writeable else a.copy() for a in arrays]


def assign_variables(model, values: List[np.ndarray]) -> None:
    for variable, value in zip(model.variables, values):
        variable.assign(value)


def model_fingerprint(model) -> str:
    """XXH3-128 of every byte of every variable (position, dtype and shape included)."""
    return fingerprint_arrays((str(i), a) for i, a in enumerate(read_variables(model)))


@dataclass
class CompileRecipe:
    """How to compile a model afresh: the compile arguments and a brand-new optimizer
    (class and config, no steps, no moments)."""

    compile_kwargs: Dict[str, Any]
    optimizer_class: type
    optimizer_config: Dict[str, Any]

    @classmethod
    def of(cls, model) -> "CompileRecipe":
        """The settings ``model`` is compiled with now."""
        from keras.optimizers.schedules import LearningRateSchedule

        optimizer = model.optimizer
        config = copy.deepcopy(optimizer.get_config())
        schedule = getattr(optimizer, "_learning_rate", None)
        if isinstance(schedule, LearningRateSchedule):
            # Schedules are pure functions of the step: keep the object itself rather
            # than a serialized form that a notebook-defined class could not reload.
            config["learning_rate"] = schedule
        kwargs = dict(model._compile_config.config)
        kwargs.pop("optimizer", None)
        return cls(kwargs, type(optimizer), config)

    def new_optimizer(self):
        return self.optimizer_class.from_config(copy.copy(self.optimizer_config))

    def settings(self) -> Dict[str, Any]:
        """Everything the recipe sets, for fingerprinting."""
        config = {k: v for k, v in self.optimizer_config.items() if k != "name"}  # adam_1 is adam
        return {"compile": self.compile_kwargs, "optimizer": self.optimizer_class, "optimizer config": config}

    def differences(self, other: "CompileRecipe") -> List[str]:
        """``["loss 'mse' → 'mae'", "learning_rate 0.01 → 0.05"]``: what ``self`` changes from ``other``."""
        found = []
        for key in sorted(set(self.compile_kwargs) | set(other.compile_kwargs)):
            before, now = other.compile_kwargs.get(key), self.compile_kwargs.get(key)
            if _describe(before) != _describe(now):
                found.append(f"{key} {_describe(before)} → {_describe(now)}")
        if self.optimizer_class is not other.optimizer_class:
            found.append(f"optimizer {other.optimizer_class.__name__} → {self.optimizer_class.__name__}")
            return found
        for key in sorted(set(self.optimizer_config) | set(other.optimizer_config)):
            before, now = other.optimizer_config.get(key), self.optimizer_config.get(key)
            if key != "name" and _describe(before) != _describe(now):
                found.append(f"{key} {_describe(before)} → {_describe(now)}")
        return found


def _describe(value) -> str:
    from .fingerprint import Unfingerprintable, fingerprint_value

    if isinstance(value, (type(None), bool, int, float, str)):
        return repr(value)
    try:
        digest = fingerprint_value(value)[:8]
    except Unfingerprintable:
        digest = "?"
    name = getattr(value, "__name__", type(value).__name__)
    return f"{name}#{digest}"


@dataclass
class Snapshot:
    """Every variable of a compiled model, plus how to recompile it afresh."""

    name: str
    values: List[np.ndarray]
    specs: List[Spec]
    recipe: CompileRecipe
    fingerprint: str
    created: float = field(default_factory=time.time)
    status: str = ""  # how it compares with the copy saved on disk, if any
    variable: str = ""  # the notebook name of the model it was taken from
    processes: int = 1  # how many processes trained together when it was taken

    @classmethod
    def capture(cls, model, name: str) -> "Snapshot":
        require_model(model, repr(name))
        with strategy_scope(model):  # refuses unsupported strategies before anything else
            values = read_variables(model)
        return cls(
            name=name,
            values=values,
            specs=variable_specs(model),
            recipe=CompileRecipe.of(model),
            fingerprint=fingerprint_arrays((str(i), a) for i, a in enumerate(values)),
            processes=distribution.processes()[0],
        )

    @property
    def parameters(self) -> int:
        return int(sum(a.size for a in self.values))

    def check(self, model) -> None:
        """Raise ``SnapshotMismatch`` naming the first variable whose shape or dtype differs,
        ``DistributionError`` for a process count other than the snapshot's or a
        ``keras.distribution`` layout its shapes cannot take.

        Paths are not compared: rebuilding a model renames its layers (dense_3 for
        dense) without changing what the snapshot can restore.
        """
        distribution.check_processes(self.processes, self.name)
        current = variable_specs(model)
        for i, (mine, theirs) in enumerate(zip(self.specs, current)):
            if mine[1:] != theirs[1:]:
                raise SnapshotMismatch(
                    f"variable #{i} '{theirs[0]}' is {_shape(theirs)} in the model but "
                    f"{_shape(mine)} in snapshot '{self.name}' ('{mine[0]}'): the architecture "
                    "changed since the snapshot")
        if len(current) != len(self.specs):
            extra = (current if len(current) > len(self.specs) else self.specs)[min(len(current), len(self.specs))]
            raise SnapshotMismatch(
                f"the model has {len(current)} variables but snapshot '{self.name}' has "
                f"{len(self.specs)} (first unmatched: '{extra[0]}'): the architecture changed "
                "since the snapshot")
        distribution.check_layout(model, self.specs, self.name)

    def restore(self, model, values: Optional[List[np.ndarray]] = None,
                recipe: Optional[CompileRecipe] = None) -> None:
        """Recompile with a new optimizer (from ``recipe``, by default the snapshot's)
        and put every variable back (from the snapshot, or from ``values`` of the same
        shapes, e.g. a seed trial's state).

        Everything that can fail (structure check, optimizer construction) runs
        before the model is touched.
        """
        require_model(model)
        self.check(model)
        recipe = recipe or self.recipe
        with strategy_scope(model):
            optimizer = recipe.new_optimizer()
            model.compile(**dict(recipe.compile_kwargs, optimizer=optimizer))
            assign_variables(model, self.values if values is None else values)  # every replica
        model.reset_metrics()

    def __repr__(self) -> str:
        return (f"Snapshot({self.name!r}: {len(self.values)} variables, {self.parameters:,} values, "
                f"{self.recipe.optimizer_class.__name__}, fingerprint {self.fingerprint[:12]})")

    def _repr_pretty_(self, printer, cycle):
        printer.text(repr(self) + (f"\n{self.status}" if self.status else ""))

    def _repr_html_(self) -> str:
        from html import escape

        rows = [("snapshot", self.name), ("variables", f"{len(self.values)} ({self.parameters:,} values)"),
                ("optimizer", self.recipe.optimizer_class.__name__), ("fingerprint", self.fingerprint)]
        if self.status:
            rows.append(("saved", self.status))
        body = "".join(f"<tr><th style='text-align:left'>{escape(k)}</th><td style='text-align:left'>"
                       f"{escape(v)}</td></tr>" for k, v in rows)
        return f"<table class='repro-snapshot'>{body}</table>"


def _shape(spec: Spec) -> str:
    return f"{spec[1]} {spec[2]}"
