"""Seeding every random number generator a Keras notebook touches.

Two levels, matching the two promises of the package:

* the **session seed** (``Seeder.seed_everything``), set at kernel start before any
  import: Python ``random``, NumPy's global RNG, TensorFlow's global seed, Keras'
  global ``SeedGenerator``, and TensorFlow op determinism;
* a **per-cell reseed** (``Seeder.reseed_for_cell``): before each cell, every RNG is
  reseeded from ``(session seed, the cell's code)``, so a cell's random draws depend
  on its own code and the seed, never on which cells ran before it, nor on its comments
  or layout. Going back to an
  earlier preprocessing setting then redraws the same shuffle, split or
  ``tf.data.Dataset.shuffle`` order.

Libraries that are not imported yet (NumPy included: importing it costs ~40 ms) are
never imported here: an import hook seeds each the moment the user imports it. PYTHONHASHSEED cannot be changed in a
running process; ``hash_seed_at_start`` reports whether it was fixed when it started.
"""
from __future__ import annotations

import importlib.util
import numbers
import os
import random
import sys
from dataclasses import dataclass, field
from typing import Dict, Optional

import xxhash

from ..model.distribution import check_seed_allowed
from ..errors import SeedError
from . import frameworks
from .import_hook import ImportHook
from ..values.source import canonical_source

MAX_SEED = 2**32 - 1  # NumPy's legacy global RNG takes seeds below 2**32.


