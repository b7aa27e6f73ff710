"""How far apart two runs are, when their bits do not match.

Bits can match only on the same arithmetic; across CPU families, CPU and GPU, or library
versions they cannot, and the useful answer becomes how much the runs differ and where
they first part. Each run keeps, beside its result fingerprint:

* ``epochs``: a 16-hex fingerprint (XXH3-128, as the result's) of every variable at the
  end of each epoch of its last ``fit`` call, so two runs read "identical through epoch 2;
  first differs at epoch 3";
* ``sketch``: 8 values of every variable at fixed, evenly spaced positions, as raw bytes
  (about 70 characters a variable), so that the largest difference in units in the last
  place (ulp) and relative terms can be computed against a run not in memory: a run saved
  in a notebook, or one from another machine. It is a lower bound of the true largest
  difference (only the sampled positions are seen), and said to be one;
* ``metrics``: each metric's last value;
* ``batches``, on demand (``%%repro_fit --batches``, ``Session.fit(..., batches=True)``): the
  same fingerprint after every batch, so the first differing epoch is placed to its batch.

``Tolerance`` is what a CI accepts instead of bits: ``1e-5`` (relative, on metrics and
weights), or ``metrics=1e-6,weights=1e-5`` / ``weights=64ulp``. A run within it still reads
"not bit-identical".
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import ReproError

#: values kept of each variable
SAMPLES = 8
#: hex digits kept of each epoch's fingerprint
EPOCH_DIGITS = 16


def sketch(arrays: Iterable[np.ndarray], samples: int = SAMPLES) -> List[str]:
    """``dtype-name:hex`` of ``samples`` evenly spaced values of each array, in order."""
    out = []
    for array in arrays:
        flat = np.asarray(array).reshape(-1)
        if flat.size == 0:
            out.append(f"{flat.dtype.name}:")
            continue
        positions = np.unique(np.linspace(0, flat.size - 1, min(samples, flat.size)).astype(np.int64))
        out.append(f"{flat.dtype.name}:{np.ascontiguousarray(flat[positions]).tobytes().hex()}")
    return out


def _values(entry: str) -> Optional[np.ndarray]:
    name, _, data = entry.partition(":")
    try:
        dtype = np.dtype(name)
    except TypeError:  # bfloat16 and friends: known once ml_dtypes is imported
        try:
            import ml_dtypes  # noqa: F401

            dtype = np.dtype(getattr(ml_dtypes, name))
        except (ImportError, AttributeError, TypeError):
            return None
    return np.frombuffer(bytes.fromhex(data), dtype=dtype)


def ulps(a: np.ndarray, b: np.ndarray) -> List[int]:
    """Distance in units in the last place between floats of one dtype (IEEE layout: the
    sign-magnitude bits mapped onto ordered integers); integers by plain difference."""
    if a.dtype.kind in "iub":
        return [abs(int(x) - int(y)) for x, y in zip(a.tolist(), b.tolist())]
    bits = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize]
    sign = 1 << (8 * a.dtype.itemsize - 1)

    def ordered(raw: int) -> int:
        return sign - raw if raw >= sign else raw  # negative floats below zero, -0 on +0

    return [abs(ordered(int(x)) - ordered(int(y)))
            for x, y in zip(a.view(bits).tolist(), b.view(bits).tolist())]


@dataclass
class Distance:
    """How far one run is from another."""

    max_ulp: Optional[int] = None
    max_relative: Optional[float] = None
    sampled: int = 0                    # values compared (the sketch's)
    metrics: Dict[str, Tuple[float, float]] = field(default_factory=dict)  # name: (reference, this)
    epochs: Optional[Tuple[int, int, int]] = None  # (epochs identical, epochs here, epochs there)
    batch: Optional[int] = None  # in the first differing epoch, how many batches agree (both ran --batches)

    def metric_relative(self, name: str) -> float:
        before, now = self.metrics[name]
        return _relative(before, now)

    def __str__(self) -> str:
        parts = []
        if self.epochs is not None:
            same, here, there = self.epochs
            if here != there:
                parts.append(f"{here} epoch(s) against {there}")
            if same == 0 and min(here, there):
                parts.append("differs from the first epoch")
            elif same < min(here, there):
                parts.append(f"identical through epoch {same}; first differs at epoch {same + 1}")
            elif here == there:
                parts.append(f"identical at every epoch's end ({same})")
            if self.batch is not None and same < min(here, there):
                parts.append(f"in epoch {same + 1}, identical through batch {self.batch}; first differs at batch "
                             f"{self.batch + 1}" if self.batch else f"in epoch {same + 1}, differs from its first batch")
        if self.max_ulp is not None:
            parts.append(f"largest weight difference {self.max_ulp} ulp (relative {self.max_relative:.2g}) "
                         f"among {self.sampled} sampled values, a lower bound")
        moved = [f"{name} {before:.9g} → {now:.9g} (relative {_relative(before, now):.2g})"
                 for name, (before, now) in self.metrics.items() if before != now]
        if moved:
            parts.append("; ".join(moved))
        elif self.metrics:
            parts.append("metrics equal")
        return "; ".join(parts)


def _relative(before: float, now: float) -> float:
    if before == now:
        return 0.0
    if math.isnan(before) or math.isnan(now):
        return math.inf
    return abs(now - before) / max(abs(before), abs(now))


def first_difference(before: Sequence[str], now: Sequence[str]) -> int:
    """How many epochs agree from the start."""
    same = 0
    for a, b in zip(before, now):
        if a != b:
            break
        same += 1
    return same


def distance(reference: dict, fit: dict) -> Optional[Distance]:
    """What can be said of how far ``fit`` is from ``reference`` (ledger lines or saved
    fingerprints) from what each carries; None when neither carries anything to compare."""
    found = Distance()
    if reference.get("epochs") and fit.get("epochs"):
        found.epochs = (first_difference(reference["epochs"], fit["epochs"]), len(fit["epochs"]),
                        len(reference["epochs"]))
        epoch, before, now = found.epochs[0], reference.get("batches") or [], fit.get("batches") or []
        if epoch < min(len(before), len(now)):
            found.batch = first_difference(before[epoch], now[epoch])
    before, now = reference.get("sketch"), fit.get("sketch")
    if before and now and len(before) == len(now):
        worst_ulp, worst_relative = 0, 0.0
        for a, b in zip(before, now):
            a, b = _values(a), _values(b)
            if a is None or b is None or a.dtype != b.dtype or a.shape != b.shape:
                worst_ulp = None
                break
            found.sampled += a.size
            if a.size:
                worst_ulp = max(worst_ulp, max(ulps(a, b)))
                worst_relative = max(worst_relative, max(_relative(float(x), float(y))
                                                         for x, y in zip(a.astype(np.float64), b.astype(np.float64))))
        if worst_ulp is not None:
            found.max_ulp, found.max_relative = worst_ulp, worst_relative
    metrics_before, metrics_now = reference.get("metrics") or {}, fit.get("metrics") or {}
    found.metrics = {name: (float(metrics_before[name]), float(metrics_now[name]))
                     for name in sorted(set(metrics_before) & set(metrics_now))}
    if found.epochs is None and found.max_ulp is None and not found.metrics:
        return None
    return found


@dataclass(frozen=True)
class Tolerance:
    """How far a run may be from its reference and still pass (not being bit-identical)."""

    metrics: Optional[float] = None      # relative
    weights: Optional[float] = None      # relative, or ulp when weights_ulp
    weights_ulp: bool = False

    @classmethod
    def parse(cls, text: str) -> "Tolerance":
        """``1e-5`` (metrics and weights, relative), ``metrics=1e-6,weights=1e-5``, ``weights=64ulp``."""
        def number(value: str, what: str) -> float:
            try:
                found = float(value)
            except ValueError:
                found = -1.0
            if not found >= 0 or math.isinf(found):
                raise ReproError(f"tolerance {what}={value!r} is not a number ≥ 0; e.g. --repro-tolerance "
                                 "metrics=1e-6,weights=1e-5 or weights=64ulp")
            return found

        text = text.strip()
        if "=" not in text:
            both = number(text, "for metrics and weights")
            return cls(both, both)
        values: Dict[str, object] = {}
        for part in text.split(","):
            name, _, value = part.partition("=")
            name, value = name.strip(), value.strip()
            if name == "weights" and value.endswith("ulp"):
                values.update(weights=number(value[:-3], name), weights_ulp=True)
            elif name in ("metrics", "weights"):
                values[name] = number(value, name)
            else:
                raise ReproError(f"tolerance {part!r}: name metrics or weights, e.g. metrics=1e-6,weights=1e-5")
        return cls(**values)

    def admits(self, found: Optional[Distance]) -> bool:
        """Whether ``found`` is within: every bound given must be checkable and met."""
        if found is None:
            return False
        if found.epochs is not None and found.epochs[1] != found.epochs[2]:
            return False
        if self.metrics is not None:
            if not found.metrics or any(found.metric_relative(name) > self.metrics for name in found.metrics):
                return False
        if self.weights is not None:
            if found.max_ulp is None:
                return False
            if (found.max_ulp if self.weights_ulp else found.max_relative) > self.weights:
                return False
        return self.metrics is not None or self.weights is not None

    def __str__(self) -> str:
        parts = []
        if self.metrics is not None:
            parts.append(f"metrics={self.metrics:g}")
        if self.weights is not None:
            parts.append(f"weights={self.weights:g}{'ulp' if self.weights_ulp else ''}")
        return ",".join(parts)
