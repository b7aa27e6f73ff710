"""Other objects by their class and attributes; one whose state lives in C only where a
public accessor gives that state (NumPy and ``random`` generators); anything else is
``Unfingerprintable``, with its kind named.
"""
from __future__ import annotations

import types

import numpy as np

from ..errors import Unfingerprintable
from .code import is_library_module
from .keras_values import configured_attributes, is_keras_callback


def kind_of(value) -> str:
    """"generator", "list_iterator", "keras PyDataset", "MyDataset" (the user's class)."""
    kind = type(value)
    if isinstance(value, types.GeneratorType):
        return "generator"
    if kind.__module__ in ("builtins", "__main__") or not is_library_module(kind.__module__):
        return kind.__qualname__
    return f"{kind.__module__.split('.')[0]} {kind.__qualname__}"


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


class ObjectHashing:
    """``_Walker``'s last resort: an object by class and attributes."""

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
            raise Unfingerprintable(f"is a {kind_of(value)}, whose content cannot be read")
        self.feed(kind)
        attributes = dict(getattr(value, "__dict__", {}))
        for slot in getattr(kind, "__slots__", ()):
            if hasattr(value, slot):
                attributes[slot] = getattr(value, slot)
        if is_keras_callback(value):
            attributes = configured_attributes(value, attributes)
        self.feed(attributes)
