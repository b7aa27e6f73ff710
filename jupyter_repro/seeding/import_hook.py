"""Run a callback the moment a module finishes importing.

Seeding at kernel start must not import TensorFlow (that costs seconds and would
happen before the user chose a backend), yet TensorFlow's seed must be set before
the user's first random op. So the seeder arms this hook: a ``sys.meta_path`` finder
that, for the watched top-level names only, wraps the real loader and calls back right
after the module body ran. The wrapper hands the module its real loader back before
executing it, so nothing downstream ever sees ours.
"""
from __future__ import annotations

import importlib.abc
import sys
from typing import Callable, Dict


class _NotifyingLoader(importlib.abc.Loader):
    def __init__(self, loader, callback):
        self._loader = loader
        self._callback = callback

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        module.__spec__.loader = self._loader
        module.__loader__ = self._loader
        self._loader.exec_module(module)
        self._callback(module)


class ImportHook(importlib.abc.MetaPathFinder):
    """Calls ``callbacks[name](module)`` once ``import name`` has finished.

    Only top-level module names are watched; a name already in ``sys.modules``
    never fires (the caller handles that case directly).
    """

    def __init__(self, callbacks: Dict[str, Callable]):
        self.callbacks = dict(callbacks)
        self._searching = set()  # names this hook is finding: another hook asks it back

    def install(self) -> "ImportHook":
        if self not in sys.meta_path:
            sys.meta_path.insert(0, self)
        return self

    def remove(self) -> None:
        while self in sys.meta_path:
            sys.meta_path.remove(self)

    @property
    def installed(self) -> bool:
        return self in sys.meta_path

    def find_spec(self, fullname, path=None, target=None):
        callback = self.callbacks.get(fullname)
        if callback is None or fullname in self._searching:
            return None
        self._searching.add(fullname)  # two hooks watching one name wrap each other's loader, once
        try:
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                        spec.loader = _NotifyingLoader(spec.loader, callback)
                    return spec
            return None
        finally:
            self._searching.discard(fullname)
