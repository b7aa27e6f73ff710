"""What a result depends on besides its inputs: versions, devices, determinism flags.

Recorded with every run, so that when the same inputs give a different result the
verdict can name what changed (a library version, a device, a flag). Reading it never
imports a framework: versions of ones not imported come from package metadata.
"""
from __future__ import annotations

import functools
import os
import platform
import sys
from html import escape
from importlib import metadata
from typing import Dict, List, Tuple

from .. import __name__ as _package
from . import arithmetic
from ..model import distribution
from ..seeding.frameworks import jax_initialised
from ..seeding.seeder import hash_seed_at_start


def _version(module_name: str, *distributions: str) -> str:
    module = sys.modules.get(module_name)
    if module is not None and getattr(module, "__version__", None):
        return module.__version__
    return _installed_version(distributions or (module_name,))


@functools.lru_cache(maxsize=None)
def _installed_version(distributions: Tuple[str, ...]) -> str:
    """A package not imported, from its metadata: read once per process (parsing it took
    3 ms per fit for torch), since what is not imported cannot change a result."""
    for distribution in distributions:
        try:
            return metadata.version(distribution) + " (not imported)"
        except metadata.PackageNotFoundError:
            continue
    return "not installed"


def _tensorflow_facts() -> Dict[str, str]:
    tf = sys.modules.get("tensorflow")
    if tf is None or not hasattr(tf, "config"):
        return {"devices": "unknown (TensorFlow not imported)", "op determinism": "unknown (TensorFlow not imported)"}
    from tensorflow.python.framework import config as tf_config

    build = tf.sysconfig.get_build_info()
    devices = [f"{d.device_type}:{d.name.rsplit(':', 1)[-1]}" for d in tf.config.list_physical_devices()]
    return {
        "cuda": str(build.get("cuda_version", "none")),
        "cudnn": str(build.get("cudnn_version", "none")),
        "devices": ", ".join(devices),
        "op determinism": "on" if tf_config.is_op_determinism_enabled() else "off",
    }


def collect() -> "Environment":
    """The facts for this process, now."""
    keras = sys.modules.get("keras")
    hash_seed = hash_seed_at_start()
    facts = {
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "cpus": str(os.cpu_count()),
        "numpy": _version("numpy"),
        "keras": _version("keras"),
        "keras backend": keras.backend.backend() if keras is not None else os.environ.get("KERAS_BACKEND", "tensorflow (default)"),
        "tensorflow": _version("tensorflow", "tensorflow", "tensorflow-cpu"),
        "cuda": "none",
        "cudnn": "none",
        "jax": _version("jax"),
        "jaxlib": _version("jaxlib"),
        "torch": _version("torch"),
        "TF_DETERMINISTIC_OPS": os.environ.get("TF_DETERMINISTIC_OPS", "unset"),
        "XLA_FLAGS": os.environ.get("XLA_FLAGS", "unset"),
        "CUBLAS_WORKSPACE_CONFIG": os.environ.get("CUBLAS_WORKSPACE_CONFIG", "unset"),
        "PYTHONHASHSEED": f"fixed at start ({hash_seed})" if hash_seed is not None else "random",
        "jupyter_repro": _version(_package, "jupyter-repro"),
    }
    facts.update(_tensorflow_facts())
    facts.update(_jax_facts())
    facts.update(_torch_facts())
    facts.update(distribution.summary())
    facts.update(arithmetic.facts())
    return Environment(facts)


def _jax_facts() -> Dict[str, str]:
    jax = sys.modules.get("jax")
    if jax is None or not hasattr(jax, "devices"):
        return {}
    if not jax_initialised():  # listing devices would start JAX's backend, and then
        return {"jax devices": "unknown (JAX not started yet)"}  # keras.distribution.initialize() fails
    return {"jax devices": ", ".join(f"{d.platform}:{d.id}" for d in jax.devices())}


def _torch_facts() -> Dict[str, str]:
    torch = sys.modules.get("torch")
    if torch is None or not hasattr(torch, "are_deterministic_algorithms_enabled"):
        return {}
    facts = {"torch deterministic algorithms": "on" if torch.are_deterministic_algorithms_enabled() else "off",
             "torch cuDNN benchmark": "on" if torch.backends.cudnn.benchmark else "off",
             "torch cuda": str(torch.version.cuda or "none")}
    if torch.cuda.is_available():
        facts["torch devices"] = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    return facts


#: The facts a saved fit carries with it (``%%repro_fit`` output metadata): enough to say
#: what changed when a later run on another machine or install gives other bytes.
SUMMARY = ("python", "platform", "cpus", "numpy", "keras", "keras backend", "tensorflow", "jax", "torch",
           "cuda", "cudnn", "devices", "jax devices", "torch devices", "op determinism", "XLA_FLAGS") + arithmetic.FACTS


#: facts a run recorded, or a notebook saved, by an earlier version may lack: absent on one
#: side is "not said", never a change
LATER_FACTS = frozenset(arithmetic.FACTS) | {"XLA_FLAGS"}


def summary(facts: Dict[str, str]) -> Dict[str, str]:
    """The short form of ``facts`` (those named in ``SUMMARY``) that travels with a notebook."""
    return {key: str(facts[key]) for key in SUMMARY if key in facts}


def explain(changes: List[Tuple[str, str, str]]) -> str:
    """``changes`` (name, now, before) as text; a change in the machine's arithmetic (CPU,
    instruction sets, dispatch, pins, threads) first, named as the likely cause of other bits."""
    def listed(items):
        return "; ".join(f"{name} {before} → {now}" for name, now, before in items)

    machine = [c for c in changes if c[0] in arithmetic.FACTS]
    rest = [c for c in changes if c[0] not in arithmetic.FACTS]
    if not machine:
        return "environment changed: " + listed(rest)
    text = "the machine's arithmetic changed (the likely cause): " + listed(machine)
    return text + ("; also changed: " + listed(rest) if rest else "")


class Environment(dict):
    """A flat name -> text mapping with a table display and a diff."""

    def diff(self, other: Dict[str, str]) -> List[Tuple[str, str, str]]:
        """(name, here, there) for every fact that differs; facts unknown on either side are skipped."""
        def plain(value):
            return str(value).replace(" (not imported)", "")

        def known_on_both(key):  # a run recorded (or a notebook saved) before a fact was kept did not say
            return key not in LATER_FACTS or (key in self and key in other)

        return [(key, self.get(key), other.get(key)) for key in sorted(set(self) | set(other))
                if plain(self.get(key)) != plain(other.get(key)) and known_on_both(key)
                and "unknown" not in f"{self.get(key)}{other.get(key)}"]

    def __str__(self) -> str:
        width = max(map(len, self))
        return "\n".join(f"{key:<{width}}  {value}" for key, value in self.items())

    def _repr_pretty_(self, printer, cycle):
        printer.text(str(self))

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><th style='text-align:left'>{escape(k)}</th><td style='text-align:left'>{escape(v)}</td></tr>"
                       for k, v in self.items())
        return f"<table>{rows}</table>"
