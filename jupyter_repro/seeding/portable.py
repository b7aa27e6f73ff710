"""The portable mode: pins that make TensorFlow, JAX and NumPy compute the same bits on every
x86-64 CPU with AVX (the floor: Intel Sandy Bridge, AMD Bulldozer and later).

Each math library picks its code by the CPU it finds: oneDNN's sgemm (which TensorFlow's
matmul calls, oneDNN options on or off) AVX-512, AVX2 or AVX kernels; OpenBLAS a core type;
NumPy's ufuncs a SIMD target; glibc's ``exp``/``log``/``tanh``... an FMA variant. Each pin
below holds that choice at what the floor has, so a CPU above it computes what the floor
computes. Measured (see docs/reproducing-across-machines.md): with them, a seeded Keras
fit on TensorFlow or on JAX, and a data cell of NumPy math, give the same bits natively on
an AVX-512 Xeon and under ``qemu-x86_64 -cpu SandyBridge`` and ``-cpu Haswell``; per layer
family, optimizer and dtype policy, ``COVERAGE`` names what was measured to hold (an AVX-512
AMD EPYC against the same emulated CPUs: docs/portable-coverage.md), and what was withdrawn, why.

A second floor, x86-64-v3 (``--portable avx2``: AVX2 and FMA, Haswell, Zen and later), holds
the same libraries one level up (``AVX2_PINS``): for a fleet without pre-2013 CPUs. Measured:
a seeded MLP and Conv1D fit, on TensorFlow and on JAX, give the same bits with its pins on an
AVX-512 EPYC and under ``qemu-x86_64 -cpu Haswell``; not the AVX floor's bits (the floor is part of what a
run depends on: its pins are in the environment's facts).

Where each pin takes effect, and so when it is too late:

* ``GLIBC_TUNABLES``: read by the dynamic loader when the process starts: only a
  kernelspec's ``env`` (``jupyter-repro install-kernel --portable``) can set it;
* ``NPY_DISABLE_CPU_FEATURES``, ``OPENBLAS_CORETYPE``: read when NumPy (and the OpenBLAS
  it carries) loads: too late once NumPy is imported;
* ``ONEDNN_MAX_CPU_ISA``: read when oneDNN first dispatches; held too late here once
  TensorFlow, PyTorch or JAX is imported (the earliest moment this package can vouch for).
  JAX needs it too: with YNNPACK's dots off, XLA's dots went through a oneDNN sgemm whose bits
  the cap changed (measured);
* ``TF_ENABLE_ONEDNN_OPTS=0``: TensorFlow turns its oneDNN operations on by itself on CPUs
  with AVX512_VNNI, AVX512_BF16 or AMX, and off elsewhere; on (measured, AVX-512 Xeon) its
  ``MatMul(transpose_a=True)`` with 128 or more rows took a path the ISA cap does not hold.
  Read when TensorFlow is imported.

JAX (``KERAS_BACKEND=jax``) adds ``XLA_PINS`` to ``XLA_FLAGS`` (after the user's own flags,
never replacing them): ``--xla_cpu_max_isa=AVX`` caps the code XLA generates;
``--xla_cpu_experimental_ynn_fusion_type=`` (an empty list) keeps dots out of YNNPACK, whose
kernels pick FMA or AVX-512 by the CPU whatever the cap; ``--xla_cpu_enable_platform_dependent_math=false``
keeps XLA's own approximations (``rsqrt``...) off. Read when JAX creates its backend: too late
once it has (``frameworks.jax_initialised``).

Not covered, and never claimed: the PyTorch backend (``torch.sqrt``, which Adam uses, goes
through MKL's vector math, whose bits differed between this Xeon and an emulated Sandy Bridge
with every pin and branch setting tried: see the docs), CPUs other than x86-64, and GPUs.
"""
from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, MutableMapping, NamedTuple, Optional, Tuple

from ..errors import ReproError
from .frameworks import jax_initialised
from .seeder import _initial_environ

#: NumPy's dispatch targets above its x86-64 baseline, under the names of NumPy 1.x and 2.x
#: (a name a version does not know is ignored by it)
NUMPY_ABOVE_FLOOR = ("AVX AVX2 FMA3 F16C AVX512F AVX512CD AVX512_KNL AVX512_KNM AVX512_SKX AVX512_CLX AVX512_CNL "
                     "AVX512_ICL AVX512_SPR X86_V3 X86_V4")

