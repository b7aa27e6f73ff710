"""Code by what it computes: the user's functions and classes by bytecode, constants,
defaults, closures and the globals they read; library code by its qualified name (its
code is the environment's, whose versions are recorded apart).
"""
from __future__ import annotations

import functools
import os
import sys
import sysconfig
import types
from typing import Optional, Tuple

from ..errors import Unfingerprintable


@functools.lru_cache(maxsize=None)
def _library_roots() -> Tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    roots |= {p for p in sys.path if p.endswith(("site-packages", "dist-packages"))}
    return tuple(os.path.realpath(root) + os.sep for root in roots)


@functools.lru_cache(maxsize=4096)
def is_library_file(filename: Optional[str]) -> bool:
    """True for a file installed with Python or into site-packages (or built in)."""
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
    return is_library_file(getattr(module, "__file__", None))


def library_global(value) -> bool:
    """A callable a library exports under its own module and name."""
    module, name = getattr(value, "__module__", None), getattr(value, "__qualname__", None)
    if not (callable(value) and isinstance(module, str) and isinstance(name, str)) or not is_library_module(module):
        return False
    found = sys.modules.get(module)
    for part in name.split("."):
        found = getattr(found, part, None)
    return found is value


def _global_names(code: types.CodeType) -> set:
    names = set(code.co_names)
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            names |= _global_names(constant)
    return names


class CodeHashing:
    """``_Walker``'s modules, callables, functions, code objects and classes."""

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
            attribute = getattr(attribute, "__repro_original__", attribute)  # a compile the tool records: the user's
            if isinstance(attribute, (staticmethod, classmethod)):
                attribute = attribute.__func__
            elif isinstance(attribute, property):
                attribute = (attribute.fget, attribute.fset, attribute.fdel)
            self.put(f"attr:{name}=")
            self.feed(attribute)
