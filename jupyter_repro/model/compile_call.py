"""The call a model's own ``compile`` was made with, so that a fit can make it again.

A model class that defines ``compile`` (the GAN of keras.io's DCGAN example:
``compile(d_optimizer, g_optimizer, loss_fn)``, a Distiller's ``compile(optimizer,
metrics, student_loss_fn, ...)``) takes arguments that Keras's ``_compile_config`` does
not hold, and keeps its optimizers in attributes. Recompiling it with Keras's keywords
fails; recompiling it with its old optimizers would keep their steps and moments. Only
the call the notebook made says what the arguments were, so ``CompileWatch`` records it:
while installed, every ``keras.Model`` subclass of the user's (not a library's) that
defines ``compile`` has it wrapped, and each outermost call is kept, per model, weakly.
A fit replays that call with each optimizer among its arguments (positional, keyword, in
a list, tuple or dict) replaced by a new one of the same class and configuration
(``FreshCall``). A model whose call was not seen (its class was compiled before the
extension was loaded) is refused, before anything is touched, naming what to do.
"""
from __future__ import annotations

import copy
import functools
import inspect
import sys
import threading
import types
import weakref
from typing import Any, Dict, Iterator, List, Optional, Tuple

from ..errors import ModelError
from ..values.code import is_library_module

_ORIGINAL = "__repro_original__"


class _Fresh:
    """Stands for an optimizer in a recorded call: a new one of this class and config."""

    def __init__(self, optimizer):
        self.cls = type(optimizer)
        self.config = copy.deepcopy(optimizer.get_config())
        schedule = getattr(optimizer, "_learning_rate", None)
        keras = sys.modules["keras"]
        if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
            self.config["learning_rate"] = schedule  # the object: a pure function of the step

    def make(self):
        return self.cls.from_config(copy.copy(self.config))

    def settings(self) -> Dict[str, Any]:
        return {"optimizer": self.cls, "config": {k: v for k, v in self.config.items() if k != "name"}}


def _template(value, depth: int = 0):
    """``value`` with every optimizer in it replaced by a ``_Fresh``; containers copied."""
    keras = sys.modules["keras"]
    if isinstance(value, keras.optimizers.Optimizer):
        return _Fresh(value)
    if depth < 4 and isinstance(value, (list, tuple)):
        return type(value)(_template(v, depth + 1) for v in value) if type(value) in (list, tuple) else value
    if depth < 4 and type(value) is dict:
        return {k: _template(v, depth + 1) for k, v in value.items()}
    return value


def _materialize(value):
    if isinstance(value, _Fresh):
        return value.make()
    if type(value) in (list, tuple):
        return type(value)(_materialize(v) for v in value)
    if type(value) is dict:
        return {k: _materialize(v) for k, v in value.items()}
    return value


def _settings(value):
    """The template as fingerprintable values: optimizers by class and configuration."""
    if isinstance(value, _Fresh):
        return value.settings()
    if type(value) in (list, tuple):
        return [_settings(v) for v in value]
    if type(value) is dict:
        return {k: _settings(v) for k, v in value.items()}
    return value


class FreshCall:
    """A recorded ``compile`` call, to be made again with new optimizers."""

    def __init__(self, model, args: tuple, kwargs: dict):
        self.cls = type(model)
        self.args = _template(args)
        self.kwargs = _template(kwargs)
        self.named = {name: _template(value) for name, value in _by_parameter(self.cls, model, args, kwargs).items()}
        #: ``id`` of each optimizer the call passed: replaced by the replay, the others the model holds are not
        self.ids = frozenset(id(o) for o in _optimizers_in((args, kwargs)))

    def make(self, model) -> None:
        """Compile ``model`` again with this call's arguments, each optimizer a new one
        (all made before ``compile`` runs: one that fails leaves the model as it was)."""
        args, kwargs = _materialize(self.args), _materialize(self.kwargs)
        model.compile(*args, **kwargs)

    def arguments(self) -> Dict[str, Any]:
        """Every argument by its parameter's name (``d_optimizer``...), as settings."""
        return {name: _settings(value) for name, value in self.named.items()}

    def optimizers(self) -> Dict[str, str]:
        """``{"d_optimizer": "Adam", ...}``: the optimizers the call passes, by argument."""
        found = {}
        for name, value in self.arguments().items():
            for path, settings in _optimizer_settings(name, value):
                found[path] = settings["optimizer"].__name__
        return found


