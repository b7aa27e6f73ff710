"""A reproducible fit: reseed, restore the snapshot, recompile, then the user's code.

Usable from a script::

    snap = Snapshot.capture(model, "model")
    with reproducible_fit(model, snap, seed=42) as run:
        model.fit(x, y, epochs=20)
    run.fingerprint   # XXH3-128 of every variable after training

While the user's code runs, ``model.fit`` is wrapped (on the instance only, and put
back afterwards) to fingerprint what it is given — x, y, validation data, weights,
callbacks and the other arguments — and to keep the History it returns.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import inspect
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import xxhash

from .fingerprint import fingerprint_arrays, fingerprint_value
from .ledger import Verdict, input_key
from .seeding import Seeder, validate_seed
from .snapshot import Snapshot, model_fingerprint

#: fit arguments fingerprinted one by one (so a difference can be named); the rest together
DATA_ARGUMENTS = ("x", "y", "validation_data", "sample_weight", "class_weight", "callbacks")
IGNORED_ARGUMENTS = ("verbose",)  # does not change the result


@dataclass
class FitReport:
    """What one reproducible fit started from, was given, and ended with."""

    model: str
    seed: int
    snapshot: str
    snapshot_fingerprint: str
    cell: str = ""                      # XXH3-64 of the fit cell's text
    inputs: Dict[str, str] = field(default_factory=dict)
    fingerprint: Optional[str] = None   # of the variables after the user's code
    metrics: Dict[str, float] = field(default_factory=dict)
    seconds: Optional[float] = None
    success: Optional[bool] = None
    run: Optional[int] = None
    verdict: Optional[Verdict] = None
    note: Optional[str] = None          # e.g. why the cache was not used

    @property
    def input_key(self) -> str:
        return input_key(self.snapshot_fingerprint, self.seed, self.cell, self.inputs)

    def record(self, env: dict) -> dict:
        """The ledger line for this run."""
        return {"time": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                "model": self.model, "seed": self.seed, "snapshot": self.snapshot_fingerprint,
                "snapshot_name": self.snapshot, "cell": self.cell, "inputs": self.inputs,
                "input_key": self.input_key, "result": self.fingerprint, "metrics": self.metrics,
                "seconds": round(self.seconds or 0.0, 3), "env": dict(env)}

    def __str__(self) -> str:
        state = {True: "done", False: "failed", None: "running"}[self.success]
        text = (f"repro_fit {state}: {self.model}, seed {self.seed}, from snapshot "
                f"'{self.snapshot}' ({self.snapshot_fingerprint[:12]})")
        if self.fingerprint:
            text += f" -> {self.fingerprint[:12]} in {self.seconds:.2f} s"
        if self.verdict is not None:
            text += f"\n{self.verdict}"
        if self.note:
            text += f"\n{self.note}"
        return text

    def _repr_pretty_(self, printer, cycle):
        printer.text(str(self))


class FitCalls:
    """Context manager: wraps ``model.fit`` on the instance, recording each call."""

    def __init__(self, model, replay: Optional[Callable] = None):
        self.model = model
        self.calls: List[Dict[str, str]] = []
        self.history = None
        self.replay = replay  # (arguments, inputs) -> History to return instead of training, or None
        self.replayed = False

    def __enter__(self):
        original = self.model.fit
        signature = inspect.signature(original)

        def fit(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            self.calls.append(fit_arguments(bound.arguments))
            if self.replay is not None and len(self.calls) == 1:
                history = self.replay(bound.arguments, self.calls[0])
                if history is not None:
                    self.history, self.replayed = history, True
                    return history
            self.history = original(*args, **kwargs)
            return self.history

        fit.__wrapped__ = original
        object.__setattr__(self.model, "fit", fit)
        return self

    def __exit__(self, *exc):
        object.__delattr__(self.model, "fit")
        return False

    @property
    def inputs(self) -> Dict[str, str]:
        if len(self.calls) == 1:
            return self.calls[0]
        return {f"fit[{i}].{name}": value for i, call in enumerate(self.calls) for name, value in call.items()}

    @property
    def metrics(self) -> Dict[str, float]:
        history = getattr(self.history, "history", None) or {}
        return {name: float(values[-1]) for name, values in history.items() if len(values)}


def fit_arguments(arguments: dict) -> Dict[str, str]:
    """Fingerprints of one ``fit`` call's arguments: data one by one, the rest together."""
    found = {name: fingerprint_value(arguments[name]) for name in DATA_ARGUMENTS if name in arguments}
    rest = {name: value for name, value in arguments.items()
            if name not in DATA_ARGUMENTS and name not in IGNORED_ARGUMENTS}
    if "kwargs" in rest:
        rest.update(rest.pop("kwargs"))
    found["arguments"] = fingerprint_value(rest)
    return found


def cell_hash(source: str) -> str:
    return xxhash.xxh3_64_hexdigest(source.strip().encode())


def start_fit(model, snapshot: Snapshot, seed: int, seeder: Seeder, label: str = "model",
              source: str = "", state: Optional[List] = None) -> FitReport:
    """Put ``model`` in its snapshot state (or ``state``) with a fresh optimizer and reseed.

    Raises before touching anything if the model no longer matches the snapshot.
    """
    seed = validate_seed(seed)
    snapshot.restore(model, state)
    seeder.reseed(seed)
    start = snapshot.fingerprint if state is None else fingerprint_arrays(
        (str(i), a) for i, a in enumerate(state))
    return FitReport(label, seed, snapshot.name, start, cell=cell_hash(source))


def finish_fit(model, report: FitReport, started: float, success: bool,
               calls: Optional[FitCalls] = None) -> FitReport:
    report.seconds = time.perf_counter() - started
    report.success = bool(success)
    report.fingerprint = model_fingerprint(model)
    if calls is not None:
        report.inputs, report.metrics = calls.inputs, calls.metrics
    return report


@contextlib.contextmanager
def reproducible_fit(model, snapshot: Snapshot, seed: int, seeder: Optional[Seeder] = None,
                     label: str = "model"):
    """Context manager form of a ``%%repro_fit`` cell for plain Python."""
    seeder = seeder or Seeder()
    started = time.perf_counter()
    report = start_fit(model, snapshot, seed, seeder, label)
    success = False
    with FitCalls(model) as calls:
        try:
            yield report
            success = True
        finally:
            finish_fit(model, report, started, success, calls)
