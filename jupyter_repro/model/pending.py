"""A snapshot of a model that has no variables yet, completed at its first build.

A subclassed model (keras.io's movielens recommender) compiled but never called has no
variables: Keras creates them at the first batch, inside ``fit``, before any training
step. The README says to snapshot after compile, so ``%repro_snapshot`` accepts it and
registers this pending snapshot: the first ``%%repro_fit`` compiles afresh, reseeds, and
the snapshot is taken at the model's build, as training begins (``run/fit.py``'s
``on_built``), under that fit's seed. That fit is the first run from it; the next
restores it. Taken in another kernel, the same build under the same seed gives the same
bytes, so the verdicts across kernels compare.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional

from .snapshot import CompileRecipe


@dataclass
class PendingSnapshot:
    """What ``%repro_snapshot`` registers for a compiled model with no variables yet."""

    name: str
    recipe: CompileRecipe
    variable: str = ""
    created: float = field(default_factory=time.time)
    fingerprint: Optional[str] = None  # none until the model is built
    missed: bool = False  # a fit built (and trained) the model without taking it
    status: str = ("the model has no variables yet: the snapshot is taken when the first %%repro_fit "
                   "builds it, before any training step, under that fit's seed")

    def __repr__(self) -> str:
        return f"Snapshot({self.name!r}: not built yet, {self.recipe.describe_optimizers()})"

    def _repr_pretty_(self, printer, cycle):
        printer.text(f"{self!r}\n{self.status}")

    def _repr_html_(self) -> str:
        from html import escape

        return f"<div class='repro-snapshot'><b>{escape(repr(self))}</b><br>{escape(self.status)}</div>"

    def info(self) -> "PendingSnapshot":
        return self