def _by_parameter(cls, model, args: tuple, kwargs: dict) -> Dict[str, Any]:
    """The call's values by parameter name, in the signature's order (keywords given in
    another order are the same call); ``*args`` as ``name[i]``, ``**kwargs`` by key."""
    try:
        signature = inspect.signature(_original(cls.compile))
        bound = signature.bind(model, *args, **kwargs)
    except (TypeError, ValueError):  # no signature to read: by position, then by keyword
        return {**{f"arg{i}": v for i, v in enumerate(args)}, **dict(sorted(kwargs.items()))}
    named = {}
    for name, value in list(bound.arguments.items())[1:]:  # the first is the model itself
        kind = signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            named.update(sorted(value.items()))
        elif kind is inspect.Parameter.VAR_POSITIONAL:
            named.update((f"{name}[{i}]", v) for i, v in enumerate(value))
        else:
            named[name] = value
    return named


def _optimizers_in(value, depth: int = 0) -> Iterator[Any]:
    keras = sys.modules["keras"]
    if isinstance(value, keras.optimizers.Optimizer):
        yield value
    elif depth < 4 and isinstance(value, (list, tuple)):
        for item in value:
            yield from _optimizers_in(item, depth + 1)
    elif depth < 4 and isinstance(value, dict):
        for item in value.values():
            yield from _optimizers_in(item, depth + 1)


