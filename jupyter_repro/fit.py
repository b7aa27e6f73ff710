"""A reproducible fit: reseed, restore the snapshot, recompile, then the user's code.

Usable from a script::

    snap = Snapshot.capture(model, "model")
    with reproducible_fit(model, snap, seed=42) as run:
        model.fit(x, y, epochs=20)
    run.fingerprint   # XXH3-128 of every variable after training
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Optional

from .seeding import Seeder, validate_seed
from .snapshot import Snapshot, model_fingerprint


@dataclass
class FitReport:
    """What one reproducible fit started from and ended with."""

    model: str
    seed: int
    snapshot: str
    snapshot_fingerprint: str
    fingerprint: Optional[str] = None  # of the variables after the user's code
    seconds: Optional[float] = None
    success: Optional[bool] = None

    def __str__(self) -> str:
        state = {True: "done", False: "failed", None: "running"}[self.success]
        text = (f"repro_fit {state}: {self.model}, seed {self.seed}, from snapshot "
                f"'{self.snapshot}' ({self.snapshot_fingerprint[:12]})")
        if self.fingerprint:
            text += f" -> {self.fingerprint[:12]} in {self.seconds:.2f} s"
        return text

    def _repr_pretty_(self, printer, cycle):
        printer.text(str(self))


def start_fit(model, snapshot: Snapshot, seed: int, seeder: Seeder, label: str = "model") -> FitReport:
    """Put ``model`` in its snapshot state with a fresh optimizer and reseed.

    Raises before touching anything if the model no longer matches the snapshot.
    """
    seed = validate_seed(seed)
    snapshot.restore(model)
    seeder.reseed(seed)
    return FitReport(label, seed, snapshot.name, snapshot.fingerprint)


def finish_fit(model, report: FitReport, started: float, success: bool) -> FitReport:
    report.seconds = time.perf_counter() - started
    report.success = bool(success)
    report.fingerprint = model_fingerprint(model)
    return report


@contextlib.contextmanager
def reproducible_fit(model, snapshot: Snapshot, seed: int, seeder: Optional[Seeder] = None,
                     label: str = "model"):
    """Context manager form of a ``%%repro_fit`` cell for plain Python."""
    seeder = seeder or Seeder()
    started = time.perf_counter()
    report = start_fit(model, snapshot, seed, seeder, label)
    success = False
    try:
        yield report
        success = True
    finally:
        finish_fit(model, report, started, success)
