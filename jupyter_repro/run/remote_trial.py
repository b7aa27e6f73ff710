"""One seed trial as a plain function of what was shipped to it: what a Dask worker runs.

Nothing here knows of Dask or of the notebook's kernel. ``run_trial`` gets a ``Shipment``
(the architecture, the compile settings, the cell's code, the notebook values it reads and
their fingerprints, the thread settings and versions the notebook has), the seed and the
trial's initial state, and returns a plain dict: the result's fingerprint, metrics, the
inputs' parts, the worker's environment and arithmetic. It runs the same ``Session.fit``
the notebook runs, on a model rebuilt from its configuration, so a trial is restored,
reseeded, watched and fingerprinted exactly as the in-kernel trial is.

Before fitting it checks what it received: the versions (a worker with another Keras or
TensorFlow would compute other bits), every value by fingerprint, the model's variables by
shape and dtype, the initial state by fingerprint. Each trial starts clean: a fresh Keras
session (no graph, optimizer or random state of an earlier task) and a fresh seeder.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from ..errors import ReproError


class WorkerMismatch(ReproError):
    """A worker that cannot give the notebook's bits: another version, a missing package,
    a value that did not arrive as it was sent."""


@dataclass
class Shipment:
    """Everything a trial needs but its seed and initial state; the same for every trial."""

    model_class: type                   # by value when the notebook defined it (cloudpickle)
    config: dict                        # model.get_config()
    classes: Dict[str, type]            # notebook-defined classes the config names, by value
    recipe: object                      # model.snapshot.CompileRecipe: a fresh optimizer each trial
    specs: List[tuple]                  # the snapshot's (path, shape, dtype) of every variable
    variable: str                       # the model's name in the notebook
    snapshot: str                       # the snapshot's name
    source: str                         # the cell's code, as Python sees it
    fingerprints: Dict[str, str]        # notebook name -> fingerprint of the value sent
    values: Dict[str, object] = field(default_factory=dict)  # the small values (large ones scattered)
    kept: Dict[int, object] = field(default_factory=dict)    # variable index -> the notebook's (preprocessing)
    metric_names: List[str] = field(default_factory=list)
    deterministic: bool = True
    threads: Dict[str, int] = field(default_factory=dict)    # intra, inter (0: default), cpus
    versions: Dict[str, str] = field(default_factory=dict)   # what must be equal on the worker
    modules: List[str] = field(default_factory=list)         # what the worker must import
    return_state: List[int] = field(default_factory=list)    # seeds whose final state comes back
    cached: set = field(default_factory=set)                 # input keys the notebook's store has a result for


def run_trial(shipment: Shipment, large: Dict[str, object], seed: int, state: list,
              state_fingerprint: str) -> dict:
    """Fit ``seed`` from ``state``; a dict of what the notebook records (see module doc)."""
    from . import environment
    from .arithmetic import facts
    from .probe import differences, probe

    found = probe(shipment.modules)
    differing = differences(shipment.versions, found)
    if differing:
        raise WorkerMismatch(f"worker {where()} differs from the notebook: {differing}")
    threads = pin_threads(shipment.threads)
    model, session, snapshot = _fresh(shipment, seed, state, state_fingerprint)
    namespace = _namespace(shipment, large, model)
    code = compile(shipment.source, f"<repro_fit cell, seed {seed}>", "exec")
    try:
        report = session.fit(model, lambda: exec(code, namespace), source=shipment.source, namespace=namespace,
                             snapshot=snapshot, seed=seed, state=state, label=shipment.variable, cache=True)
    except _Stored:  # the notebook replays it from its store: nothing to train here
        return {"seed": seed, "replay": True, "worker": where()}
    result = {"seed": seed, "fingerprint": report.fingerprint, "metrics": report.metrics,
              "history": report.history, "epochs": report.epochs, "sketch": report.sketch,
              "parts": dict(report.inputs.parts), "opaque": dict(report.inputs.opaque),
              "seconds": report.seconds, "start": report.snapshot_fingerprint,
              "user": {name: _plain(namespace.get(name)) for name in shipment.metric_names},
              "env": dict(environment.collect()), "facts": facts(), "threads": threads,
              "parameters": dict(report.parameters), "worker": where()}
    if seed in shipment.return_state:
        result.update(_final_state(model, session.judge))
    return result


def _final_state(model, judge) -> dict:
    """The trained state (model and optimizer variables) and what ``--cache`` files with it;
    ``storable`` only where the kernel's own trial would have stored it (``run/cache.py``)."""
    from ..model.snapshot import read_arrays, read_variables

    optimizer = model.optimizer
    history = getattr(model, "history", None)
    return {"state": read_variables(model),
            "optimizer_state": read_arrays(optimizer.variables) if optimizer is not None and optimizer.built else [],
            "storable": judge.refused is None and judge.calls == 1,
            "params": {k: v for k, v in (getattr(history, "params", None) or {}).items()
                       if isinstance(v, (int, float, str))},
            "epoch": list(getattr(history, "epoch", []))}


class _Judge:
    """Stands where the kernel's ``cache.Replayer`` stands: never replays (a worker has no
    store), only says whether the kernel's trial could have stored this fit's result."""

    def __init__(self, inputs, cached=frozenset()):
        self.inputs, self.calls, self.refused, self.cached = inputs, 0, "no fit call", cached
        self.note = None

    def __call__(self, arguments: dict, observable):
        from .cache import refusal

        self.calls += 1
        if observable:
            self.refused = f"{observable[0]} is known only as the fit reads it"
        elif not self.inputs.comparable:
            self.refused = self.inputs.reason
        else:
            self.refused = refusal(arguments.get("callbacks"))
        if self.calls == 1 and self.refused is None and self.inputs.key in self.cached:
            raise _Stored(self.inputs.key)
        return None


