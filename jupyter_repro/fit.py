"""One fit, as it runs: the report it fills in, and the wrapper that watches ``model.fit``.

While the user's code runs, ``model.fit`` is wrapped (on the instance only, and put back
afterwards). Each call's inputs are fingerprinted before it trains (``inputs.py``); data
that cannot be hashed beforehand is handed to Keras through ``observed.py`` and
fingerprinted as it is read; the History it returns is kept. The policy around a fit
(restore, record, verdict, cache, trials) is ``session.py``'s.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

from .fingerprint import Unfingerprintable
from .inputs import Inputs, add_fit_call
from .observed import Observed


@dataclass
class FitReport:
    """What one reproducible fit started from, was given, and ended with."""

    model: str
    seed: int
    snapshot: str
    snapshot_fingerprint: str
    inputs: Inputs = field(default_factory=Inputs)
    fingerprint: Optional[str] = None   # of the variables after the user's code
    metrics: Dict[str, float] = field(default_factory=dict)
    seconds: Optional[float] = None
    success: Optional[bool] = None
    run: Optional[int] = None
    verdict: Optional["Verdict"] = None  # noqa: F821 -- verdict.Verdict
    notes: List[str] = field(default_factory=list)  # compile changes, why the cache was not used...
    restored: Optional[object] = None  # snapshot.Restored: variables written, unchanged ones left alone

    @property
    def input_key(self) -> str:
        return self.inputs.key

    def record(self, env: dict) -> dict:
        """The ledger line for this run."""
        import datetime as _dt

        record = {"time": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                  "model": self.model, "seed": self.seed, "snapshot": self.snapshot_fingerprint,
                  "snapshot_name": self.snapshot, "inputs": dict(self.inputs.parts),
                  "input_key": self.input_key, "result": self.fingerprint, "metrics": self.metrics,
                  "seconds": round(self.seconds or 0.0, 3), "env": dict(env)}
        if self.inputs.opaque:
            record["opaque"] = dict(self.inputs.opaque)
            record["reason"] = self.inputs.reason
        return record

    def __str__(self) -> str:
        state = {True: "done", False: "failed", None: "running"}[self.success]
        text = (f"repro_fit {state}: {self.model}, seed {self.seed}, from snapshot "
                f"'{self.snapshot}' ({self.snapshot_fingerprint[:12]})")
        if self.fingerprint:
            text += f" -> {self.fingerprint[:12]} in {self.seconds:.2f} s"
        if self.verdict is not None:
            text += f"\n{self.verdict}"
        for note in self.notes:
            text += f"\n{note}"
        return text

    def _repr_pretty_(self, printer, cycle):
        printer.text(str(self))


class FitCalls:
    """Context manager: wraps ``model.fit`` on the instance, recording each call's inputs."""

    def __init__(self, model, inputs: Inputs, recipe, replay: Optional[Callable] = None):
        self.model, self.inputs, self.recipe = model, inputs, recipe
        self.calls: List[str] = []  # the input prefix of each call: "fit.", "fit[2]."...
        self.history = None
        self.replay = replay  # (arguments, observable) -> History to return instead of training, or None
        self.replayed = False

    def __enter__(self):
        original = self.model.fit
        signature = inspect.signature(original)
        variadic = next((p.name for p in signature.parameters.values() if p.kind is p.VAR_KEYWORD), None)

        def fit(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            arguments = dict(bound.arguments)
            prefix = "fit." if not self.calls else f"fit[{len(self.calls) + 1}]."
            self.calls.append(prefix)
            observable = add_fit_call(self.inputs, prefix, self.model, arguments, self.recipe)
            if self.replay is not None and len(self.calls) == 1:
                history = self.replay(arguments, observable)
                if history is not None:
                    self.history, self.replayed = history, True
                    return history
            self.history = self._train(original, arguments, variadic, prefix, observable)
            return self.history

        fit.__wrapped__ = original
        object.__setattr__(self.model, "fit", fit)
        return self

    def _train(self, original, arguments, variadic, prefix, observable):
        observed, sources = Observed(), {}
        try:
            for name in observable:
                try:
                    sources[prefix + name] = id(arguments[name])
                    arguments[name] = observed.wrap(name, arguments[name])
                except Unfingerprintable as error:
                    self.inputs.opaque[prefix + name] = f"{prefix + name} {error.reason}"
                    sources.pop(prefix + name)
            extra = arguments.pop(variadic, None) or {} if variadic else {}
            history = original(**arguments, **extra)
        finally:
            observed.close()
        params = getattr(history, "params", None) or {}
        steps = params.get("steps")
        steps = steps * len(getattr(history, "epoch", []) or []) if steps else None
        for name, fingerprint in observed.fingerprints(steps).items():
            self.inputs.observed(sources[prefix + name], prefix + name, fingerprint)
        return history

    def __exit__(self, *exc):
        object.__delattr__(self.model, "fit")
        return False

    @property
    def metrics(self) -> Dict[str, float]:
        history = getattr(self.history, "history", None) or {}
        return {name: float(values[-1]) for name, values in history.items() if len(values)}