#: the pins, in the order they are listed
PINS: Dict[str, str] = {
    "ONEDNN_MAX_CPU_ISA": "AVX",
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "OPENBLAS_CORETYPE": "Sandybridge",
    "NPY_DISABLE_CPU_FEATURES": NUMPY_ABOVE_FLOOR,
    "GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX2,-FMA,-FMA4",
}

FLOOR = "x86-64 with AVX (Intel Sandy Bridge, AMD Bulldozer or later)"

#: JAX's pins: entries of ``XLA_FLAGS``, added after the user's own (see the module docstring)
XLA_PINS = ("--xla_cpu_max_isa=AVX", "--xla_cpu_experimental_ynn_fusion_type=",
            "--xla_cpu_enable_platform_dependent_math=false")
#: the backends the mode covers, and the floor each was measured to hold at (see the docs)
FLOORS = {"tensorflow": FLOOR, "jax": FLOOR}

#: The x86-64-v3 floor (``--portable avx2``): the same pins one level up, for a fleet whose
#: CPUs all have AVX2 and FMA. Each measured on an AVX-512 EPYC (docs/reproducing-across-machines.md):
#: oneDNN's AVX2 kernels, OpenBLAS's Haswell core, NumPy's X86_V3 loops, glibc's FMA libm
#: (chosen there whenever AVX2 and FMA are), with every AVX-512 path turned off.
NUMPY_ABOVE_AVX2 = ("AVX512F AVX512CD AVX512_KNL AVX512_KNM AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL "
                    "AVX512_SPR X86_V4")
AVX2_PINS: Dict[str, str] = {
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "OPENBLAS_CORETYPE": "Haswell",
    "NPY_DISABLE_CPU_FEATURES": NUMPY_ABOVE_AVX2,
    "GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX512F,-AVX512VL,-AVX512BW,-AVX512DQ,-AVX512CD",
}
AVX2_FLOOR = "x86-64-v3: AVX2 and FMA (Intel Haswell, AMD Zen or later)"
AVX2_XLA_PINS = ("--xla_cpu_max_isa=AVX2",) + XLA_PINS[1:]


class Floor(NamedTuple):
    """One floor of the mode: the CPUs it covers, and the pins that hold every library at it."""

    name: str
    description: str
    pins: Dict[str, str]
    xla_pins: Tuple[str, ...]


#: the floors ``--portable [FLOOR]`` offers; ``avx`` when none is named (the mode's first floor)
FLOOR_PINS: Dict[str, Floor] = {"avx": Floor("avx", FLOOR, PINS, XLA_PINS),
                                "avx2": Floor("avx2", AVX2_FLOOR, AVX2_PINS, AVX2_XLA_PINS)}
DEFAULT_FLOOR = "avx"


class UnknownFloor(ReproError):
    """A floor the mode does not offer."""


def floor(name: Optional[str] = None) -> Floor:
    """The floor called ``name`` (``None``, ``""``: the default)."""
    try:
        return FLOOR_PINS[(name or DEFAULT_FLOOR).lower()]
    except KeyError:
        raise UnknownFloor(f"no portable floor {name!r}: the floors are {', '.join(FLOOR_PINS)} "
                           f"(no name: {DEFAULT_FLOOR})") from None


#: the modules whose loading reads each pin (a pin set after one of them is too late)
_READ_BY = {"ONEDNN_MAX_CPU_ISA": ("tensorflow", "torch", "jax"), "TF_ENABLE_ONEDNN_OPTS": ("tensorflow",), "OPENBLAS_CORETYPE": ("numpy",),
            "NPY_DISABLE_CPU_FEATURES": ("numpy",)}
#: backends the mode does not make portable, and why (measured; see the docs)
NOT_COVERED = {
    "torch": "PyTorch: torch.sqrt (Adam uses it) goes through MKL's vector math, whose bits differed between this "
             "Xeon and an emulated Sandy Bridge with every pin, ATEN_CPU_CAPABILITY=default and MKL_CBWR "
             "AVX or COMPATIBLE (all else agreed through the first gradient)",
}

