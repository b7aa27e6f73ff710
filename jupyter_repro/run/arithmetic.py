"""The machine's arithmetic: which CPU, which instruction sets each math library uses, which pins.

The same seeded fit on the same library versions gives other bits on a CPU with other
instruction sets (oneDNN's sgemm picks AVX-512, AVX2 or AVX kernels; NumPy's ufuncs and
OpenBLAS dispatch the same way), or when a pin such as ``ONEDNN_MAX_CPU_ISA`` caps that
choice. These facts are recorded with every run so that a verdict can name such a change
as the likely cause, instead of calling the fit "not deterministic".

Where each fact comes from, and how far it can be trusted:

* ``cpu``: vendor, model name, family/model/stepping from ``/proc/cpuinfo`` (``platform``
  elsewhere). Under ``qemu-user`` this file is the host's, so it names the host;
* ``cpu isa``: from NumPy's CPUID probe (``__cpu_features__``), which sees the emulated
  CPU under ``qemu-user`` and works on ARM too;
* ``onednn isa``: the best oneDNN ISA these features allow, lowered by
  ``ONEDNN_MAX_CPU_ISA``/``DNNL_MAX_CPU_ISA``: derived, not asked of the library (oneDNN
  has no query short of ``ONEDNN_VERBOSE``);
* ``numpy simd``, ``openblas``: what NumPy and each loaded BLAS (through ``threadpoolctl``,
  when installed: NumPy's and TensorFlow's copies of OpenBLAS both show) dispatch to;
* ``aten capability``: ``torch.backends.cpu.get_cpu_capability()`` once torch is imported;
* ``pins``: every environment variable known to move these choices, as set.

Nothing here imports a framework: facts of libraries not imported are "unknown".
"""
from __future__ import annotations

import functools
import os
import platform
import sys
from typing import Dict, Tuple

#: environment variables that choose a code path in a math library, and so change bits
PINS = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "TF_ENABLE_ONEDNN_OPTS", "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS",
        "ATEN_CPU_CAPABILITY", "OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES", "NPY_ENABLE_CPU_FEATURES",
        "GLIBC_TUNABLES", "XLA_FLAGS")
#: variables that set thread counts (a reduction split over other threads sums in another order)
THREADS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
           "TF_NUM_INTEROP_THREADS")
#: the facts of this module, in the order shown; a change in any of them can change bits
FACTS = ("cpu", "cpu isa", "numpy simd", "openblas", "onednn isa", "xla cpu isa", "aten capability", "mkl branch",
         "threads", "pins", "gpu driver")

#: NumPy's feature names worth showing (the ones math kernels dispatch on), lowest first
_ISA_SHOWN = ("SSE41", "SSE42", "AVX", "F16C", "FMA3", "AVX2", "AVX512F", "AVX512_SKX", "AVX512_CLX", "AVX512_CNL",
              "AVX512_ICL", "AVX512_SPR", "AVX512BF16", "AVX512FP16", "ASIMD", "ASIMDHP", "ASIMDDP", "SVE",
              "VSX", "VX")
#: oneDNN's CPU ISA names, lowest first (as ``ONEDNN_MAX_CPU_ISA`` takes them)
ONEDNN_ISAS = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI",
               "AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16")


