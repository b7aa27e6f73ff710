"""Keras objects by what they configure: layers by class, configuration (layer names
left out) and variables; losses, metrics, optimizers and schedules by class and
configuration; callbacks without the state a fit writes into them; a
``keras.distribution`` by its layout.
"""
from __future__ import annotations

import functools
import sys

from ..errors import Unfingerprintable
from .code import is_library_module
from .tensors import host_view
from .keras_distribution import describe_distribution


def layer_config(layer) -> dict:
    """``get_config()``, or ``Unfingerprintable`` for a layer that has none."""
    try:
        return layer.get_config()
    except NotImplementedError as error:
        raise Unfingerprintable(f"layer {layer.name} ({type(layer).__name__}) has no get_config()") from error


def without_layer_names(config):
    """``config`` with every layer's name replaced by its position among them, and tuples
    as lists: rebuilding a model renames ``dense`` to ``dense_3``, and ``load_model``
    gives back ``(None, 8)`` as ``[None, 8]``, without changing what it computes."""
    names = {}

    def collect(node):
        if isinstance(node, dict):
            inner = node.get("config")
            policy = str(node.get("class_name", "")).endswith("DTypePolicy")  # its name is a dtype, not a layer's
            if "class_name" in node and not policy:
                for found in (inner.get("name") if isinstance(inner, dict) else None, node.get("name")):
                    if isinstance(found, str):  # a custom layer's automatic name is only the entry's own
                        names.setdefault(found, f"layer{len(names)}")
            for value in node.values():
                collect(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                collect(value)

    def rename(node):
        if isinstance(node, dict):
            return {key: rename(value) for key, value in node.items()}
        if isinstance(node, (list, tuple)):  # a tuple in memory is a list after a .keras round trip
            return [rename(value) for value in node]
        if isinstance(node, str):
            return names.get(node, node)
        return node

    if isinstance(config, dict) and isinstance(config.get("name"), str):
        config = dict(config, name="model")
    collect(config)
    return rename(config)


@functools.lru_cache(maxsize=None)
def fit_attributes(kind: type) -> frozenset:
    """The attributes a Keras callback class writes outside ``__init__`` (``set_params``,
    ``on_train_begin``, ``on_epoch_end``...): the fit's state (``params``, ``best``,
    ``wait``, ``best_weights``...), which ``on_train_begin`` sets afresh, not what the user
    configured. A constructor's parameter is configuration even where a fit rewrites it
    (``min_delta``). Only the library's own classes: a user's callback counts whole (what
    it keeps from one fit to the next may change the next)."""
    import ast
    import inspect
    import textwrap

    names, parameters = set(), set()
    for cls in kind.__mro__:
        if cls is object or not is_library_module(cls.__module__):
            continue
        if "__init__" in cls.__dict__:
            try:
                parameters |= set(inspect.signature(cls.__init__).parameters)
            except (TypeError, ValueError):
                pass
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
        except (OSError, TypeError, SyntaxError):
            continue
        for method in ast.walk(tree):
            if not isinstance(method, (ast.FunctionDef, ast.AsyncFunctionDef)) or method.name == "__init__":
                continue
            for node in ast.walk(method):
                if (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
                        and isinstance(node.value, ast.Name) and node.value.id == "self"):
                    names.add(node.attr)
    return frozenset(names - parameters)


def _min_delta_as_given(callback, attributes) -> None:
    """``min_delta`` by its size, as given: Keras's MonitorCallback stores ``abs(min_delta)``
    and negates it at the first fit for a "min" monitor (``monitor_op`` less). Only a sign
    that agrees with ``monitor_op`` is folded; one set against it (the user wrote
    ``es.min_delta = 0.05`` after a fit) trains otherwise, and counts as written."""
    delta = attributes.get("min_delta")
    if not isinstance(delta, (int, float)):
        return
    op = getattr(getattr(callback, "monitor_op", None), "__name__", None)
    agrees = delta >= 0 if op in (None, "greater") else delta <= 0 if op == "less" else False
    attributes["min_delta"] = abs(delta) if agrees else ("as written, against monitor_op", op, delta)


def configured_attributes(callback, attributes: dict) -> dict:
    """A callback's ``attributes`` as the user configured them: without the model fit sets,
    and for the library's own classes without the state a fit writes (``fit_attributes``);
    a user's subclass counts whole."""
    attributes = {name: value for name, value in attributes.items() if name not in ("model", "_model")}
    kind = type(callback)
    if is_library_module(kind.__module__):
        for name in fit_attributes(kind):
            attributes.pop(name, None)
        _min_delta_as_given(callback, attributes)
    return attributes


def is_keras_object(value) -> bool:
    """A layer, or a Keras object with a configuration (loss, metric, optimizer...), not a callback."""
    keras = sys.modules.get("keras")
    if keras is None or not (type(value).__module__ or "").startswith("keras"):
        return False
    if isinstance(value, keras.layers.Layer):
        return True
    return hasattr(value, "get_config") and not isinstance(value, keras.callbacks.Callback)


def is_keras_callback(value) -> bool:
    keras = sys.modules.get("keras")
    return keras is not None and isinstance(value, keras.callbacks.Callback)


def is_keras_distribution(value) -> bool:
    return (type(value).__module__ or "").startswith("keras.src.distribution")


class KerasHashing:
    """``_Walker``'s Keras objects and distributions."""

    def keras_object(self, value) -> None:
        """A layer or model (another than the one trained) by class, configuration and
        variables; a loss, metric, optimizer, schedule... by class and configuration."""
        keras = sys.modules["keras"]
        self.feed(type(value))
        if isinstance(value, keras.layers.Layer):
            self.feed(without_layer_names(layer_config(value)))
            for variable in value.variables:  # a layer shared with the model trained: its variables are the run's
                if id(variable) in self.exclude:
                    self.put(f"excluded:{self.exclude[id(variable)]};")
                else:
                    self.array(host_view(variable))
            return
        config = dict(value.get_config())
        config.pop("name", None)  # numbered per process (adam_1, mean_squared_error_2); changes nothing
        schedule = getattr(value, "_learning_rate", None)
        if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
            config["learning_rate"] = schedule  # by its class's code, not its name
        self.feed(config)
        for variable in getattr(value, "variables", None) or ():  # an optimizer's steps and moments
            self.array(host_view(variable))

    def distribution(self, value) -> None:
        """Its layout, not the process that holds it."""
        self.put(f"keras.distribution:{type(value).__name__};")
        self.feed(describe_distribution(value))