#: the Keras layers of each family ``benchmarks/probe_families.py`` measures
FAMILY_LAYERS = {
    "dense": ("Dense",), "conv1d": ("Conv1D",), "conv2d": ("Conv2D",),
    "pooling": ("MaxPooling1D", "AveragePooling1D", "GlobalAveragePooling1D"),
    "batchnorm": ("BatchNormalization",), "layernorm": ("LayerNormalization",), "embedding": ("Embedding",),
    "lstm": ("LSTM",), "gru": ("GRU",), "attention": ("MultiHeadAttention",), "dropout": ("Dropout",),
    "preprocessing": ("Normalization", "Rescaling"),
}
#: layers that move or reshape values without arithmetic of their own: never a gap
NEUTRAL_LAYERS = frozenset({"InputLayer", "Flatten", "Reshape", "Permute", "RepeatVector", "Identity"})
#: the optimizers' class names the probe measures (SGD with momentum 0.9)
OPTIMIZER_NAMES = {"adam": "Adam", "adamw": "AdamW", "sgd_momentum": "SGD", "rmsprop": "RMSprop"}


@dataclass(frozen=True)
class Coverage:
    """What the mode was measured to hold on one backend: every stage of a small seeded fit
    (initial weights, forward, gradients, step 1, final) gave the same bytes natively and under
    each emulated CPU (docs/portable-coverage.md, generated from the probe's evidence)."""

    families: Tuple[str, ...]
    optimizers: Tuple[str, ...]
    policies: Tuple[str, ...]
    #: family (or optimizer, policy) -> why it is not covered: the op and the stage that differed
    withdrawn: Dict[str, str] = field(default_factory=dict)
    #: a caveat the evidence carries (what emulation cannot vouch for)
    caveats: Dict[str, str] = field(default_factory=dict)

    def gaps(self, layers, optimizer: str = "", policy: str = "") -> List[str]:
        """What of a model (its layers' class names, its optimizer's, its dtype policy's name) the
        claim does not cover, each with why."""
        families = {layer: family for family, names in FAMILY_LAYERS.items() for layer in names}
        optimizers = {name: key for key, name in OPTIMIZER_NAMES.items()}
        found = []
        for name in dict.fromkeys(layers):
            family = families.get(name)
            if name in NEUTRAL_LAYERS or family in self.families:
                continue
            found.append(f"{name} ({self.withdrawn.get(family, 'not measured')})")
        if optimizer and optimizers.get(optimizer) not in self.optimizers:
            found.append(f"optimizer {optimizer} ({self.withdrawn.get(optimizers.get(optimizer), 'not measured')})")
        if policy and policy not in self.policies:
            found.append(f"dtype policy {policy} ({self.withdrawn.get(policy, 'not measured')})")
        return found

    def __str__(self) -> str:
        names = [layer for family in self.families for layer in FAMILY_LAYERS[family]]
        caveats = [layer for family in self.caveats for layer in FAMILY_LAYERS[family]]
        return (f"covers (measured): {', '.join(names)}; optimizers "
                f"{', '.join(OPTIMIZER_NAMES[o] for o in self.optimizers)}; {', '.join(self.policies)}"
                + (f" ({', '.join(caveats)}: their rsqrt is vouched for by real CPUs only, "
                   "see docs/portable-coverage.md)" if caveats else ""))


#: the claim, per backend: exactly what the evidence shows (tests/test_portable_coverage.py checks it against
#: benchmarks/results/portable_coverage.json)
_RSQRT = ("TensorFlow's rsqrt is the CPU's rsqrtps estimate refined by a Newton step (not correctly rounded: "
          "measured), so its bits follow each CPU's rsqrtps table, and no pin selects another path")