def facts() -> Dict[str, str]:
    """The arithmetic facts of this process, now (about 1 ms; the CPU's own are read once)."""
    features = _cpu_features()
    return {
        "cpu": _cpu_name(),
        "cpu isa": _cpu_isa(features),
        "numpy simd": _numpy_simd(),
        "openblas": _openblas(),
        "onednn isa": onednn_isa(features, os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")),
        "xla cpu isa": _xla_isa(),
        "aten capability": _aten_capability(),
        "mkl branch": os.environ.get("MKL_CBWR", "auto"),
        "threads": _threads(),
        "pins": ", ".join(f"{name}={os.environ[name]}" for name in PINS if os.environ.get(name)) or "none",
        "gpu driver": _gpu_driver(),
    }


@functools.lru_cache(maxsize=None)
def _cpuinfo() -> Tuple[Tuple[str, str], ...]:
    """The first processor's ``key: value`` lines of ``/proc/cpuinfo``; empty where there is none."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as file:
            text = file.read().split("\n\n", 1)[0]
    except OSError:
        return ()
    return tuple((key.strip(), value.strip()) for key, _, value in (line.partition(":") for line in text.splitlines()))


@functools.lru_cache(maxsize=None)
def _cpu_name() -> str:
    info = dict(_cpuinfo())
    if "vendor_id" in info:
        return (f"{info['vendor_id']} {info.get('model name', '?')} (family {info.get('cpu family', '?')}, "
                f"model {info.get('model', '?')}, stepping {info.get('stepping', '?')})")
    if "CPU implementer" in info:  # ARM: no model name, an implementer and part number
        return f"ARM implementer {info['CPU implementer']} part {info.get('CPU part', '?')} ({platform.machine()})"
    return f"{platform.processor() or 'unknown processor'} ({platform.machine()})"


def _cpu_features() -> Dict[str, bool]:
    """NumPy's CPUID probe; empty until NumPy is imported."""
    if "numpy" not in sys.modules:
        return {}
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # NumPy 1.x
        from numpy.core._multiarray_umath import __cpu_features__
    return __cpu_features__


def _cpu_isa(features: Dict[str, bool]) -> str:
    if not features:
        return "unknown (NumPy not imported)"
    return " ".join(name for name in _ISA_SHOWN if features.get(name)) or "baseline only"


def _numpy_simd() -> str:
    if "numpy" not in sys.modules:
        return "unknown (NumPy not imported)"
    try:
        from numpy._core import _multiarray_umath as umath
    except ImportError:
        from numpy.core import _multiarray_umath as umath
    enabled = [name for name in umath.__cpu_dispatch__ if umath.__cpu_features__.get(name)]
    return f"baseline {' '.join(umath.__cpu_baseline__) or 'none'}; dispatch {' '.join(enabled) or 'none'}"


def _openblas() -> str:
    if "numpy" not in sys.modules:
        return "unknown (NumPy not imported)"
    try:
        import threadpoolctl
    except ImportError:
        return "unknown (threadpoolctl not installed)"
    # sorted: libraries are listed in the order they were loaded, which varies between kernels
    blas = sorted({" ".join(str(part) for part in (i.get("internal_api"), i.get("version"), i.get("architecture"))
                            if part) + f", {i.get('num_threads')} threads"
                   for i in _blas_libraries(threadpoolctl).info() if i.get("user_api") == "blas"})
    return "; ".join(blas) or "none loaded"


_scanned: list = [None, None]  # the modules imported when the libraries were listed, and the listing


def _blas_libraries(threadpoolctl):
    """threadpoolctl's controller of the loaded libraries, listed again only after an import.

    Listing them walks every shared object of the process (3.5 ms per fit with TensorFlow
    loaded); a BLAS arrives with the extension module that links it (NumPy, SciPy, PyTorch),
    so while no module was imported the list stands. Thread counts are asked anew each time
    (``info``): ``threadpool_limits`` changes them without loading anything. A BLAS loaded
    by ``ctypes`` alone is listed at the next import.
    """
    imported = (len(sys.modules), next(reversed(sys.modules)))
    if _scanned[0] != imported:
        _scanned[:] = [imported, threadpoolctl.ThreadpoolController()]
    return _scanned[1]


def onednn_isa(features: Dict[str, bool], cap: str = None) -> str:
    """The oneDNN ISA these CPU features allow, lowered by ``cap`` (``ONEDNN_MAX_CPU_ISA``)."""
    if not features:
        return "unknown (NumPy not imported)" if cap is None else f"at most {cap.upper()} (capped)"
    best = next((isa for isa, needs in (("AVX512_CORE_BF16", "AVX512BF16"), ("AVX512_CORE_VNNI", "AVX512_CLX"),
                                        ("AVX512_CORE", "AVX512_SKX"), ("AVX2", "AVX2"), ("AVX", "AVX"),
                                        ("SSE41", "SSE41")) if features.get(needs)), None)
    if best is None:
        return "none (not x86-64)" if not features.get("SSE2") else "below SSE41"
    if cap and cap.upper() in ONEDNN_ISAS and ONEDNN_ISAS.index(cap.upper()) < ONEDNN_ISAS.index(best):
        return f"{cap.upper()} (capped; CPU allows {best})"
    return best


def _xla_isa() -> str:
    flags = os.environ.get("XLA_FLAGS", "")
    for flag in flags.split():
        if flag.startswith("--xla_cpu_max_isa="):
            return f"{flag.split('=', 1)[1]} (capped)"
    return "native" if "jax" in sys.modules else "unknown (JAX not imported)"


def _aten_capability() -> str:
    torch = sys.modules.get("torch")
    if torch is None or not hasattr(getattr(getattr(torch, "backends", None), "cpu", None), "get_cpu_capability"):
        pinned = os.environ.get("ATEN_CPU_CAPABILITY")
        return f"{pinned} (pinned; PyTorch not imported)" if pinned else "unknown (PyTorch not imported)"
    return torch.backends.cpu.get_cpu_capability()


def _threads() -> str:
    parts = [f"{name}={os.environ[name]}" for name in THREADS if os.environ.get(name)]
    tf = sys.modules.get("tensorflow")
    if tf is not None and hasattr(tf, "config"):
        threading = tf.config.threading
        parts.append(f"TensorFlow intra {threading.get_intra_op_parallelism_threads()} "
                     f"inter {threading.get_inter_op_parallelism_threads()} (0: default)")
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "get_num_threads"):
        parts.append(f"torch {torch.get_num_threads()}")
    return "; ".join(parts) or "defaults"


@functools.lru_cache(maxsize=None)
def _gpu_driver() -> str:
    try:
        with open("/proc/driver/nvidia/version", encoding="utf-8") as file:
            line = file.readline()
    except OSError:
        return "none"
    # "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 ..."
    words = line.split()
    version = next((w for w in words if w.count(".") >= 1 and w.replace(".", "").isdigit()), line.strip())
    return f"NVIDIA {version}"
