"""What a run depends on: the one definition of "the same inputs".

Two fits must give the same bytes when all of these are equal, so the verdict and the
cache compare all of them, each by content:

* ``snapshot``: the initial state (every variable), and ``seed``;
* ``cell``: the fit cell's code as Python sees it (``source.canonical_source``), or a
  script's fit function by its code;
* ``global NAME``: the value of every notebook name the cell reads, by content; the
  functions it reads by their code, closure values and the globals *they* read;
* ``distribution``: how the model is spread over devices and processes, when it is
  (``distribution.layout``: process count, mesh, layout map, each variable's placement);
* per ``fit`` call: ``architecture`` (the model's configuration: activations, dropout
  rates, layers without variables; layer names left out), ``compile`` (loss, metrics,
  loss weights, optimizer class and configuration, learning-rate schedules, as the fit
  will use them), and every argument (``x``, ``y``, ``validation_data``, ``callbacks``
  one by one, the rest together).

A part that cannot be known by content is *opaque*, with the reason; a run with an
opaque part is "not compared", never guessed at. Data that a fit reads batch by batch
(a generator, a PyDataset...) is opaque until the fit has read it (``run/observed.py``);
then its part is the fingerprint of what the model saw.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional

import xxhash

from ..errors import Unfingerprintable
from ..values.fingerprint import fingerprint_value
from ..values.keras_values import layer_config, without_layer_names
from ..values.source import canonical_source, names_read

#: fit arguments fingerprinted one by one (so a difference can be named); the rest together
DATA_ARGUMENTS = ("x", "y", "validation_data", "sample_weight", "class_weight", "callbacks")
#: data a fit can read batch by batch when it cannot be hashed before
OBSERVABLE_ARGUMENTS = ("x", "validation_data")
IGNORED_ARGUMENTS = ("verbose",)  # does not change the result


def input_key(parts: Dict[str, str]) -> str:
    """What must be equal for two runs to be required to give the same result (XXH3: fast,
    not made to resist someone choosing inputs to collide; ``team_key`` is for that)."""
    return xxhash.xxh3_128_hexdigest(json.dumps(parts, sort_keys=True).encode())


def team_key(parts: Dict[str, str]) -> str:
    """The key a team store's record is filed and signed under: SHA-256 of the parts'
    canonical JSON (sorted keys, compact), so no other parts can be made to give it. The
    parts themselves are XXH3 fingerprints of the values (``values/fingerprint.py``)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def cell_hash(source: str) -> str:
    return xxhash.xxh3_64_hexdigest(canonical_source(source).encode())


@dataclass
class Inputs:
    """The parts of one run's inputs: ``name -> fingerprint``, or ``name -> why not``."""

    parts: Dict[str, str] = field(default_factory=dict)
    opaque: Dict[str, str] = field(default_factory=dict)
    pending: Dict[int, List[str]] = field(default_factory=dict)  # id(value) -> parts, until observed

    def add(self, name: str, value, exclude: Optional[dict] = None) -> None:
        try:
            self.parts[name] = fingerprint_value(value, exclude)
        except Unfingerprintable as error:
            self.opaque[name] = f"{_label(name)} {error.reason}"
            if error.consumable:
                self.pending.setdefault(id(value), []).append(name)
        except Exception as error:  # noqa: BLE001 -- an object that breaks hashing must not break the fit
            self.opaque[name] = f"{_label(name)} could not be fingerprinted ({type(error).__name__}: {error})"

    def observed(self, value_id: int, name: str, fingerprint: str) -> None:
        """A source the fit read as ``name``: it, and a notebook name bound to it, now
        count by the batches read."""
        self.parts[name] = fingerprint
        self.opaque.pop(name, None)
        for alias in self.pending.pop(value_id, ()):
            if alias != name:
                self.opaque.pop(alias, None)
                self.parts[alias] = f"read by the fit as {name}"

    @property
    def comparable(self) -> bool:
        return not self.opaque

    @property
    def key(self) -> str:
        return input_key(self.parts)

    @property
    def reason(self) -> Optional[str]:
        """Why the run cannot be compared, in a few words, or None."""
        return "; ".join(self.opaque.values()) or None