COVERAGE = {
    "tensorflow": Coverage(
        families=("dense", "conv1d", "conv2d", "pooling", "embedding", "lstm", "gru", "dropout", "preprocessing"),
        optimizers=("adam", "adamw", "sgd_momentum"), policies=("float32", "mixed_bfloat16"),
        withdrawn={"batchnorm": f"not covered on TensorFlow: the gradients differed under an emulated Sandy Bridge; "
                                f"{_RSQRT}",
                   "layernorm": f"not covered on TensorFlow: the forward output differed under an emulated Sandy "
                                f"Bridge; {_RSQRT}",
                   "attention": "not covered on TensorFlow: the forward output differed under an emulated Sandy "
                                "Bridge in float32 (the op was not isolated)",
                   "rmsprop": "not covered on TensorFlow: the weights after its first update differed under an "
                              "emulated Sandy Bridge (the op was not isolated)"}),
    "jax": Coverage(
        families=("dense", "conv1d", "conv2d", "pooling", "batchnorm", "layernorm", "embedding", "lstm", "gru",
                  "attention", "dropout", "preprocessing"),
        optimizers=("adam", "adamw", "sgd_momentum", "rmsprop"), policies=("float32",),
        withdrawn={"mixed_bfloat16": "not measured under emulation on JAX (time: its emulated compiles take minutes "
                                     "a model)"},
        caveats={"batchnorm": "its rsqrt: under the mode XLA computes it without the CPU's rsqrtps estimate "
                              "(--xla_cpu_enable_platform_dependent_math=false), but qemu computes rsqrtps exactly, "
                              "so emulation alone cannot vouch for it: a second real CPU (CI) does",
                 "layernorm": "as BatchNormalization"}),
}


def model_gaps(model, backend: str) -> List[str]:
    """What of a Keras ``model`` the portable mode's claim on ``backend`` does not cover."""
    coverage = COVERAGE.get(backend)
    if coverage is None:
        return []  # the backend itself is reported not covered
    layers, stack = [], [model]
    while stack:  # into nested models, not into a layer's own sublayers (an attention's Dense)
        for layer in getattr(stack.pop(), "layers", []):
            (stack.append(layer) if hasattr(layer, "layers") else layers.append(type(layer).__name__))
    optimizer = getattr(model, "optimizer", None)
    policy = getattr(getattr(model, "dtype_policy", None), "name", "")
    return coverage.gaps(layers, type(optimizer).__name__ if optimizer is not None else "", policy)


def gaps_line(model, backend: str) -> str:
    """The line a fit in the portable mode prints when its model uses what the claim does not
    cover ("" when it covers all): the mode holds its pins, but these bits are not vouched for."""
    found = model_gaps(model, backend)
    return f"portable mode: not covered on {backend}, so not vouched for on another CPU: {'; '.join(found)}" \
        if found else ""


def backend_env(backend: Optional[str], environ: Optional[Mapping[str, str]] = None,
                floor_name: Optional[str] = None) -> Dict[str, str]:
    """The variables the mode sets for ``backend`` (``None``: TensorFlow) at ``floor_name``
    (``None``: the default), for a kernelspec's ``env``: the floor's pins, and for JAX
    ``XLA_FLAGS`` as ``environ`` has it plus the floor's XLA pins."""
    chosen = floor(floor_name)
    env = dict(chosen.pins)
    if backend == "jax":
        env["XLA_FLAGS"] = " ".join((environ or {}).get("XLA_FLAGS", "").split())
        _apply_xla(env, {}, PortableReport(backend, floor=chosen.name))  # {}: no JAX started in the kernel to be
    return env


def _flag(entry: str) -> str:
    return entry.split("=", 1)[0]