def _optimizer_settings(path: str, value) -> Iterator[Tuple[str, dict]]:
    if isinstance(value, dict) and "optimizer" in value and "config" in value and isinstance(value["optimizer"], type):
        yield path, value
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _optimizer_settings(f"{path}[{i}]", item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _optimizer_settings(f"{path}[{key!r}]", item)


def _original(function):
    return getattr(function, _ORIGINAL, function)


def overrides_compile(model) -> bool:
    """True when ``model``'s class (or a user's class it derives from) defines ``compile``:
    Keras's keywords are not its parameters."""
    keras = sys.modules["keras"]
    for cls in type(model).__mro__:
        if cls is keras.Model:
            return False
        if "compile" in cls.__dict__ and not is_library_module(cls.__module__):
            return True
    return False


def stale_optimizers(model) -> List[str]:
    """The attributes of ``model`` holding an optimizer that has taken steps: after a replayed
    ``compile`` there should be none (each should be new)."""
    keras = sys.modules["keras"]
    found = []
    for name, value in _attributes(model):
        if isinstance(value, keras.optimizers.Optimizer) and value.built and int(value.iterations.numpy()) > 0:
            found.append(f"{name} ({type(value).__name__}, {int(value.iterations.numpy())} steps)")
    return found


def kept_trained(model, call: Optional["FreshCall"]) -> List[str]:
    """The attributes holding a trained optimizer that neither the replayed ``call`` nor
    Keras's own ``compile`` replaces: checked before compiling, so that nothing is touched."""
    keras = sys.modules["keras"]
    replaced = set(call.ids) if call is not None else set()
    replaced.add(id(getattr(model, "optimizer", None)))
    return [f"{name} ({type(value).__name__}, {int(value.iterations.numpy())} steps)"
            for name, value in _attributes(model)
            if isinstance(value, keras.optimizers.Optimizer) and id(value) not in replaced
            and value.built and int(value.iterations.numpy()) > 0]


def extra_optimizers(model) -> Dict[str, Any]:
    """The optimizers ``model`` holds beside ``model.optimizer`` (a custom ``train_step``'s
    ``self.aux``), by attribute; ``ModelError`` for one in a list or dict, which Keras's
    ``compile`` could not be given back a new one of."""
    keras = sys.modules["keras"]
    main = getattr(model, "optimizer", None)
    found = {}
    for name, value in _attributes(model):
        if isinstance(value, keras.optimizers.Optimizer) and value is not main and name != "optimizer":
            if "[" in name:
                raise ModelError(f"{type(model).__name__}.{name} holds an optimizer that compile does not replace: "
                                 "keep it in an attribute of its own, or pass it to a compile of your own")
            found[name] = value
    return found


def held_ids(model) -> frozenset:
    keras = sys.modules["keras"]
    return frozenset(id(v) for _, v in _attributes(model) if isinstance(v, keras.optimizers.Optimizer))


def held_optimizers(model) -> Dict[str, Any]:
    """Every optimizer ``model`` holds in its attributes (and lists or dicts there), by
    class and configuration: all of them are compile settings."""
    keras = sys.modules["keras"]
    return {name: _Fresh(value).settings() for name, value in _attributes(model)
            if isinstance(value, keras.optimizers.Optimizer)}


def _attributes(model) -> Iterator[Tuple[str, Any]]:
    for name, value in sorted(vars(model).items()):
        if name.startswith(("__", "_self_")):  # TensorFlow's trackable bookkeeping repeats the attributes
            continue
        yield name, value
        if isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                yield f"{name}[{i}]", item
        elif isinstance(value, dict):
            for key, item in value.items():
                yield f"{name}[{key!r}]", item


class _Recorded:
    """A user's ``compile``, recording each outermost call. A descriptor at module level
    rather than a closure, so a class holding it still pickles (cloudpickle ships
    notebook classes by value to cluster workers)."""

    def __init__(self, function):
        functools.update_wrapper(self, function)
        setattr(self, _ORIGINAL, function)

    def __get__(self, model, owner=None):
        return self if model is None else types.MethodType(self, model)  # inspect.signature reads the user's

    def __call__(self, model, *args, **kwargs):  # GAN.compile(gan, ...)
        return _record(getattr(self, _ORIGINAL), model, *args, **kwargs)


_DEPTH = threading.local()


def _record(function, model, *args, **kwargs):
    depth = getattr(_DEPTH, "value", 0)
    _DEPTH.value = depth + 1
    try:
        result = function(model, *args, **kwargs)
    finally:
        _DEPTH.value = depth
    if depth == 0:  # the notebook's call, not a super().compile() inside it
        WATCH.calls[id(model)] = (_weak(model), FreshCall(model, args, kwargs))
    return result


class CompileWatch:
    """Records the calls to user-defined ``compile`` methods of Keras models. ``install``
    wraps the classes defined so far and, through ``keras.Model.__init_subclass__``, those
    defined later; ``remove`` puts every one back."""

    def __init__(self):
        self.calls: Dict[int, Tuple[Any, FreshCall]] = {}
        self.wrapped: List[type] = []
        self._model = None

    def install(self, keras) -> "CompileWatch":
        if self._model is not None:
            return self
        self._model = keras.Model
        self._model.__init_subclass__ = classmethod(_init_subclass)
        for cls in _subclasses(keras.Model):
            self.wrap(cls)
        return self

    def remove(self) -> None:
        if self._model is not None and "__init_subclass__" in self._model.__dict__:
            del self._model.__init_subclass__
        self._model = None
        self.calls.clear()  # a compile made while unwatched must not replay an older call
        for cls in self.wrapped:
            function = cls.__dict__.get("compile")
            if isinstance(function, _Recorded):
                cls.compile = getattr(function, _ORIGINAL)
        self.wrapped.clear()

    def wrap(self, cls) -> None:
        function = cls.__dict__.get("compile")
        if function is None or isinstance(function, _Recorded) or is_library_module(cls.__module__):
            return
        cls.compile = _Recorded(function)
        self.wrapped.append(cls)

    def recorded(self, model) -> Optional[FreshCall]:
        """The last call of ``model``'s own ``compile``, or None if it was not seen."""
        known = self.calls.get(id(model))
        return known[1] if known is not None and known[0]() is model else None


def _init_subclass(cls, **kwargs):
    """``keras.Model.__init_subclass__`` while the watch is installed."""
    super(WATCH._model, cls).__init_subclass__(**kwargs)
    WATCH.wrap(cls)


def _subclasses(cls) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _weak(obj):
    try:
        return weakref.ref(obj)
    except TypeError:
        return lambda: obj


#: The one watch of this interpreter (``keras.Model`` is one class): installed by the
#: extension's load (or ``watch_compile()`` from a script), removed by its unload.
WATCH = CompileWatch()


def watch_compile() -> CompileWatch:
    """Record user-defined ``compile`` calls from now on (a script calls it before it
    defines its model classes; the extension does at load, or when Keras is imported)."""
    import keras

    return WATCH.install(keras)


def recorded_call(model) -> FreshCall:
    """The call to replay for ``model``, whose class defines ``compile``; ``ModelError``
    if it was not seen."""
    call = WATCH.recorded(model)
    if call is None:
        name = type(model).__name__
        raise ModelError(f"{name} defines its own compile(), and jupyter-repro did not see the call that "
                         f"compiled this model (it replays it with fresh optimizers): load the extension "
                         f"first, then run the cell that calls compile again")
    return call
