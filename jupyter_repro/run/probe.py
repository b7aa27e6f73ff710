"""What a worker must have to give the notebook's bits: the same versions of the libraries
that compute them, and every package the cell and its values need.

``probe`` runs on both sides (in the kernel, and on each worker through ``Client.run``
before any trial starts, and again inside each trial); ``differences`` says in one line
what differs. A package that is not imported is read from its metadata, never imported:
probing must not start a framework in the kernel.
"""
from __future__ import annotations

import importlib.util
import platform
import sys
from importlib import metadata
from typing import Dict, Iterable

#: whose versions must be equal: they compute the bits (or, jupyter_repro, fingerprint them)
CORE = ("python", "numpy", "keras", "tensorflow", "jax", "jaxlib", "torch", "ml_dtypes", "jupyter_repro",
        "cloudpickle")
_DISTRIBUTIONS = {"tensorflow": ("tensorflow", "tensorflow-cpu"), "jupyter_repro": ("jupyter-repro", "jupyter_repro"),
                  "sklearn": ("scikit-learn",)}
MISSING = "not installed"


def probe(modules: Iterable[str] = ()) -> Dict[str, str]:
    """The version of each core library and of each module in ``modules`` here (``MISSING``)."""
    found = {"python": platform.python_version()}
    for name in [*CORE[1:], *modules]:
        found[name] = version(name)
    return found


def version(name: str) -> str:
    module = sys.modules.get(name)
    if module is not None and isinstance(getattr(module, "__version__", None), str):
        return module.__version__
    for distribution in _DISTRIBUTIONS.get(name, (name,)):
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    return "installed (no version)" if spec is not None else MISSING


def differences(notebook: Dict[str, str], worker: Dict[str, str]) -> str:
    """``"keras 3.14.0 (notebook 3.15.1); missing helpers"``, or "" when equal."""
    missing = [name for name, wanted in notebook.items() if worker.get(name) == MISSING and wanted != MISSING]
    other = [f"{name} {worker.get(name, '?')} (notebook {wanted})" for name, wanted in notebook.items()
             if name not in missing and worker.get(name, wanted) != wanted]
    parts = other + ([f"missing {', '.join(missing)}"] if missing else [])
    return "; ".join(parts)
