"""What a trial on a cluster is sent: the state, not a recipe.

``pack`` takes from the notebook everything a trial depends on (``run/inputs.py`` names
the same parts): the model's architecture (its configuration, and the classes the notebook
defined, by value: cloudpickle pickles ``__main__`` classes and functions by value, as Dask
does), the compile settings, the cell's code, exactly the notebook values the cell reads
and their fingerprints, the preprocessing state, the thread settings and the versions of
what computes the bits. Large arrays travel apart (``large``: scattered once to every
worker, not once per trial). Everything that cannot travel is refused here, naming it,
before anything runs.
"""
from __future__ import annotations

import ast
import os
import sys
from typing import Dict, Iterable, List, Tuple

from ..errors import ReproError, Unfingerprintable
from ..values.code import is_library_module
from ..values.source import names_read
from .probe import probe
from .remote_trial import Shipment, cpus

#: a NumPy or pandas value at least this large is scattered to the workers once
LARGE_BYTES = 1 << 20


class Unshippable(ReproError):
    """A value the cell reads that cannot be sent to a worker (an open file, a generator)."""


def pack(model, snapshot, recipe, source: str, namespace: dict, hidden: Iterable[str] = (),
         metric_names: Iterable[str] = (), deterministic: bool = True) -> Tuple[Shipment, Dict[str, object]]:
    """The ``Shipment`` of a trial cell, and the large values apart; ``Unshippable`` first."""
    require_plain_python(source)
    small, large, fingerprints = _values(model, snapshot.variable, source, namespace, set(hidden))
    classes = notebook_classes(model)
    shipment = Shipment(
        model_class=type(model), config=model.get_config(), classes=classes, recipe=recipe,
        specs=[tuple(spec) for spec in snapshot.specs], variable=snapshot.variable, snapshot=snapshot.name,
        source=source, fingerprints=fingerprints, values=small, kept=_kept(model),
        metric_names=list(metric_names), deterministic=deterministic, threads=threads(),
        modules=needed_modules(model, source, {**small, **large}))
    shipment.versions = probe(shipment.modules)
    _require_picklable("the model's configuration and compile settings",
                       (shipment.model_class, shipment.config, classes, recipe))
    return shipment, large


def require_plain_python(source: str) -> None:
    """Refuse a cell whose transformed source calls IPython (its magics, ``!`` commands)."""
    if "get_ipython()" in source:
        raise ReproError("trials on a cluster run the cell's Python on the workers, where there is no IPython: "
                         "move the magics and shell commands (%, !) out of the fit cell")


def _values(model, variable: str, source: str, namespace: dict, hidden: set):
    """The notebook values the cell reads: (small, large, fingerprints), or ``Unshippable``."""
    from ..values.fingerprint import fingerprint_value

    exclude = {id(model): "the model trained"}
    exclude.update((id(v), f"the model's variable {i}") for i, v in enumerate(model.variables))
    small, large, fingerprints = {}, {}, {}
    for name in names_read(source):
        if name not in namespace or name in hidden or name == variable or namespace[name] is model:
            continue
        value = namespace[name]
        try:
            fingerprints[name] = fingerprint_value(value, exclude)
        except Unfingerprintable as error:
            raise Unshippable(f"notebook value {name} {error.reason}: a trial on a cluster needs every value the "
                              f"cell reads known by content; make {name} a list or an array") from error
        if _nbytes(value) >= LARGE_BYTES:
            large[name] = value
        else:
            _require_picklable(f"notebook value {name}", value)
            small[name] = value
    return small, large, fingerprints


def _nbytes(value) -> int:
    if type(value).__module__.split(".")[0] in ("numpy", "pandas"):
        nbytes = getattr(value, "nbytes", 0)
        return int(nbytes() if callable(nbytes) else nbytes)
    return 0


def _require_picklable(what: str, value) -> int:
    import pickle

    import cloudpickle

    try:
        return len(cloudpickle.dumps(value))
    except (TypeError, AttributeError, pickle.PicklingError, ValueError) as error:
        raise Unshippable(f"{what} cannot be sent to a worker ({type(error).__name__}: {error}); "
                          "trials on a cluster need values that can be pickled") from error


def notebook_classes(model) -> Dict[str, type]:
    """The classes of ``model`` and its layers the notebook defined, under every name Keras
    may look them up by (the class name, and the registered name if it was registered)."""
    import keras

    classes = {}
    for layer in [model, *model._flatten_layers(include_self=False)]:
        kind = type(layer)
        if not is_library_module(kind.__module__):
            classes[kind.__name__] = kind
            classes[keras.saving.get_registered_name(kind)] = kind
    return classes


def _kept(model) -> Dict[int, object]:
    """The notebook's own state (what ``adapt`` set), which a trial's restore never writes."""
    from ..model.model_state import preprocessing_variables
    from ..values.tensors import host_copy

    kept = preprocessing_variables(model)
    return {i: host_copy(v) for i, v in enumerate(model.variables) if id(v) in kept}


def threads() -> Dict[str, int]:
    """TensorFlow's thread pools here (0: its default, the CPU count) and the CPU count. A
    pool the configuration leaves at 0 takes ``TF_NUM_INTRAOP_THREADS``/``..._INTEROP_...``
    when set (TensorFlow reads them when it starts)."""
    found = {"intra": 0, "inter": 0, "cpus": cpus()}
    tf = sys.modules.get("tensorflow")
    if tf is not None and hasattr(tf, "config"):
        found["intra"] = tf.config.threading.get_intra_op_parallelism_threads()
        found["inter"] = tf.config.threading.get_inter_op_parallelism_threads()
    for kind, name in (("intra", "TF_NUM_INTRAOP_THREADS"), ("inter", "TF_NUM_INTEROP_THREADS")):
        if not found[kind] and os.environ.get(name, "").isdigit():
            found[kind] = int(os.environ[name])
    return found


def needed_modules(model, source: str, values: dict) -> List[str]:
    """The top-level packages a trial imports: the cell's imports, the modules of the values
    it reads and of the model's layers (the notebook's own, ``__main__``, travel by value)."""
    found = set()
    try:
        tree = ast.parse(source)
    except SyntaxError:
        tree = None
    for node in ast.walk(tree) if tree is not None else ():
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    for value in [*values.values(), model, *model._flatten_layers(include_self=False)]:
        module = value.__name__ if type(value).__name__ == "module" else type(value).__module__
        found.add(module.split(".")[0])
    return sorted(found - {"__main__", "builtins"} - set(sys.builtin_module_names))