@dataclass
class PortableReport:
    """What the portable mode set, what it found already set, and what came too late."""

    backend: str = "tensorflow"
    floor: str = DEFAULT_FLOOR  # a key of FLOOR_PINS
    set: List[str] = field(default_factory=list)
    already: List[str] = field(default_factory=list)
    too_late: List[Tuple[str, str]] = field(default_factory=list)   # (pin, why)
    kept: List[Tuple[str, str]] = field(default_factory=list)       # (pin, the user's other value)
    not_covered: List[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every pin in force, and nothing the mode cannot cover in use."""
        return not (self.too_late or self.kept or self.not_covered)

    def __str__(self) -> str:
        floor = FLOORS.get(self.backend) and FLOOR_PINS[self.floor].description
        where = f"{self.backend} backend, " + (f"floor {floor}" if floor else "no floor: not covered")
        lines = [f"portable mode ({where}): " + ("every pin in force" if self.complete else "INCOMPLETE")]
        if self.backend in COVERAGE:
            lines.append(str(COVERAGE[self.backend]))
        if self.set:
            lines.append("set: " + ", ".join(self.set))
        lines += [f"too late: {name}: {why}" for name, why in self.too_late]
        lines += [f"kept the value already set: {name}={value} (the mode's: {_mode_value(name, self.floor)})"
                  for name, value in self.kept]
        lines += [f"not portable: {why}" for why in self.not_covered]
        return "\n".join(lines)

    def _repr_pretty_(self, printer, cycle):
        printer.text(str(self))


def _mode_value(name: str, floor_name: str = DEFAULT_FLOOR) -> str:
    chosen = FLOOR_PINS[floor_name]
    if name in chosen.pins:
        return chosen.pins[name]
    return next(pin for pin in chosen.xla_pins if f"XLA_FLAGS {_flag(pin)}" == name).split("=", 1)[1]


def apply(environ: Optional[MutableMapping[str, str]] = None, initial: Optional[Mapping[str, str]] = None,
          loaded: Optional[Mapping[str, object]] = None, machine: Optional[str] = None,
          floor_name: Optional[str] = None) -> PortableReport:
    """Set each pin of the floor ``floor_name`` (``None``: the default) in ``environ``
    (``os.environ``) where it still takes effect; report the others. ``initial``: the
    environment the process started with; ``loaded``: ``sys.modules``. A pin the user set
    to another value is kept, and said to be."""
    chosen = floor(floor_name)  # UnknownFloor before anything is set
    environ = os.environ if environ is None else environ
    initial = _initial_environ() if initial is None else initial
    loaded = sys.modules if loaded is None else loaded
    machine = (machine or platform.machine()).lower()
    report = PortableReport(backend=environ.get("KERAS_BACKEND", "tensorflow"), floor=chosen.name)
    option = "--portable" + ("" if chosen.name == DEFAULT_FLOOR else f" {chosen.name}")
    if machine not in ("x86_64", "amd64"):
        report.not_covered.append(f"this machine is {machine}; the portable mode covers x86-64 only")
        return report
    for name, value in chosen.pins.items():
        current = environ.get(name)
        if current is not None and current != value:
            report.kept.append((name, current))
            continue
        readers = [module for module in _READ_BY.get(name, ()) if module in loaded]
        if name == "GLIBC_TUNABLES":
            if initial.get(name) == value:
                report.already.append(name)
            else:
                report.too_late.append((name, "read when the process starts: install the kernel with "
                                              f"jupyter-repro install-kernel {option}"))
            continue
        if current == value:  # from the kernelspec, the shell, or an earlier call before the import
            report.already.append(name)
        elif readers:
            report.too_late.append((name, f"{', '.join(readers)} already imported; set it in the kernelspec "
                                          f"(jupyter-repro install-kernel {option}) or before the first import"))
        else:
            environ[name] = value
            report.set.append(name)
    if report.backend == "jax":
        _apply_xla(environ, loaded, report)
    if report.backend in NOT_COVERED:
        report.not_covered.append(NOT_COVERED[report.backend])
    return report


def _apply_xla(environ: MutableMapping[str, str], loaded: Mapping[str, object], report: PortableReport) -> None:
    """Add the floor's XLA pins after the user's ``XLA_FLAGS`` while JAX has not created its backend."""
    chosen = FLOOR_PINS[report.floor]
    option = "--portable" + ("" if chosen.name == DEFAULT_FLOOR else f" {chosen.name}")
    flags = environ.get("XLA_FLAGS", "").split()
    theirs = {_flag(entry): entry for entry in flags}  # the last of a repeated flag is the one XLA keeps
    added = []
    for pin in chosen.xla_pins:
        name = f"XLA_FLAGS {_flag(pin)}"
        if theirs.get(_flag(pin), pin) != pin:
            report.kept.append((name, theirs[_flag(pin)].split("=", 1)[-1]))
        elif _flag(pin) in theirs:
            report.already.append(name)
        elif jax_initialised(loaded):
            report.too_late.append((name, "JAX already created its backend; set it in the kernelspec "
                                          f"(jupyter-repro install-kernel {option} --backend jax) or before "
                                          "the first JAX computation"))
        else:
            added.append(pin)
            report.set.append(name)
    if added:
        environ["XLA_FLAGS"] = " ".join(flags + added)