def _label(name: str) -> str:
    return name.split(" ", 1)[1] if name.startswith("global ") else name


def changed(parts: Dict[str, str], earlier: Dict[str, str]) -> List[str]:
    """The names of the parts whose values differ, readable, all of them. A notebook
    value only one of the two cells read is no changed value (the cell that reads it
    differs, and is named); any other part on one side only is (a layout, preprocessing)."""
    return [_label(name) for name in sorted(set(parts) | set(earlier))
            if parts.get(name) != earlier.get(name)
            and not (name.startswith("global ") and (name not in parts or name not in earlier))]


_PART_WORDS = {"snapshot": "the initial state (snapshot)", "seed": "the seed", "cell": "the fit cell's code",
               "files": "the files read", "architecture": "the architecture", "compile": "the compile settings",
               "arguments": "the other arguments (epochs, batch_size...)",
               "preprocessing": "the preprocessing layers' state (adapt)",
               "user changes": "the variables set by the notebook after the last run"}


def describe(name: str) -> str:
    """A part's name as a report says it: ``global X`` → "notebook value X", ``fit.x`` →
    "x of model.fit", ``fit[2].callbacks`` → "callbacks of model.fit call 2"."""
    if name.startswith("global "):
        return f"notebook value {name[len('global '):]}"
    call, dot, part = name.partition(".")
    if dot and call.startswith("fit"):
        which = "model.fit" if call == "fit" else f"model.fit call {call[4:-1]}"
        return f"{_PART_WORDS.get(part, part)} of {which}"
    return _PART_WORDS.get(name, name)


def add_cell(inputs: Inputs, source: str, namespace: dict, hidden: Iterable[str] = (),
             exclude: Optional[dict] = None) -> None:
    """The cell's code and the notebook values it reads (taken before it runs)."""
    inputs.parts["cell"] = cell_hash(source)
    hidden = set(hidden)
    for name in names_read(source):
        if name in namespace and name not in hidden:
            inputs.add(f"global {name}", namespace[name], exclude)


def add_function(inputs: Inputs, function, exclude: Optional[dict] = None) -> None:
    """A script's fit function: its code, closure and the globals it reads."""
    inputs.add("cell", function, exclude)


def architecture(model) -> str:
    """The model's structure as far as it changes the result, without layer names."""
    layers = list(model._flatten_layers(include_self=False))
    try:
        config = without_layer_names(model.get_config())
    except NotImplementedError:  # a subclassed model: its class's code stands for it
        config = None
    described = [(type(layer), _layer_description(layer), layer.trainable, layer.dtype_policy.name)
                 for layer in layers]
    return fingerprint_value({"model": type(model), "config": config, "layers": described})


def _layer_description(layer):
    try:
        return without_layer_names(layer_config(layer))
    except Unfingerprintable:  # a custom layer without get_config: its class's code and attributes
        return {k: v for k, v in vars(layer).items() if isinstance(v, (bool, int, float, str, tuple))}


def add_fit_call(inputs: Inputs, prefix: str, model, arguments: dict, recipe) -> List[str]:
    """One ``fit`` call's parts; returns the names of the data arguments that are opaque
    but observable (the caller wraps them, and ``observed`` fills them in)."""
    for name, compute in (("architecture", lambda: architecture(model)),
                          ("compile", lambda: fingerprint_value(recipe.settings()))):
        try:
            inputs.parts[prefix + name] = compute()
        except Unfingerprintable as error:
            inputs.opaque[prefix + name] = f"{prefix}{name}: {error.reason}"
    observable = []
    for name in DATA_ARGUMENTS:
        if name not in arguments or arguments[name] is None:
            continue
        inputs.add(prefix + name, arguments[name])
        if prefix + name in inputs.opaque and name in OBSERVABLE_ARGUMENTS and id(arguments[name]) in inputs.pending:
            observable.append(name)
    rest = {name: value for name, value in arguments.items()
            if name not in DATA_ARGUMENTS and name not in IGNORED_ARGUMENTS}
    rest.update(rest.pop("kwargs", None) or {})
    inputs.add(prefix + "arguments", rest)
    return observable
