"""The full initial state of a compiled Keras model, and putting it back.

``get_weights()`` misses what Keras 3 keeps beside the weights: the state of every
``SeedGenerator`` (Dropout's, for one) and non-trainable statistics live in
``model.variables``. Recompiling with the same optimizer *instance* keeps its step
count and moments. So a snapshot holds every variable of ``model.variables`` and the
optimizer's class and config as they were at snapshot time, and ``recompile`` always
builds a brand-new optimizer from them.

Where the variables are kept: a small model's in memory (a private copy, the fastest to
restore); a large one's only in its stored file, memory-mapped (``store/tensorfile.py``), so
the weights are not held twice in RAM. Variables are read one at a time, as views where
the backend allows (``values/tensors.py``), so taking a snapshot or a fingerprint never holds a
second copy of the model. A restore rewrites what a fit changes: a variable a fit
cannot change by itself (non-trainable: a frozen backbone's, a LoRA layer's base kernel)
is compared by its checksum and rewritten only if it differs.
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
from ..errors import ModelError, ReproError, SnapshotMismatch, Unfingerprintable
from ..values.arrays import ArraysFingerprint, bytes_digest
from ..values.tensors import assign, host_copy, host_view, numpy_dtype
from ..values.sizes import size_text
from ..values.fingerprint import fingerprint_value

Spec = Tuple[str, Tuple[int, ...], str]  # (path, shape, dtype)


def require_model(model, label: str = "the object", built: bool = True):
    """Raise ``ModelError`` unless ``model`` is a compiled Keras model, built unless ``built`` is False."""
    keras = sys.modules.get("keras")
    if keras is None or not isinstance(model, keras.Model):
        raise ModelError(f"{label} is not a Keras model (it is a {type(model).__name__})")
    if built and not model.variables:
        raise ModelError(f"{label} has no variables yet: give it an Input shape or call it "
                         "on a batch before taking a snapshot")
    if not getattr(model, "compiled", False) or not hasattr(model, "_compile_config"):
        raise ModelError(f"{label} is not compiled: call {label}.compile(...) first")
    return model


def variable_specs(model) -> List[Spec]:
    return spec_list(model.variables)


def spec_list(variables) -> List[Spec]:
    return [(v.path, tuple(int(d) for d in v.shape), str(v.dtype)) for v in variables]


def specs_nbytes(specs) -> int:
    return sum(int(np.prod(shape, dtype=np.int64)) * numpy_dtype(dtype).itemsize for _, shape, dtype in specs)


def read_variables(model) -> List[np.ndarray]:
    """A private NumPy copy of every variable, in ``model.variables`` order."""
    return read_arrays(model.variables)


def read_arrays(variables) -> List[np.ndarray]:
    """A private NumPy copy of each variable (a model's, an optimizer's), every dtype."""
    for variable in variables:
        distribution.require_readable(variable)  # refuses one split across processes, before reading any
    return [host_copy(v) for v in variables]


def assign_variables(model, values: List[np.ndarray]) -> None:
    for variable, value in zip(model.variables, values):
        assign(variable, value)


def model_fingerprint(model) -> str:
    """XXH3-128 of every byte of every variable (position, dtype and shape included),
    read one variable at a time without copying where the backend allows."""
    digest = ArraysFingerprint()
    for i, variable in enumerate(model.variables):
        distribution.require_readable(variable)
        digest.update(str(i), host_view(variable))
    return digest.hexdigest()


@dataclass
class Restored:
    """What a restore did: variables written, and those verified unchanged and left as they were."""

    assigned: int = 0
    unchanged: int = 0
    bytes_assigned: int = 0
    kept: int = 0  # the user's (preprocessing state, values set after the last run): not written


def put_variables(variables, read, digests=None, fixed=frozenset(), release=None, keep=frozenset(),
                  known=None) -> Restored:
    """Assign ``read(i)`` to each variable. One in ``fixed`` (by ``id``: variables a fit
    cannot change by itself) whose bytes still have checksum ``digests[i]`` is left
    alone: a frozen backbone is not rewritten. ``known`` (``id`` -> whether it holds what
    ``read(i)`` holds, told without reading it: ``model/state_read.py``) spares that
    checksum. One in ``keep`` (by ``id``: the user's, ``model/model_state.py``) is never
    written. ``release(i)`` after each write."""
    known = known or {}
    done = Restored()
    for i, variable in enumerate(variables):
        if id(variable) in keep:
            done.kept += 1
            continue
        same = known.get(id(variable))
        if same:
            done.unchanged += 1
            continue
        digest = digests[i] if digests else None
        if same is None and digest is not None and id(variable) in fixed and bytes_digest(host_view(variable)) == digest:
            done.unchanged += 1
            continue
        value = read(i)
        assign(variable, value)
        done.assigned += 1
        done.bytes_assigned += value.nbytes
        del value
        if release is not None:
            release(i)
    return done


def fixed_variables(model) -> frozenset:
    """``id`` of each variable of ``model`` no optimizer updates (non-trainable)."""
    trainable = {id(v) for v in model.trainable_variables}
    return frozenset(id(v) for v in model.variables if id(v) not in trainable)


@dataclass
class CompileRecipe:
    """How to compile a model afresh: the compile arguments and a brand-new optimizer
    (class and config, no steps, no moments); for a model whose class defines its own
    ``compile``, the call the notebook made (``model/compile_call.py``), replayed with new
    optimizers. ``held``: every optimizer the model holds, by class and configuration."""

    compile_kwargs: Dict[str, Any]
    optimizer_class: type
    optimizer_config: Dict[str, Any]
    call: Optional[Any] = None  # compile_call.FreshCall
    held: Dict[str, Any] = field(default_factory=dict)
    extras: Dict[str, Any] = field(default_factory=dict)  # Keras's compile: other optimizers held, made anew

    @classmethod
    def of(cls, model) -> "CompileRecipe":
        """The settings ``model`` is compiled with now; ``ModelError`` for a model whose own
        ``compile`` was called where the tool did not see it."""
        from keras.optimizers.schedules import LearningRateSchedule
        from .compile_call import _Fresh, extra_optimizers, held_optimizers, overrides_compile, recorded_call

        call = recorded_call(model) if overrides_compile(model) else None
        extras = {name: _Fresh(value) for name, value in extra_optimizers(model).items()} if call is None else {}
        optimizer = model.optimizer
        config = copy.deepcopy(optimizer.get_config()) if optimizer is not None else {}
        schedule = getattr(optimizer, "_learning_rate", None)
        if isinstance(schedule, LearningRateSchedule):
            # Schedules are pure functions of the step: keep the object itself rather
            # than a serialized form that a notebook-defined class could not reload.
            config["learning_rate"] = schedule
        kwargs = dict(model._compile_config.config) if call is None else {}
        kwargs.pop("optimizer", None)
        held = held_optimizers(model) if call is not None else {k: v.settings() for k, v in extras.items()}
        return cls(kwargs, type(optimizer), config, call, held, extras)

    def new_optimizer(self):
        return self.optimizer_class.from_config(copy.copy(self.optimizer_config))

    def compile(self, model) -> None:
        """Compile ``model`` afresh: Keras's keywords with a new optimizer, or the model's
        own call again; either way every optimizer it then holds is new (``ModelError``
        naming one that is not: kept by ``compile`` from outside its arguments)."""
        from .compile_call import WATCH, kept_trained, stale_optimizers

        if self.call is None:  # every optimizer made before compile runs: one that fails touches nothing
            extras = {name: template.make() for name, template in self.extras.items()}
            model.compile(**dict(self.compile_kwargs, optimizer=self.new_optimizer()))
            for name, value in extras.items():  # a custom train_step's own optimizer, new as well
                setattr(model, name, value)
            return
        kept = kept_trained(model, WATCH.recorded(model))
        if kept:
            raise ModelError(f"{type(model).__name__}.compile keeps an optimizer that has trained: "
                             f"{', '.join(kept)}; pass it to compile as an argument (it is then "
                             "replaced by a new one) or create it inside compile")
        self.call.make(model)
        stale = stale_optimizers(model)
        if stale:
            raise ModelError(f"{type(model).__name__}.compile keeps an optimizer that has trained: "
                             f"{', '.join(stale)}; pass it to compile as an argument (it is then "
                             "replaced by a new one) or create it inside compile")

    def settings(self) -> Dict[str, Any]:
        """Everything the recipe sets, for fingerprinting."""
        if self.call is not None:
            return {"call": self.call.cls, "arguments": self.call.arguments(), "held": self.held}
        config = {k: v for k, v in self.optimizer_config.items() if k != "name"}  # adam_1 is adam
        settings = {"compile": self.compile_kwargs, "optimizer": self.optimizer_class, "optimizer config": config}
        if self.held:  # optimizers a train_step of the user's holds beside model.optimizer
            settings["held"] = self.held
        return settings

    def describe_optimizers(self) -> str:
        """``Adam`` or ``d_optimizer Adam, g_optimizer Adam``: what a snapshot's line names."""
        if self.call is None:
            return self.optimizer_class.__name__
        named = self.call.optimizers()
        return ", ".join(f"{k} {v}" for k, v in named.items()) or f"{self.call.cls.__name__}.compile(...)"

    def parameters(self) -> Dict[str, Any]:
        """The settings as a tracker shows parameters: ``compile.loss``, ``optimizer``,
        ``optimizer.learning_rate``; for a model's own call, ``compile.d_optimizer``,
        ``compile.d_optimizer.learning_rate``..."""
        found: Dict[str, Any] = {}
        if self.call is not None:
            for name, value in self.call.arguments().items():
                if isinstance(value, dict) and isinstance(value.get("optimizer"), type) and "config" in value:
                    found[f"compile.{name}"] = value["optimizer"].__name__
                    found.update((f"compile.{name}.{k}", v) for k, v in value["config"].items())
                else:
                    found[f"compile.{name}"] = value
            return found
        found.update((f"compile.{name}", value) for name, value in self.compile_kwargs.items())
        found["optimizer"] = self.optimizer_class.__name__
        found.update((f"optimizer.{name}", value) for name, value in self.optimizer_config.items() if name != "name")
        for name, settings in self.held.items():
            found[name] = settings["optimizer"].__name__
            found.update((f"{name}.{k}", v) for k, v in settings["config"].items())
        return found

    def differences(self, other: "CompileRecipe") -> List[str]:
        """``["loss 'mse' → 'mae'", "learning_rate 0.01 → 0.05"]``: what ``self`` changes from ``other``."""
        if self.call is not None or other.call is not None:
            return _call_differences(self, other)
        found = []
        for key in sorted(set(self.compile_kwargs) | set(other.compile_kwargs)):
            before, now = other.compile_kwargs.get(key), self.compile_kwargs.get(key)
            if _describe(before) != _describe(now):
                found.append(f"{key} {_change(before, now)}")
        if self.optimizer_class is not other.optimizer_class:
            found.append(f"optimizer {other.optimizer_class.__name__} → {self.optimizer_class.__name__}")
            return found
        for key in sorted(set(self.optimizer_config) | set(other.optimizer_config)):
            before, now = other.optimizer_config.get(key), self.optimizer_config.get(key)
            if key != "name" and _describe(before) != _describe(now):
                found.append(f"{key} {_change(before, now)}")
        return found


def _call_differences(now: CompileRecipe, before: CompileRecipe) -> List[str]:
    """What a recorded ``compile`` call changes, argument by argument; an optimizer's by key."""
    if now.call is None or before.call is None:
        return ["compile: Keras's own → the model's own call" if before.call is None
                else "compile: the model's own call → Keras's own"]
    found = []
    mine, theirs = now.call.arguments(), before.call.arguments()
    for name in sorted(set(mine) | set(theirs)):
        a, b = theirs.get(name), mine.get(name)
        if isinstance(a, dict) and isinstance(b, dict) and "config" in a and "config" in b:
            if a["optimizer"] is not b["optimizer"]:
                found.append(f"{name} {a['optimizer'].__name__} → {b['optimizer'].__name__}")
                continue
            for key in sorted(set(a["config"]) | set(b["config"])):
                if _describe(a["config"].get(key)) != _describe(b["config"].get(key)):
                    found.append(f"{name}.{key} {_change(a['config'].get(key), b['config'].get(key))}")
        elif _describe(a) != _describe(b):
            found.append(f"{name} {_change(a, b)}")
    return found


def _change(before, now) -> str:
    """``0.001 → 0.002``: floats to 7 digits (a float32 learning rate reads 0.0010000000474974513)
    unless that would hide the difference."""
    if isinstance(before, float) and isinstance(now, float) and f"{before:.7g}" != f"{now:.7g}":
        return f"{before:.7g} → {now:.7g}"
    return f"{_describe(before)} → {_describe(now)}"


def _describe(value) -> str:
    if isinstance(value, (type(None), bool, int, float, str)):
        return repr(value)
    try:
        digest = fingerprint_value(value)[:8]
    except Unfingerprintable:
        digest = "?"
    name = getattr(value, "__name__", type(value).__name__)
    return f"{name}#{digest}"


@dataclass(frozen=True)
class SnapshotInfo:
    """What ``%repro_snapshot`` returns: a description, holding no weights (IPython's
    ``Out`` keeps every value a cell returns)."""

    name: str
    variable: str
    fingerprint: str
    variables: int
    parameters: int
    nbytes: int
    optimizer: str
    status: str
    in_memory: bool

    def __repr__(self) -> str:
        where = "in memory" if self.in_memory else "memory-mapped from its file"
        return (f"Snapshot({self.name!r}: {self.variables} variables, {self.parameters:,} values "
                f"({size_text(self.nbytes)}, {where}), {self.optimizer}, fingerprint {self.fingerprint[:12]})")

    def _repr_pretty_(self, printer, cycle):
        printer.text(repr(self) + (f"\n{self.status}" if self.status else ""))

    def _repr_html_(self) -> str:
        from html import escape

        where = "in memory" if self.in_memory else "memory-mapped from its file"
        rows = [("snapshot", self.name), ("variables", f"{self.variables} ({self.parameters:,} values, "
                                                       f"{size_text(self.nbytes)}, {where})"),
                ("optimizer", self.optimizer), ("fingerprint", self.fingerprint)]
        if self.status:
            rows.append(("saved", self.status))
        body = "".join(f"<tr><th style='text-align:left'>{escape(k)}</th><td style='text-align:left'>"
                       f"{escape(v)}</td></tr>" for k, v in rows)
        return f"<table class='repro-snapshot'>{body}</table>"


@dataclass
class Snapshot:
    """Every variable of a compiled model, plus how to recompile it afresh."""

    name: str
    specs: List[Spec]
    recipe: CompileRecipe
    fingerprint: str
    digests: List[Optional[str]] = field(default_factory=list)  # XXH3-128 of each variable's bytes, where known
    created: float = field(default_factory=time.time)
    status: str = ""  # how it compares with the copy saved on disk, if any
    variable: str = ""  # the notebook name of the model it was taken from
    kept: Optional[List[np.ndarray]] = field(default=None, repr=False)  # the copy in memory, if kept
    file: Optional[object] = field(default=None, repr=False)  # tensorfile.TensorFile, if stored
    processes: int = 1  # how many processes trained together when it was taken
    state_digests: Optional[List[str]] = field(default=None, repr=False)  # of every variable, set by Session

    @classmethod
    def capture(cls, model, name: str, keep: Optional[bool] = None, digests: bool = True, *,
                memory_max_bytes: Optional[int] = None) -> "Snapshot":
        """Read every variable once, one at a time: fingerprint, and with ``keep`` a private
        copy (None: when the state is at most ``memory_max_bytes``, or always without it);
        with ``digests`` the checksum of each non-trainable one (for ``restore``). Without
        the copy the snapshot needs a stored file (``attach``) to be restored."""
        require_model(model, repr(name))
        specs = variable_specs(model)
        if keep is None:
            keep = memory_max_bytes is None or specs_nbytes(specs) <= memory_max_bytes
        fixed = fixed_variables(model)
        fingerprint, values, checksums = ArraysFingerprint(), [] if keep else None, []
        with strategy_scope(model):  # refuses unsupported strategies before anything else
            for variable in model.variables:
                distribution.require_readable(variable)  # refuses one split across processes, before reading any
            for i, variable in enumerate(model.variables):
                array = host_copy(variable) if keep else host_view(variable)
                fingerprint.update(str(i), array)
                checksums.append(bytes_digest(array) if digests and id(variable) in fixed else None)
                if keep:
                    values.append(array)
                del array
        return cls(name=name, specs=specs, recipe=CompileRecipe.of(model),
                   fingerprint=fingerprint.hexdigest(), digests=checksums, kept=values,
                   processes=distribution.processes()[0])

    def attach(self, stored, keep_copy: bool = True) -> None:
        """Restore from ``stored`` (a verified ``TensorFile`` of this snapshot) from now on;
        its checksums cover every variable. ``keep_copy=False`` drops the copy in memory."""
        self.file = stored
        self.digests = [variable["xxh3"] for variable in stored.variables]
        if not keep_copy:
            self.kept = None

    @property
    def values(self) -> List[np.ndarray]:
        """The variables: the copy in memory, or read-only views of the mapped file."""
        if self.kept is not None:
            return self.kept
        self._source_ready()
        return [self.file.array(i) for i in range(len(self.specs))]

    @property
    def parameters(self) -> int:
        return int(sum(np.prod(shape, dtype=np.int64) for _, shape, _ in self.specs))

    @property
    def nbytes(self) -> int:
        return specs_nbytes(self.specs)

    def info(self) -> SnapshotInfo:
        return SnapshotInfo(self.name, self.variable, self.fingerprint, len(self.specs), self.parameters,
                            self.nbytes, self.recipe.describe_optimizers(), self.status, self.kept is not None)

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

    def _source_ready(self) -> None:
        """The stored file still verifies (``CorruptSnapshot`` if not), or the copy is there."""
        if self.kept is None:
            if self.file is None:
                raise ReproError(f"snapshot '{self.name}' has no copy in memory and no stored file: "
                                 "run %repro_snapshot again")
            self.file.check()

    def restore(self, model, values: Optional[List[np.ndarray]] = None,
                recipe: Optional[CompileRecipe] = None, keep: frozenset = frozenset(),
                left=None, same: Optional[List[bool]] = None) -> Restored:
        """Recompile with a new optimizer (from ``recipe``, by default the snapshot's)
        and put every variable back (from the snapshot, or from ``values`` of the same
        shapes, e.g. a seed trial's state). Non-trainable variables still holding the
        snapshot's bytes are left as they are; those in ``keep`` (by ``id``) are not written,
        nor those that ``left`` (the ``StateRead`` the model's last run or snapshot left;
        ``same``: its witness's answer, if asked already) vouches hold the snapshot's bytes
        still: a LoRA fine-tune's frozen base is neither read nor written. ``left`` lets go
        of its held buffers before anything is written.

        Everything that can fail (structure check, the stored file's integrity, optimizer
        construction) runs before the model is touched; a model's own ``compile`` that
        keeps a trained optimizer is refused after it ran, before any variable is written.
        """
        require_model(model)
        self.check(model)
        if values is None:
            self._source_ready()
        recipe = recipe or self.recipe
        known = self._known(model, left, same) if values is None else {}
        if left is not None:
            left.release()
        with strategy_scope(model):
            recipe.compile(model)
            if values is not None:
                done = put_variables(model.variables, values.__getitem__, keep=keep)
            elif self.kept is not None:
                done = put_variables(model.variables, self.kept.__getitem__, self.digests, fixed_variables(model),
                                     keep=keep, known=known)
            else:
                done = put_variables(model.variables, self.file.array, self.digests, fixed_variables(model),
                                     release=self.file.release, keep=keep, known=known)
        model.reset_metrics()
        _reset_metric_objects(recipe.compile_kwargs)
        return done

    def _known(self, model, left, same) -> Dict[int, bool]:
        """``{id: holds the snapshot's bytes}`` for each variable ``left``'s witness vouches for."""
        variables = model.variables
        if left is None or len(self.digests) != len(variables) or len(left.digests) != len(variables):
            return {}
        same = left.unchanged(variables) if same is None else same
        return {id(v): left.digests[i] == self.digests[i] for i, v in enumerate(variables)
                if same[i] and self.digests[i] is not None}

    def __repr__(self) -> str:
        return repr(self.info())

    def _repr_pretty_(self, printer, cycle):
        self.info()._repr_pretty_(printer, cycle)

    def _repr_html_(self) -> str:
        return self.info()._repr_html_()


def _reset_metric_objects(compile_kwargs) -> None:
    """Zero the running totals of metric *instances* the compile arguments hold (KerasHub
    tasks pass them). ``reset_metrics`` does not reach them before the first train step
    builds the compiled metrics, so they would carry the last fit's totals into this
    fit's History (and into its inputs' fingerprint)."""
    keras = sys.modules["keras"]
    stack = [compile_kwargs.get("metrics"), compile_kwargs.get("weighted_metrics")]
    while stack:
        item = stack.pop()
        if isinstance(item, keras.metrics.Metric):
            item.reset_state()
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())




def _shape(spec: Spec) -> str:
    return f"{spec[1]} {spec[2]}"
