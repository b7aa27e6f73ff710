"""Which environments give the same bits: the class a shared result is filed under.

A result computed elsewhere may stand in for training here only where the same inputs
give the same bytes: the same library versions and backend, the same devices and
determinism, and the same arithmetic. The arithmetic is the machine's as the ledger
records it (``run/arithmetic.py``: instruction sets each library dispatches to, pins,
threads), but not the CPU's name: two CPUs that dispatch alike compute alike. In the
portable mode (``seeding/portable.py``) the pins hold every library at the floor, so the
class is the floor, the pins and the versions, whatever CPU is above it: a laptop's fit
replays on CI's Xeon and the other way round.

``facts`` gives the class as name → value (kept in each record, so a mismatch is
explained: "onednn isa AVX512_CORE → AVX2"); ``class_id`` its short digest (in each
record's name).
"""
from __future__ import annotations

import hashlib
import json
from typing import Dict, List, Tuple

from . import arithmetic

#: the frameworks whose version counts, by Keras backend
_BACKEND_LIBRARIES = {"tensorflow": ("tensorflow", "cuda", "cudnn", "op determinism"),
                      "jax": ("jax", "jaxlib", "jax devices", "XLA_FLAGS"),
                      "torch": ("torch", "torch cuda", "torch devices", "torch deterministic algorithms")}
_ALWAYS = ("numpy", "keras", "keras backend", "devices", "processes")
#: arithmetic facts that still count in the portable mode (the rest is held at the floor)
_PORTABLE_ARITHMETIC = ("pins", "threads", "gpu driver")


def facts(env: Dict[str, str], portable_floor: str = "") -> Dict[str, str]:
    """The class of a run with environment ``env`` (``environment.collect()``); under the
    portable mode, with every pin in force, ``portable_floor`` names its floor."""
    backend = str(env.get("keras backend", "tensorflow")).split()[0]
    names = _ALWAYS + _BACKEND_LIBRARIES.get(backend, ())
    arithmetic_names = _PORTABLE_ARITHMETIC if portable_floor else tuple(f for f in arithmetic.FACTS if f != "cpu")
    chosen = {name: _plain(env[name]) for name in names + arithmetic_names if name in env}
    chosen["mode"] = f"portable, floor {portable_floor}" if portable_floor else "native"
    return chosen


def class_id(class_facts: Dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(class_facts, sort_keys=True).encode()).hexdigest()[:16]


def differences(here: Dict[str, str], there: Dict[str, str]) -> List[Tuple[str, str, str]]:
    """(name, there, here) for each fact of the class that differs, arithmetic first."""
    names = sorted(set(here) | set(there), key=lambda n: (n not in arithmetic.FACTS and n != "mode", n))
    return [(n, str(there.get(n, "not said")), str(here.get(n, "not said"))) for n in names
            if here.get(n) != there.get(n)]


def explain(here: Dict[str, str], there: Dict[str, str], limit: int = 3) -> str:
    """"another arithmetic: onednn isa AVX512_CORE → AVX2" (or "other libraries: …")."""
    changes = differences(here, there)
    what = ("another arithmetic" if any(n in arithmetic.FACTS or n == "mode" for n, _, _ in changes)
            else "another environment")
    shown = "; ".join(f"{n} {a} → {b}" for n, a, b in changes[:limit])
    more = f" and {len(changes) - limit} more" if len(changes) > limit else ""
    return f"{what}: {shown}{more}"


def _plain(value) -> str:
    return str(value).replace(" (not imported)", "")
