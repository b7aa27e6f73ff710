"""The model's state that a fit does not change: the user's, never reverted, an input.

A restore puts back what a fit changes (weights, optimizer-free statistics such as
BatchNormalization's, Dropout's seed states). Two kinds of state are not the fit's:

* **preprocessing state**: what ``adapt`` gives a Keras preprocessing layer
  (``Normalization``'s mean and variance, ``Discretization``'s bin boundaries, the
  vocabulary of ``StringLookup``/``IntegerLookup``/``TextVectorization``, held in a
  lookup table and saved as an asset, IDF weights). A fit never writes it, and the layer
  computes with tensors ``finalize_state`` derives from its variables: writing the
  variables back leaves the layer computing with the other statistics, so the model in
  memory would differ from its saved-and-reloaded copy. It is left as the notebook made
  it, and is an input of the run, by content: variables, ``save_own_variables``, the
  files of ``save_assets``, and the finalized tensors and lists the layer keeps.
* **values the user wrote after the last run** (weights loaded into a layer): a variable
  whose bytes differ from what the snapshot or the model's last run left was changed by
  the notebook, not by a fit. It is kept (honoured as the run's start) and is an input,
  by content; the report names it. Where the optimizer took steps since (a ``model.fit``
  outside ``%%repro_fit``), the changes are a fit's: everything is restored, with a note.
"""
from __future__ import annotations

import os
import tempfile
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..errors import Unfingerprintable
from ..values.arrays import ArraysFingerprint, bytes_digest
from ..values.fingerprint import fingerprint_value
from ..values.tensors import host_view


def preprocessing_layers(model) -> List:
    """Each layer of ``model`` (nested ones included) whose state comes from ``adapt``."""
    return [layer for layer in model._flatten_layers(include_self=False)
            if callable(getattr(layer, "adapt", None))]


def preprocessing_variables(model) -> frozenset:
    """``id`` of each non-trainable variable a preprocessing layer holds (a fit never
    writes them; a trainable weight of a layer that also adapts is the fit's, restored)."""
    return frozenset(id(v) for layer in preprocessing_layers(model) for v in _adapted(layer))


def _adapted(layer) -> List:
    return [v for v in layer.variables if "seed_generator" not in v.path and not v.trainable]


def preprocessing_fingerprint(model) -> Optional[str]:
    """The content of every preprocessing layer's state, or None when there is none.
    Raises ``Unfingerprintable``."""
    layers = preprocessing_layers(model)
    if not layers:
        return None
    return fingerprint_value([_layer_state(layer) for layer in layers])


def _layer_state(layer) -> Dict[str, object]:
    state: Dict[str, object] = {"class": type(layer)}
    state["variables"] = [host_view(v) for v in _adapted(layer)]
    own: Dict[str, object] = {}
    if _overrides(layer, "save_own_variables"):  # Layer's own saves every variable, trainable ones too
        try:
            layer.save_own_variables(own)
        except (NotImplementedError, ValueError) as error:
            raise Unfingerprintable(f"layer {layer.name}'s state cannot be read ({error})") from error
    state["own"] = {key: np.asarray(value) for key, value in own.items()}
    if callable(getattr(layer, "save_assets", None)):  # only the layers that have assets define it
        with tempfile.TemporaryDirectory(prefix="repro-assets-") as folder:
            try:
                layer.save_assets(folder)
            except (NotImplementedError, ValueError) as error:
                raise Unfingerprintable(f"layer {layer.name}'s assets cannot be read ({error})") from error
            state["assets"] = {name: _read(os.path.join(folder, name)) for name in sorted(os.listdir(folder))}
    # what the layer computes with, derived by finalize_state (Normalization's mean, variance;
    # Discretization's bin_boundaries): normally equal to the variables, counted in case not
    tracked = {id(v) for v in layer.variables}
    state["finalized"] = {name: value for name, value in sorted(vars(layer).items())
                          if not name.startswith("_") and id(value) not in tracked
                          and (_is_array(value) or isinstance(value, list) and value
                               and all(isinstance(x, (int, float)) for x in value))}
    return state


def _overrides(layer, method: str) -> bool:
    from keras.layers import Layer

    return getattr(type(layer), method, None) is not getattr(Layer, method)


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def _is_array(value) -> bool:
    if isinstance(value, np.ndarray):
        return True
    module = type(value).__module__ or ""
    return module.startswith(("tensorflow", "jax", "jaxlib", "torch")) and hasattr(value, "shape") \
        and hasattr(value, "dtype") and not hasattr(value, "assign")


def optimizer_steps(model):
    """``(id of the optimizer, its step count)``: a fit outside the tool changes the count;
    ``set_weights`` does not. None for an optimizer not built yet."""
    optimizer = getattr(model, "optimizer", None)
    iterations = getattr(optimizer, "iterations", None) if optimizer is not None and optimizer.built else None
    return None if iterations is None else (id(optimizer), int(np.asarray(host_view(iterations))))


class UserChanges:
    """The variables of ``model`` the notebook changed since ``left`` (the digests of
    what the snapshot or the model's last run left) to other bytes than the snapshot's
    (``origin``; setting a layer back to them is no change), preprocessing state apart.
    ``same[i]``: nothing wrote variable ``i`` since ``left`` was read (``state_read``'s
    witness), so it is not hashed again."""

    def __init__(self, model, left: Optional[Sequence[str]], origin: Optional[Sequence[str]],
                 same: Optional[Sequence[bool]] = None):
        self.indices: List[int] = []
        self.paths: List[str] = []
        self._variables: List = []
        count = len(model.variables)
        if left is None or origin is None or len(left) != count or len(origin) != count:
            return
        skip = preprocessing_variables(model)
        for i, variable in enumerate(model.variables):
            if id(variable) in skip or same is not None and same[i]:
                continue
            digest = bytes_digest(host_view(variable))
            if digest != left[i] and digest != origin[i]:
                self.indices.append(i)
                self.paths.append(variable.path)
        self._variables = [model.variables[i] for i in self.indices]

    def __bool__(self) -> bool:
        return bool(self.indices)

    def ids(self) -> frozenset:
        return frozenset(id(v) for v in self._variables) if self.indices else frozenset()

    def fingerprint(self) -> str:
        digest = ArraysFingerprint()
        for i, variable in zip(self.indices, self._variables):
            digest.update(str(i), host_view(variable))
        return digest.hexdigest()

    def note(self, loaded_from: Optional[str] = None) -> str:
        """The report's line; ``loaded_from``: the file ``load_weights`` read them from."""
        shown = ", ".join(self.paths[:8]) + (f" and {len(self.paths) - 8} more" if len(self.paths) > 8 else "")
        if loaded_from is not None:
            return (f"weights loaded from {loaded_from} after the last run: this fit starts from them, not "
                    f"from the snapshot (an input of this run): {shown}")
        return (f"kept as the notebook set them after the last run, not restored from the snapshot "
                f"(an input of this run): {shown}")
