"""One fit, as it runs: the report it fills in, and the wrapper that watches ``model.fit``.

While the user's code runs, ``model.fit`` is wrapped (on the instance only, and put back
afterwards). Each call's inputs are fingerprinted before it trains (``run/inputs.py``); data
that cannot be hashed beforehand is handed to Keras through ``run/observed.py`` and
fingerprinted as it is read; the History it returns is kept. The policy around a fit
(restore, record, verdict, cache, trials) is ``run/session.py``'s.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

from ..errors import Unfingerprintable
from .inputs import DATA_ARGUMENTS, IGNORED_ARGUMENTS, Inputs, add_fit_call
from .observed import Observed
from . import environment
from .divergence import EPOCH_DIGITS
from ..model.snapshot import model_fingerprint


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
    history: Dict[str, List[float]] = field(default_factory=dict)  # per epoch, of the last fit call
    epochs: List[str] = field(default_factory=list)  # the variables' fingerprint at each epoch's end (run/divergence.py)
    sketch: List[str] = field(default_factory=list)  # a few values of each variable at the end (run/divergence.py)
    batches: List[List[str]] = field(default_factory=list)  # on demand (--batches): per batch, of each epoch
    parameters: Dict[str, object] = field(default_factory=dict)  # fit arguments and compile settings, by name
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
        if self.history:
            record["history"] = self.history
        if self.epochs:
            record["epochs"] = self.epochs
        if self.sketch:
            record["sketch"] = self.sketch
        if self.batches:
            record["batches"] = self.batches
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

    def _repr_html_(self) -> str:
        from html import escape

        state = {True: "done", False: "failed", None: "running"}[self.success]
        head = (f"<b>repro_fit {state}</b>: {escape(self.model)}, seed {self.seed}, from snapshot "
                f"'{escape(self.snapshot)}' (<code>{escape(self.snapshot_fingerprint[:12])}</code>)")
        if self.fingerprint:
            head += f" → <code>{escape(self.fingerprint[:12])}</code> in {self.seconds:.2f} s"
        parts = [f"<div>{head}</div>"]
        if self.verdict is not None:
            parts.append(self.verdict._repr_html_())
        if self.metrics:
            parts.append("<div>" + ", ".join(f"{escape(k)} <code>{v:.6g}</code>" for k, v in self.metrics.items())
                         + "</div>")
        parts += [f"<div style='color:#9a6700'>{escape(note)}</div>" for note in self.notes]
        return f"<div class='repro-fit' style='line-height:1.6'>{''.join(parts)}</div>"

    def fingerprints(self) -> Optional[dict]:
        """What a notebook keeps of this fit (its output's metadata, saved in the .ipynb):
        the inputs and result fingerprints and where it ran, under the ledger's key names,
        so that ``pytest --repro`` and ``jupyter-repro check`` can compare a later run with
        it. Nothing that changes between identical reruns (times, run numbers), so
        rerunning a reproducible notebook leaves this metadata as it was. None while the
        fit has no result."""
        if self.fingerprint is None:
            return None
        facts = self.verdict.record.get("env") if self.verdict is not None else None
        saved = {"model": self.model, "seed": self.seed, "snapshot": self.snapshot_fingerprint,
                 "input_key": self.input_key, "inputs": dict(self.inputs.parts), "result": self.fingerprint,
                 "env": environment.summary(facts or environment.collect())}
        for name in ("metrics", "epochs", "sketch", "batches"):  # how far a later run is, when its bits differ
            if getattr(self, name):
                saved[name] = getattr(self, name)
        if self.inputs.opaque:
            saved["opaque"], saved["reason"] = dict(self.inputs.opaque), self.inputs.reason
        return saved

    def _repr_mimebundle_(self, include=None, exclude=None):
        """Only metadata: IPython's ``DisplayFormatter.format`` takes the formats this
        bundle leaves out (text/plain, text/html) from the other ``_repr_*_`` methods and
        keeps this metadata beside them in the cell's output, where the .ipynb saves it."""
        saved = self.fingerprints()
        return {}, ({METADATA_KEY: saved} if saved is not None else {})


def _epoch_callback(into: List[str], batches: Optional[List[List[str]]] = None,
                    last: Optional[Callable[[object], None]] = None):
    """A Keras callback appending the fingerprint of every variable at each epoch's end to
    ``into``; and, given ``batches``, after every batch, one list per epoch. The last
    planned epoch's is a whole ``StateRead`` (digests and witness too), handed to ``last``:
    where nothing writes after it, it is the run's result, and the state is read once."""
    import keras

    from ..model.state_read import read_state

    class EpochFingerprints(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            if last is not None:
                last(None)  # an earlier fit's read: let go before this one's steps write

        def on_epoch_begin(self, epoch, logs=None):
            if batches is not None:
                batches.append([])

        def on_train_batch_end(self, batch, logs=None):
            if batches is not None:
                sync = getattr(self.model, "jax_state_sync", None)  # JAX keeps the state apart between epochs
                if sync is not None:
                    sync()
                batches[-1].append(model_fingerprint(self.model)[:EPOCH_DIGITS])

        def on_epoch_end(self, epoch, logs=None):
            if last is not None and epoch + 1 >= (self.params or {}).get("epochs", 0):
                read = read_state(self.model)
                last(read)
                into.append(read.fingerprint[:EPOCH_DIGITS])
                return
            into.append(model_fingerprint(self.model)[:EPOCH_DIGITS])

    return EpochFingerprints()


#: The key of a fit's fingerprints in its output's metadata (``FitReport.fingerprints``).
METADATA_KEY = "jupyter_repro"


class FitCalls:
    """Context manager: wraps ``model.fit`` on the instance, recording each call's inputs."""

    def __init__(self, model, inputs: Inputs, recipe, replay: Optional[Callable] = None, batches: bool = False,
                 on_built: Optional[Callable[[], None]] = None):
        self.model, self.inputs, self.recipe = model, inputs, recipe
        self.on_built = on_built  # called once the first fit call has built the model, before it trains
        self.batches = batches  # also fingerprint the variables after every batch (the finer look, on demand)
        self.batch_fingerprints: List[List[str]] = []
        self.calls: List[str] = []  # the input prefix of each call: "fit.", "fit[2]."...
        self.arguments: List[dict] = []  # each call's arguments other than data (epochs, batch_size...)
        self.history = None
        self.replay = replay  # (arguments, observable) -> History to return instead of training, or None
        self.replayed = False
        self.epoch_fingerprints: List[str] = []  # of the last fit call that trained
        self.last_read = None  # the state as the last planned epoch left it (``model/state_read.py``)

    def __enter__(self):
        original = self.model.fit
        signature = inspect.signature(original)
        variadic = next((p.name for p in signature.parameters.values() if p.kind is p.VAR_KEYWORD), None)

        def fit(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            given = set(bound.arguments)  # Keras gets these only, as the user wrote them
            bound.apply_defaults()
            arguments = dict(bound.arguments)
            prefix = "fit." if not self.calls else f"fit[{len(self.calls) + 1}]."
            self.calls.append(prefix)
            self.arguments.append({k: v for k, v in arguments.items()
                                   if k not in DATA_ARGUMENTS and k not in IGNORED_ARGUMENTS and k != variadic})
            if variadic:
                self.arguments[-1].update(arguments.get(variadic) or {})
            if self.on_built is not None:
                self._build(arguments)
            observable = add_fit_call(self.inputs, prefix, self.model, arguments, self.recipe)
            if self.replay is not None and len(self.calls) == 1:
                history = self.replay(arguments, observable)
                if history is not None:
                    self.history, self.replayed = history, True
                    return history
            self.history = self._train(original, arguments, variadic, prefix, observable, given)
            return self.history

        fit.__wrapped__ = original
        object.__setattr__(self.model, "fit", fit)
        return self

    def _train(self, original, arguments, variadic, prefix, observable, given):
        observed, sources = Observed(), {}
        try:
            for name in observable:
                try:
                    sources[prefix + name] = id(arguments[name])
                    arguments[name] = observed.wrap(name, arguments[name])
                except Unfingerprintable as error:
                    self.inputs.opaque[prefix + name] = f"{prefix + name} {error.reason}"
                    sources.pop(prefix + name)
            self.epoch_fingerprints, self.batch_fingerprints = [], []
            callbacks = arguments.get("callbacks")
            if callbacks is None or isinstance(callbacks, (list, tuple)):  # fingerprinted above, as the user gave them
                arguments["callbacks"] = [*(callbacks or ()), _epoch_callback(
                    self.epoch_fingerprints, self.batch_fingerprints if self.batches else None, self._last)]
                given = given | {"callbacks"}
            extra = arguments.pop(variadic, None) or {} if variadic else {}
            history = original(**{k: v for k, v in arguments.items() if k in given}, **extra)
        finally:
            observed.close()
        params = getattr(history, "params", None) or {}
        steps = params.get("steps")
        steps = steps * len(getattr(history, "epoch", []) or []) if steps else None
        for name, fingerprint in observed.fingerprints(steps).items():
            self.inputs.observed(sources[prefix + name], prefix + name, fingerprint)
        return history

    def _last(self, read) -> None:
        self.last_read = read

    def _build(self, arguments) -> None:
        """Build the model from the first batch's shapes, as Keras's own symbolic build does
        (TensorFlow defers it into the first step, where no callback can see the state
        before training), then call ``on_built`` once. No data is consumed: arrays by a
        one-row slice, a ``tf.data`` pipeline by its element spec; a generator or a
        ``PyDataset`` cannot be looked at without reading it, and Keras builds the model as usual."""
        on_built, self.on_built = self.on_built, None
        batch = _first_batch(arguments.get("x"), arguments.get("y"))
        if batch is None:
            return
        from ..model.distribution import strategy_scope

        try:
            with strategy_scope(self.model):
                self.model._symbolic_build(data_batch=batch)
        except (ValueError, TypeError, RuntimeError, NotImplementedError):  # Keras then builds in its first step,
            return                                                          # as it would have: the run says why
        on_built()

    def __exit__(self, *exc):
        object.__delattr__(self.model, "fit")
        return False

    @property
    def metrics(self) -> Dict[str, float]:
        history = getattr(self.history, "history", None) or {}
        return {name: float(values[-1]) for name, values in history.items() if len(values)}

    @property
    def epochs(self) -> Dict[str, List[float]]:
        """Every metric per epoch (the last fit call's), for the ledger and the loss curves."""
        history = getattr(self.history, "history", None) or {}
        return {name: [float(v) for v in values] for name, values in history.items() if len(values)}

    @property
    def parameters(self) -> Dict[str, object]:
        """What a tracker shows as the run's parameters: each fit call's arguments other
        than data (data and callbacks are inputs, by fingerprint) and the compile settings."""
        found = {prefix + name: value for prefix, arguments in zip(self.calls, self.arguments)
                 for name, value in arguments.items()}
        found.update(self.recipe.parameters())
        return found


def _first_batch(x, y):
    """What Keras's ``_symbolic_build`` needs of the data: values or specs with a shape and
    a dtype per input (``(x, y)``), or None where only reading it would tell."""
    import keras

    def rows(value):
        if value is None:
            return None
        if isinstance(value, dict):
            return {k: rows(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(rows(v) for v in value)
        if hasattr(value, "shape") and hasattr(value, "dtype") and len(value.shape):
            return value[:1]
        raise TypeError(type(value).__name__)

    if hasattr(x, "element_spec"):  # tf.data: the spec is (x, y) or (x, y, sample_weight)
        return x.element_spec if isinstance(x.element_spec, tuple) else (x.element_spec,)
    if isinstance(x, keras.utils.PyDataset):  # reading a batch could draw from its RNGs: Keras builds it
        return None
    try:
        return rows(x), rows(y)
    except TypeError:  # a generator, or data Keras alone knows how to read
        return None