class _Stored(Exception):
    """The first fit call's inputs have a result in the notebook's store."""


class _WorkerSession:
    """A ``Session`` that records nothing (the notebook records) and judges the cache."""

    @staticmethod
    def make(seeder, cached=frozenset()):
        from .session import Session

        class WorkerSession(Session):
            ledger = None  # the notebook's ledger records the trial

            def _checked(self, model, snapshot, seed, cache, verify, label, *rest):
                return super()._checked(model, snapshot, seed, False, False, label, *rest)

            def _replayer(self, ledger, inputs, model, verify):
                self.judge = _Judge(inputs, cached)
                return self.judge

        return WorkerSession(seeder=seeder, store=None)


def _fresh(shipment: Shipment, seed: int, state, state_fingerprint):
    """A clean Keras session, the model rebuilt and compiled, a fresh seeder; each checked."""
    import keras

    from ..model.snapshot import Snapshot, assign_variables, spec_list
    from ..seeding.seeder import Seeder
    from ..values.arrays import fingerprint_arrays

    _clear_session(keras)
    with keras.saving.custom_object_scope(shipment.classes):
        model = shipment.model_class.from_config(shipment.config)
    recipe = shipment.recipe
    model.compile(**dict(recipe.compile_kwargs, optimizer=recipe.new_optimizer()))
    built = [(tuple(shape), dtype) for _, shape, dtype in spec_list(model.variables)]
    if built != [(tuple(shape), dtype) for _, shape, dtype in shipment.specs]:
        raise WorkerMismatch(f"worker {where()}: the model rebuilt from its configuration does not have the "
                             "snapshot's variables; trials on a cluster need a Sequential or functional model")
    if fingerprint_arrays((str(i), a) for i, a in enumerate(state)) != state_fingerprint:
        raise WorkerMismatch(f"worker {where()}: the initial state did not arrive as it was sent")
    if shipment.kept:
        current = [v.numpy() for v in model.variables]
        assign_variables(model, [shipment.kept.get(i, value) for i, value in enumerate(current)])
    session = _WorkerSession.make(Seeder(), frozenset(shipment.cached))
    session.seeder.reseed_cells = False
    session.seeder.seed_everything(seed, shipment.deterministic)  # the run reseeds with it before the cell
    snapshot = Snapshot.capture(model, shipment.snapshot, digests=True)
    snapshot.variable = shipment.variable
    return model, session, snapshot


def _clear_session(keras) -> None:
    """Keras's global state reset, without the full garbage collection ``clear_session`` runs
    by default: over a worker's TensorFlow heap that took 0.2 s of CPU per trial (measured;
    about a tenth of the FD001 MLP's 2-epoch trial), and it frees memory, not state."""
    try:
        keras.backend.clear_session(free_memory=False)
    except TypeError:  # an older Keras: no such argument
        keras.backend.clear_session()


def _namespace(shipment: Shipment, large: Dict[str, object], model) -> dict:
    """The notebook values the cell reads, each checked against its fingerprint."""
    from ..values.fingerprint import fingerprint_value

    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    namespace.update(shipment.values)
    namespace.update(large)
    for name, expected in shipment.fingerprints.items():
        if name not in namespace:
            raise WorkerMismatch(f"worker {where()}: notebook value {name} did not arrive")
        got = fingerprint_value(namespace[name])
        if got != expected:
            raise WorkerMismatch(f"worker {where()}: notebook value {name} arrived as other bytes "
                                 f"({got[:12]}, sent {expected[:12]})")
    namespace[shipment.variable] = model
    return namespace


def pin_threads(threads: Dict[str, int]) -> Dict[str, int]:
    """TensorFlow's thread pools as the notebook's: a reduction split over another number of
    threads can sum in another order. The intra-op pool is pinned explicitly to the number
    of threads the notebook's has (its 0, TensorFlow's default, is the notebook's CPU count,
    which this worker's may not be); the inter-op pool (which runs independent operations
    side by side, each computed as it would be alone) as the notebook sets it. The counts in force."""
    if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        return {"cpus": cpus()}  # JAX and PyTorch: their pools are not pinned here
    import tensorflow as tf

    wanted = {"intra": int(threads.get("intra") or threads.get("cpus") or 0), "inter": int(threads.get("inter", 0))}
    setters = {"intra": tf.config.threading.set_intra_op_parallelism_threads,
               "inter": tf.config.threading.set_inter_op_parallelism_threads}
    getters = {"intra": tf.config.threading.get_intra_op_parallelism_threads,
               "inter": tf.config.threading.get_inter_op_parallelism_threads}
    for kind, number in wanted.items():
        if getters[kind]() != number:
            try:
                setters[kind](number)
            except RuntimeError as error:  # TensorFlow started in this worker with other pools
                raise WorkerMismatch(f"worker {where()}: TensorFlow's {kind}-op threads are "
                                     f"{getters[kind]()} and can no longer be set to {number} ({error}); "
                                     "restart the workers") from error
    return {kind: getters[kind]() for kind in wanted} | {"cpus": cpus()}


def cpus() -> int:
    """The CPUs this process may run on (TensorFlow's default pool size)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def where() -> str:
    """This worker's address, or ``pid N`` outside a Dask worker."""
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"pid {os.getpid()}"


def _plain(value):
    """A metric value the cell set, as a plain Python number where it is one."""
    import numpy as np

    if isinstance(value, np.ndarray) and value.size == 1:
        return value.item()
    if isinstance(value, np.generic):
        return value.item()
    return value
