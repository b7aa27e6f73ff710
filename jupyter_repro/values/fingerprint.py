"""Content fingerprints: what a value holds, hashed so that equal content gives equal
hex digests in every process, and unequal content different ones.

XXH3-128 (``xxhash``) runs near memory bandwidth, so fingerprinting costs little next
to training; SHA-256 would be several times slower and buys nothing here (this is
change detection; signing is ``signing.py``'s job). Each array's dtype and shape are
hashed with its bytes, so a reshaped or retyped array never collides with the original.

A value is hashed by **content** or not at all. Arrays, tensors, DataFrames, plain
Python values and containers by their data; functions and classes written by the user
by their code (bytecode, constants, defaults, closure values and the globals they read);
library functions and classes by their qualified name (their code is the environment's,
recorded apart); objects by their class and attributes. What cannot be known that way
raises ``Unfingerprintable`` with a reason ("x is a generator"): the caller then says
"not compared" instead of guessing. ``consumable`` marks the data a fit can still
fingerprint batch by batch as it reads it (``observed.py``).
"""
from __future__ import annotations

import functools
import io
import os
import sys
import sysconfig
import types
from typing import Iterable, Optional, Tuple

import numpy as np
import xxhash


class Unfingerprintable(Exception):
    """``value`` cannot be hashed by content; ``reason`` says why in a few words."""

    def __init__(self, reason: str, consumable: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.consumable = consumable


def array_bytes(array: np.ndarray) -> memoryview:
    """A zero-copy byte view of ``array`` (copies only if it is not C-contiguous).

    Viewed as ``uint8`` rather than through the buffer protocol, which refuses dtypes it
    has no format letter for (bfloat16 and the float8 types of ``ml_dtypes``).
    """
    return memoryview(np.ascontiguousarray(array).reshape(-1).view(np.uint8))


@functools.lru_cache(maxsize=256)
def dtype_tag(dtype: np.dtype) -> str:
    """``"<f4:float32"``: byte order and size, and the name that tells bfloat16 from float16
    (computing ``dtype.name`` costs microseconds, so once per dtype). Values of any kind."""
    return f"{dtype.str}:{dtype.name}"


@functools.lru_cache(maxsize=256)
def variable_dtype_tag(dtype: np.dtype) -> str:
    """``<f4``; ``<V2:bfloat16`` for a dtype NumPy does not define itself: model states.

    ``dtype.str`` alone names NumPy's own dtypes uniquely, but every ``ml_dtypes`` type
    of one width shares it (``<V2`` for bfloat16; ``<V1`` for several float8 kinds), so
    their name is added; the fingerprints of weights recorded before stay what they were.
    """
    return dtype.str if dtype.isbuiltin == 1 else f"{dtype.str}:{dtype.name}"


class ArraysFingerprint:
    """Hex XXH3-128 over ``(name, array)`` pairs fed one at a time: a model's variables
    are hashed as they are read, never all held at once."""

    def __init__(self):
        self._digest = xxhash.xxh3_128()

    def update(self, name: str, array: np.ndarray) -> None:
        array = np.asarray(array)
        self._digest.update(f"{name}|{variable_dtype_tag(array.dtype)}|{array.shape}\n".encode())
        self._digest.update(array_bytes(array))

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def fingerprint_arrays(items: Iterable[Tuple[str, np.ndarray]]) -> str:
    """Hex XXH3-128 over ``(name, array)`` pairs, in the order given."""
    digest = ArraysFingerprint()
    for name, array in items:
        digest.update(name, array)
    return digest.hexdigest()


def bytes_digest(array: np.ndarray) -> str:
    """Hex XXH3-128 of an array's bytes alone: the checksum a stored tensor carries, and
    how a variable is known unchanged (its dtype and shape are checked apart)."""
    return xxhash.xxh3_128_hexdigest(array_bytes(array))


def fingerprint_value(value, exclude: Optional[dict] = None) -> str:
    """Hex XXH3-128 of what ``value`` holds, stable across processes.

    ``exclude`` maps ``id(obj)`` to a label hashed in place of ``obj`` (the model being
    trained: its state is the snapshot's). Raises ``Unfingerprintable``.
    """
    digest = xxhash.xxh3_128()
    _Walker(digest, exclude or {}).feed(value)
    return digest.hexdigest()


# -- what is library code -------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _library_roots() -> Tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    roots |= {p for p in sys.path if p.endswith(("site-packages", "dist-packages"))}
    return tuple(os.path.realpath(root) + os.sep for root in roots)


@functools.lru_cache(maxsize=4096)
def _is_library_file(filename: Optional[str]) -> bool:
    if not filename:
        return True  # built in: the interpreter's
    return os.path.realpath(filename).startswith(_library_roots())


def is_library_module(module_name: Optional[str]) -> bool:
    """True for modules installed with Python or into site-packages: their code is part of
    the environment (versions are recorded apart), so they count by name."""
    if not module_name or module_name == "__main__":
        return False  # the notebook's, or code exec'd without a module name
    module = sys.modules.get(module_name)
    if module is None:
        return True
    if module_name in sys.builtin_module_names:
        return True
    return _is_library_file(getattr(module, "__file__", None))


#: Types whose state lives in C and that ``_Walker`` reads through a public accessor.
_GENERATOR_TYPES = (types.GeneratorType, types.AsyncGeneratorType, types.CoroutineType)
_SIMPLE = (type(None), bool, int, float, complex, str, bytes)
_MAX_OBJECTS = 200_000


class _Walker:
    """One pass over a value; objects met twice are hashed once, then by reference."""

    def __init__(self, digest, exclude: dict):
        self.digest = digest
        self.exclude = exclude
        self.seen = {}
        self.keep = []  # objects in ``seen``, alive until the walk ends (ids stay unique)

    def put(self, text: str) -> None:
        self.digest.update(text.encode())

    def feed(self, value) -> None:
        if isinstance(value, _SIMPLE):
            self.put(f"{type(value).__name__}:{value!r};")
            return
        key = id(value)
        if key in self.exclude:
            self.put(f"excluded:{self.exclude[key]};")
            return
        if key in self.seen:
            self.put(f"ref:{self.seen[key]};")
            return
        if len(self.seen) >= _MAX_OBJECTS:
            raise Unfingerprintable(f"holds more than {_MAX_OBJECTS:,} objects")
        self.seen[key] = len(self.seen)
        self.keep.append(value)
        self._feed(value)

    def _feed(self, value) -> None:  # noqa: C901 -- one dispatch table, read top to bottom
        if isinstance(value, np.ndarray) or isinstance(value, np.generic):
            self.array(np.asarray(value))
        elif isinstance(value, (list, tuple)):
            self.put(f"{type(value).__name__}[{len(value)}];")
            for item in value:
                self.feed(item)
        elif isinstance(value, dict):
            self.put(f"dict[{len(value)}];")
            for item_key in sorted(value, key=_sort_key):
                self.feed(item_key)
                self.feed(value[item_key])
        elif isinstance(value, (set, frozenset)):
            self.put(f"set[{len(value)}];")
            self.put(",".join(sorted(fingerprint_value(item, self.exclude) for item in value)))
        elif isinstance(value, _GENERATOR_TYPES) or _is_iterator(value):
            raise Unfingerprintable(f"is a {_kind(value)}", consumable=isinstance(value, types.GeneratorType)
                                    or hasattr(value, "__next__"))
        elif isinstance(value, types.ModuleType):
            self.module(value)
        elif isinstance(value, (types.FunctionType, types.BuiltinFunctionType, types.MethodType,
                                functools.partial, type)) or _is_ufunc(value):
            self.callable(value)
        elif _module_of(value).startswith("pandas") and hasattr(value, "to_numpy"):
            self.pandas(value)
        elif _is_tf_dataset(value):
            self.put("tf.data;")
            self.digest.update(dataset_graph_bytes(value))
        elif _is_consumable(value):
            raise Unfingerprintable(f"is a {_kind(value)}", consumable=True)
        elif _is_tensor(value):
            self.array(tensor_to_numpy(value))
        elif _is_keras_object(value):
            self.keras_object(value)
        elif _is_keras_distribution(value):  # its layout, not the process that holds it
            from ..model.distribution import describe

            self.put(f"keras.distribution:{type(value).__name__};")
            self.feed(describe(value))
        elif _is_tf_function(value):
            self.put("tf.function;")
            self.feed(value.python_function)
            self.feed(getattr(value, "_jit_compile", None))
        elif _library_global(value):  # np.mean (a dispatcher object), tf.math.add...: the environment's
            self.put(f"fn:{value.__module__}.{value.__qualname__};")
        elif isinstance(value, (io.IOBase,)):
            raise Unfingerprintable(f"is an open file ({_kind(value)})")
        else:
            self.instance(value)

    # -- kinds ------------------------------------------------------------------
    def array(self, array: np.ndarray) -> None:
        self.put(f"nd:{dtype_tag(array.dtype)}:{array.shape};")
        if array.dtype.hasobject:
            for item in array.ravel().tolist():
                self.feed(item)
        else:
            self.digest.update(array_bytes(array))

    def pandas(self, frame) -> None:
        import pandas as pd

        self.put(f"pd:{type(frame).__name__}:{frame.shape};")
        if isinstance(frame, pd.Index):
            self.digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
            return
        columns = list(frame.items()) if isinstance(frame, pd.DataFrame) else [(frame.name, frame)]
        self.feed([str(name) for name, _ in columns])
        self.digest.update(pd.util.hash_pandas_object(frame.index, index=False).to_numpy().tobytes())
        for _, column in columns:
            values = column.to_numpy()
            if values.dtype.hasobject:
                values = pd.util.hash_pandas_object(column, index=False).to_numpy()
            self.put(f"{values.dtype.str};")
            self.digest.update(array_bytes(values))

    def module(self, module: types.ModuleType) -> None:
        self.put(f"module:{module.__name__};")
        if not is_library_module(module.__name__):  # the user's own module: its source
            filename = getattr(module, "__file__", None)
            try:
                with open(filename, "rb") as handle:
                    self.digest.update(handle.read())
            except (OSError, TypeError) as error:
                raise Unfingerprintable(f"module {module.__name__}'s source cannot be read") from error

    def callable(self, value) -> None:
        if isinstance(value, functools.partial):
            self.put("partial;")
            self.feed(value.func)
            self.feed(value.args)
            self.feed(value.keywords)
        elif isinstance(value, types.MethodType):
            self.put("method;")
            self.feed(value.__self__)
            self.feed(value.__func__)
        elif isinstance(value, type):
            self.cls(value)
        elif isinstance(value, types.FunctionType) and not is_library_module(value.__module__):
            self.function(value)
        else:  # library or built-in function, NumPy ufunc: the environment's code
            owner = getattr(value, "__module__", None) or type(getattr(value, "__self__", None)).__module__
            self.put(f"fn:{owner}.{getattr(value, '__qualname__', getattr(value, '__name__', '?'))};")
            bound = getattr(value, "__self__", None)
            if isinstance(value, types.BuiltinMethodType) and bound is not None and not isinstance(
                    bound, types.ModuleType):
                self.feed(bound)  # e.g. rng.normal: the generator it belongs to

    def function(self, function: types.FunctionType) -> None:
        """A function by what it computes: code, defaults, closure, the globals it reads."""
        self.put("function;")
        self.code(function.__code__)
        self.feed(function.__defaults__)
        self.feed(function.__kwdefaults__)
        for cell in function.__closure__ or ():
            try:
                contents = cell.cell_contents
            except ValueError:  # an empty cell: a name not bound yet
                self.put("cell:empty;")
                continue
            self.feed(contents)
        namespace = function.__globals__
        builtins = namespace.get("__builtins__")
        for name in sorted(_global_names(function.__code__)):
            if name in namespace:
                self.put(f"global:{name}=")
                self.feed(namespace[name])
            elif not (isinstance(builtins, dict) and name in builtins or hasattr(builtins, name)):
                self.put(f"global:{name}:unbound;")

    def code(self, code: types.CodeType) -> None:
        # Names, line numbers and file names are left out: cosmetic, or per process.
        self.put(f"code:{code.co_argcount}:{code.co_posonlyargcount}:{code.co_kwonlyargcount}:"
                 f"{code.co_flags};")
        self.digest.update(code.co_code)
        self.put(",".join(code.co_names) + ";")
        for constant in code.co_consts:
            if isinstance(constant, types.CodeType):
                self.code(constant)
            else:
                self.feed(constant)

    def cls(self, cls: type) -> None:
        if is_library_module(cls.__module__):
            self.put(f"class:{cls.__module__}.{cls.__qualname__};")
            return
        self.put(f"class:{cls.__qualname__};")  # the user's class: by its code
        self.feed(list(cls.__bases__))
        for name in sorted(cls.__dict__):
            if name in ("__module__", "__dict__", "__weakref__", "__doc__", "__qualname__"):
                continue
            attribute = cls.__dict__[name]
            if isinstance(attribute, (staticmethod, classmethod)):
                attribute = attribute.__func__
            elif isinstance(attribute, property):
                attribute = (attribute.fget, attribute.fset, attribute.fdel)
            self.put(f"attr:{name}=")
            self.feed(attribute)

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
                    self.array(tensor_to_numpy(variable))
            return
        config = dict(value.get_config())
        config.pop("name", None)  # numbered per process (adam_1, mean_squared_error_2); changes nothing
        schedule = getattr(value, "_learning_rate", None)
        if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
            config["learning_rate"] = schedule  # by its class's code, not its name
        self.feed(config)
        for variable in getattr(value, "variables", None) or ():  # an optimizer's steps and moments
            self.array(tensor_to_numpy(variable))

    def instance(self, value) -> None:
        """An object by its class and its attributes; one whose state lives in C
        (a C base class) only where a public accessor gives that state."""
        kind = type(value)
        state = _c_state(value)
        if state is not None:
            self.put(f"state:{kind.__module__}.{kind.__qualname__};")
            self.feed(state)
            return
        if _has_c_base(kind) or not hasattr(value, "__dict__") and not hasattr(kind, "__slots__"):
            raise Unfingerprintable(f"is a {_kind(value)}, whose content cannot be read")
        self.feed(kind)
        attributes = dict(getattr(value, "__dict__", {}))
        for slot in getattr(kind, "__slots__", ()):
            if hasattr(value, slot):
                attributes[slot] = getattr(value, slot)
        if _is_keras_callback(value):
            attributes.pop("model", None)  # set by fit; the model is the run's own
            attributes.pop("_model", None)
            if is_library_module(kind.__module__):  # a user's subclass counts whole
                for name in fit_attributes(kind):  # what Keras writes into its own callbacks while fitting
                    attributes.pop(name, None)
                _min_delta_as_given(value, attributes)
        self.feed(attributes)


# -- helpers ----------------------------------------------------------------------
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


def _sort_key(key):
    return (type(key).__name__, repr(key) if isinstance(key, _SIMPLE) else str(id(key)))


def _module_of(value) -> str:
    return type(value).__module__ or ""


def _kind(value) -> str:
    """"generator", "list_iterator", "keras PyDataset", "MyDataset" (the user's class)."""
    kind = type(value)
    if isinstance(value, types.GeneratorType):
        return "generator"
    if kind.__module__ in ("builtins", "__main__") or not is_library_module(kind.__module__):
        return kind.__qualname__
    return f"{kind.__module__.split('.')[0]} {kind.__qualname__}"


def _is_iterator(value) -> bool:
    return hasattr(type(value), "__next__") and hasattr(type(value), "__iter__")


def _is_ufunc(value) -> bool:
    return isinstance(value, np.ufunc)


def _is_tensor(value) -> bool:
    module = _module_of(value)
    return (module.startswith(("tensorflow", "jax", "jaxlib", "torch", "keras"))
            and hasattr(value, "dtype") and hasattr(value, "shape")
            and (hasattr(value, "numpy") or hasattr(value, "__array__")))


def tensor_to_numpy(tensor) -> np.ndarray:
    """A tensor's (or a Keras / TensorFlow variable's) values on the host, for reading:
    no copy where the backend allows; bfloat16 and float8 included (``tensors.py``)."""
    from .tensors import host_view

    return host_view(tensor)


def _is_tf_dataset(value) -> bool:
    return _module_of(value).startswith("tensorflow") and hasattr(value, "_as_serialized_graph")


def _is_tf_function(value) -> bool:
    return _module_of(value).startswith("tensorflow") and hasattr(value, "python_function")


def _is_keras_callback(value) -> bool:
    keras = sys.modules.get("keras")
    return keras is not None and isinstance(value, keras.callbacks.Callback)


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


def _library_global(value) -> bool:
    """A callable a library exports under its own module and name."""
    module, name = getattr(value, "__module__", None), getattr(value, "__qualname__", None)
    if not (callable(value) and isinstance(module, str) and isinstance(name, str)) or not is_library_module(module):
        return False
    found = sys.modules.get(module)
    for part in name.split("."):
        found = getattr(found, part, None)
    return found is value


def _is_keras_distribution(value) -> bool:
    return _module_of(value).startswith("keras.src.distribution")


def _is_keras_object(value) -> bool:
    keras = sys.modules.get("keras")
    if keras is None or not _module_of(value).startswith("keras"):
        return False
    if isinstance(value, keras.layers.Layer):
        return True
    return hasattr(value, "get_config") and not isinstance(value, keras.callbacks.Callback)


def layer_config(layer) -> dict:
    """``get_config()``, or ``Unfingerprintable`` for a layer that has none."""
    try:
        return layer.get_config()
    except NotImplementedError as error:
        raise Unfingerprintable(f"layer {layer.name} ({type(layer).__name__}) has no get_config()") from error


def without_layer_names(config):
    """``config`` with every layer's name replaced by its position among them: rebuilding
    a model renames ``dense`` to ``dense_3`` without changing what it computes."""
    names = {}

    def collect(node):
        if isinstance(node, dict):
            inner = node.get("config")
            if "class_name" in node and isinstance(inner, dict) and isinstance(inner.get("name"), str):
                names.setdefault(inner["name"], f"layer{len(names)}")
            for value in node.values():
                collect(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                collect(value)

    def rename(node):
        if isinstance(node, dict):
            return {key: rename(value) for key, value in node.items()}
        if isinstance(node, (list, tuple)):
            return type(node)(rename(value) for value in node)
        if isinstance(node, str):
            return names.get(node, node)
        return node

    if isinstance(config, dict) and isinstance(config.get("name"), str):
        config = dict(config, name="model")
    collect(config)
    return rename(config)


def _is_consumable(value) -> bool:
    """Data a fit reads piece by piece: a Keras PyDataset or a PyTorch DataLoader."""
    keras = sys.modules.get("keras")
    if keras is not None and isinstance(value, keras.utils.PyDataset):
        return True
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.utils.data.DataLoader)


def _has_c_base(kind: type) -> bool:
    heap = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class written in Python
    return any(not base.__flags__ & heap for base in kind.__mro__ if base is not object)


def _c_state(value):
    """The state of the C-backed objects whose state matters and can be read."""
    import random

    if isinstance(value, random.Random):
        return value.getstate()
    if isinstance(value, np.random.RandomState):
        return value.get_state(legacy=False)
    if isinstance(value, np.random.Generator):
        return value.bit_generator.state
    if isinstance(value, np.dtype):
        return value.str
    return None


def _global_names(code: types.CodeType) -> set:
    names = set(code.co_names)
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            names |= _global_names(constant)
    return names


# -- tf.data ----------------------------------------------------------------------
#: Dataset ops that read something the graph does not hold: Python code, files, caches on disk.
_OUTSIDE_OPS = ("PyFunc", "GeneratorDataset", "TextLine", "TFRecord", "FixedLengthRecord", "ReadFile",
                "MatchingFiles", "CSVDataset", "SqlDataset", "LMDB", "LoadDataset", "SnapshotDataset",
                "WriteFile")


def _outside_source(graph) -> Optional[str]:
    """The first op that makes the dataset depend on more than its graph, or None."""
    nodes = list(graph.node) + [node for function in graph.library.function for node in function.node_def]
    constants = {node.name: node for node in graph.node if node.op == "Const"}
    for node in nodes:
        if any(part in node.op for part in _OUTSIDE_OPS):
            return node.op
        if node.op.startswith("CacheDataset"):
            filename = constants.get(node.input[1].split(":")[0]) if len(node.input) > 1 else None
            if filename is None or filename.attr["value"].tensor.string_val != [b""]:
                return "CacheDataset (a cache on disk)"
    return None


def dataset_graph_bytes(dataset) -> bytes:
    """The dataset's graph, canonical: data constants and shuffle seeds included;
    per-process counters (function names, metadata ids, resource names) replaced.

    Raises ``Unfingerprintable(consumable=True)`` for a pipeline that reads what its
    graph does not hold (a Python generator, files): those are fingerprinted batch by
    batch as the fit reads them.
    """
    import tensorflow as tf

    graph = tf.compat.v1.GraphDef.FromString(dataset._as_serialized_graph().numpy())
    source = _outside_source(graph)
    if source is not None:
        raise Unfingerprintable(f"is a tf.data pipeline that reads outside its graph ({source})",
                                consumable=True)
    names = _canonical_function_names(graph)
    for node in list(graph.node) + [n for f in graph.library.function for n in f.node_def]:
        if "metadata" in node.attr:
            del node.attr["metadata"]
        if node.op in names:
            node.op = names[node.op]
        for attribute in node.attr.values():
            _rename_functions(attribute, names)
        if node.op == "Const" and node.attr["dtype"].type == tf.resource.as_datatype_enum:
            for handle in node.attr["value"].tensor.resource_handle_val:
                handle.name = ""
                handle.container = ""
    for function in graph.library.function:
        function.signature.name = names.get(function.signature.name, function.signature.name)
    functions = sorted(graph.library.function, key=lambda f: f.signature.name)
    del graph.library.function[:]
    graph.library.function.extend(functions)
    return graph.SerializeToString(deterministic=True)


def _canonical_function_names(graph) -> dict:
    """``__inference_Dataset_map_lambda_8`` -> ``f0``...: numbered by first use, so the
    same pipeline built twice (or in another process) gets the same names."""
    library = {function.signature.name: function for function in graph.library.function}
    names = {}

    def visit(nodes):
        for node in nodes:
            for name in [node.op] + [n for value in node.attr.values() for n in _function_refs(value)]:
                if name in library and name not in names:
                    names[name] = f"f{len(names)}"
                    visit(library[name].node_def)

    visit(graph.node)
    for name in sorted(library):  # unreachable ones, if any, last and in name order
        names.setdefault(name, f"f{len(names)}")
    return names


def _function_refs(value):
    if value.HasField("func"):
        yield value.func.name
    if value.HasField("list"):
        for function in value.list.func:
            yield function.name


def _rename_functions(value, names) -> None:
    if value.HasField("func") and value.func.name in names:
        value.func.name = names[value.func.name]
    if value.HasField("list"):
        for function in value.list.func:
            if function.name in names:
                function.name = names[function.name]