def validate_seed(seed) -> int:
    """``seed`` as an int, or ``SeedError`` if it is not a non-negative integer."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise SeedError(f"seed must be a non-negative integer, got {seed!r}; for example 42")
    if not 0 <= int(seed) <= MAX_SEED:
        raise SeedError(f"seed must be between 0 and {MAX_SEED}, got {seed}")
    return int(seed)


def cell_seed(seed: int, source: str) -> int:
    """The seed a cell runs under: a hash of the session seed and the cell's code as
    Python sees it, so a comment, a blank line or reformatting changes nothing, while a
    changed value does. (IPython's magics should be transformed to Python first.)
    """
    key = f"{seed}\x00{canonical_source(source)}".encode()
    return xxhash.xxh3_64_intdigest(key) & 0x7FFFFFFF


_PROC_ENVIRON = "/proc/self/environ"  # Linux: the environment exactly as the process started
#: Elsewhere (macOS, Windows), the earliest view this package has: the environment when it
#: was first imported, at kernel start when a kernelspec loads the extension.
_ENVIRON_AT_IMPORT = dict(os.environ)


def _initial_environ() -> Dict[str, str]:
    """The environment the process was started with (Linux), else as this module first saw it."""
    try:
        with open(_PROC_ENVIRON, "rb") as handle:
            raw = handle.read()
    except OSError:
        return dict(_ENVIRON_AT_IMPORT)
    pairs = (entry.split(b"=", 1) for entry in raw.split(b"\x00") if b"=" in entry)
    return {key.decode(errors="replace"): value.decode(errors="replace") for key, value in pairs}


def hash_seed_at_start() -> Optional[str]:
    """The PYTHONHASHSEED this interpreter started with, or None if ``hash()`` is random.

    Setting ``os.environ["PYTHONHASHSEED"]`` later does nothing to this process,
    so the process's initial environment is read, not the current one.
    """
    if not sys.flags.hash_randomization:
        return "0"
    value = _initial_environ().get("PYTHONHASHSEED", "")
    return value if value.isdigit() else None


_INSTALLED: Dict[str, bool] = {}


def _installed(name: str) -> bool:
    if name not in _INSTALLED:  # a path scan: once per process, not once per cell
        _INSTALLED[name] = name in sys.modules or importlib.util.find_spec(name) is not None
    return _INSTALLED[name]


@dataclass
class SeedReport:
    """What one call to ``seed_everything`` set, framework by framework."""

    seed: int
    deterministic: bool
    frameworks: Dict[str, str] = field(default_factory=dict)
    hash_seed: Optional[str] = None

    @property
    def hash_seed_note(self) -> str:
        if self.hash_seed is not None:
            return f"fixed at process start (PYTHONHASHSEED={self.hash_seed})"
        return ("random: cannot be fixed in a running process; start the kernel with "
                "PYTHONHASHSEED set (`jupyter-repro install-kernel` does this)")

    def rows(self):
        yield "seed", str(self.seed)
        yield from self.frameworks.items()
        yield "hash() seed", self.hash_seed_note

    def __str__(self) -> str:
        width = max(len(key) for key, _ in self.rows())
        return "\n".join(f"{key:<{width}}  {value}" for key, value in self.rows())

    def _repr_pretty_(self, printer, cycle):
        printer.text(str(self))

    def _repr_html_(self) -> str:
        from html import escape

        body = "".join(f"<tr><th style='text-align:left'>{escape(k)}</th><td style='text-align:left'>"
                       f"{escape(v)}</td></tr>" for k, v in self.rows())
        return f"<table>{body}</table>"


class Seeder:
    """Owns the session seed and applies it, now or at framework import.

    One per interpreter is enough; the extension keeps one, scripts can use
    ``seed_everything`` below.
    """

    def __init__(self):
        self.seed: Optional[int] = None
        self.deterministic = True
        self.reseed_cells = True
        self._current: Optional[int] = None  # the seed most recently applied
        self._paused = 0
        self._hook: Optional[ImportHook] = None

    # -- public API -------------------------------------------------------------
    def seed_everything(self, seed, deterministic: bool = True) -> SeedReport:
        """Set the session seed and apply it to every RNG, now or on import. Once a
        multi-process JAX run is initialised only the seed already in effect is accepted."""
        seed = validate_seed(seed)
        check_seed_allowed(seed, self.seed)
        self.seed, self.deterministic = seed, bool(deterministic)
        return self.reseed(seed)

    def reseed(self, seed: int) -> SeedReport:
        """Apply ``seed`` to every RNG without changing the session seed."""
        self._current = seed
        random.seed(seed)
        report = SeedReport(seed, self.deterministic, hash_seed=hash_seed_at_start())
        report.frameworks["python random"] = "seeded"
        report.frameworks.update(self._apply_frameworks(seed))
        return report

    def reseed_for_cell(self, source: str) -> Optional[int]:
        """Reseed from (session seed, cell text); None if not seeded, off or paused."""
        if self.seed is None or not self.reseed_cells or self._paused:
            return None
        seed = cell_seed(self.seed, source)
        self.reseed(seed)
        return seed

    def paused(self):
        """Context manager: no per-cell reseed inside (a fit cell reseeds itself)."""
        return _Pause(self)

    def close(self) -> None:
        """Remove the import hook and the stderr filter (``tf_messages.py``); seeds already
        applied stay applied."""
        from . import tf_messages

        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        tf_messages.restore()

    @property
    def hook_armed(self) -> bool:
        return self._hook is not None and self._hook.installed

    # -- frameworks -------------------------------------------------------------
    def _apply_frameworks(self, seed: int) -> Dict[str, str]:
        status = dict(frameworks.before_import(self.deterministic, _installed))
        pending = {}
        for name, apply in frameworks.SEEDERS:
            if name in sys.modules:
                status[name] = apply(sys.modules[name], seed, self.deterministic)
            elif _installed(name):
                pending[name] = self._on_import(apply)
                status[name] = "armed: seeded the moment it is imported"
            elif name in ("numpy", "tensorflow", "keras"):
                status[name] = "not installed"
        if pending:
            if self._hook is None:
                self._hook = ImportHook(pending).install()
            else:
                self._hook.callbacks.update(pending)
        return status

    def _on_import(self, apply):
        def callback(module):
            if self._current is not None:
                apply(module, self._current, self.deterministic)
        return callback


class _Pause:
    def __init__(self, seeder: Seeder):
        self.seeder = seeder

    def __enter__(self):
        self.seeder._paused += 1
        return self.seeder

    def __exit__(self, *exc):
        self.seeder._paused -= 1
        return False


_default = Seeder()


def seed_everything(seed, deterministic: bool = True) -> SeedReport:
    """Seed Python, NumPy, TensorFlow and Keras (now, or when first imported).

    For scripts; the IPython extension keeps its own ``Seeder``.
    """
    return _default.seed_everything(seed, deterministic)
