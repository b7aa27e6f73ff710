"""The portable mode: pins that make TensorFlow and NumPy compute the same bits on every
x86-64 CPU with AVX (the floor: Intel Sandy Bridge, AMD Bulldozer and later).

Each math library picks its code by the CPU it finds: oneDNN's sgemm (which TensorFlow's
matmul calls, oneDNN options on or off) AVX-512, AVX2 or AVX kernels; OpenBLAS a core type;
NumPy's ufuncs a SIMD target; glibc's ``exp``/``log``/``tanh``... an FMA variant. Each pin
below holds that choice at what the floor has, so a CPU above it computes what the floor
computes. Measured (see docs/reproducing-across-machines.md): with them, a seeded Keras
fit on TensorFlow and a data cell of NumPy math give the same bits natively on an AVX-512
Xeon and under ``qemu-x86_64 -cpu SandyBridge`` and ``-cpu Haswell``.

Where each pin takes effect, and so when it is too late:

* ``GLIBC_TUNABLES``: read by the dynamic loader when the process starts: only a
  kernelspec's ``env`` (``jupyter-repro install-kernel --portable``) can set it;
* ``NPY_DISABLE_CPU_FEATURES``, ``OPENBLAS_CORETYPE``: read when NumPy (and the OpenBLAS
  it carries) loads: too late once NumPy is imported;
* ``ONEDNN_MAX_CPU_ISA``: read when oneDNN first dispatches; held too late here once
  TensorFlow or PyTorch is imported (the earliest moment this package can vouch for);
* ``TF_ENABLE_ONEDNN_OPTS=0``: TensorFlow turns its oneDNN operations on by itself on CPUs
  with AVX512_VNNI, AVX512_BF16 or AMX, and off elsewhere; on (measured, AVX-512 Xeon) its
  ``MatMul(transpose_a=True)`` with 128 or more rows took a path the ISA cap does not hold.
  Read when TensorFlow is imported.

Not covered, and never claimed: the JAX and PyTorch backends (XLA's ``--xla_cpu_max_isa``
leaves YNNPACK's matmuls on FMA; ATen's vectorised kernels and MKL's branch were not found
to agree across these CPUs: see the docs), CPUs other than x86-64, and GPUs.
"""
from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, MutableMapping, Optional, Tuple

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

#: the modules whose loading reads each pin (a pin set after one of them is too late)
_READ_BY = {"ONEDNN_MAX_CPU_ISA": ("tensorflow", "torch"), "TF_ENABLE_ONEDNN_OPTS": ("tensorflow",), "OPENBLAS_CORETYPE": ("numpy",),
            "NPY_DISABLE_CPU_FEATURES": ("numpy",)}
#: backends the mode does not make portable, and why (measured; see the docs)
NOT_COVERED = {
    "jax": "JAX: XLA's --xla_cpu_max_isa caps only the code XLA generates; matmuls go to YNNPACK, which "
           "still uses FMA: no setting found that agrees on an AVX-only CPU",
    "torch": "PyTorch: torch.sqrt (used by Adam) is an approximation whose bits depend on the CPU, not pinned by "
             "ATEN_CPU_CAPABILITY or MKL_CBWR: no setting found that agrees across CPUs",
}


@dataclass
class PortableReport:
    """What the portable mode set, what it found already set, and what came too late."""

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
        lines = [f"portable mode ({FLOOR}): " + ("every pin in force" if self.complete else "INCOMPLETE")]
        if self.set:
            lines.append("set: " + ", ".join(self.set))
        lines += [f"too late: {name}: {why}" for name, why in self.too_late]
        lines += [f"kept the value already set: {name}={value} (the mode's: {PINS[name]})" for name, value in self.kept]
        lines += [f"not portable: {why}" for why in self.not_covered]
        return "\n".join(lines)

    def _repr_pretty_(self, printer, cycle):
        printer.text(str(self))


def apply(environ: Optional[MutableMapping[str, str]] = None, initial: Optional[Mapping[str, str]] = None,
          loaded: Optional[Mapping[str, object]] = None, machine: Optional[str] = None) -> PortableReport:
    """Set each pin in ``environ`` (``os.environ``) where it still takes effect; report
    the others. ``initial``: the environment the process started with; ``loaded``:
    ``sys.modules``. A pin the user set to another value is kept, and said to be."""
    environ = os.environ if environ is None else environ
    initial = _initial_environ() if initial is None else initial
    loaded = sys.modules if loaded is None else loaded
    machine = (machine or platform.machine()).lower()
    report = PortableReport()
    if machine not in ("x86_64", "amd64"):
        report.not_covered.append(f"this machine is {machine}; the portable mode covers x86-64 only")
        return report
    for name, value in PINS.items():
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
                                              "jupyter-repro install-kernel --portable"))
            continue
        if current == value:  # from the kernelspec, the shell, or an earlier call before the import
            report.already.append(name)
        elif readers:
            report.too_late.append((name, f"{', '.join(readers)} already imported; set it in the kernelspec "
                                          "(jupyter-repro install-kernel --portable) or before the first import"))
        else:
            environ[name] = value
            report.set.append(name)
    backend = environ.get("KERAS_BACKEND", "tensorflow")
    if backend in NOT_COVERED:
        report.not_covered.append(NOT_COVERED[backend])
    return report
