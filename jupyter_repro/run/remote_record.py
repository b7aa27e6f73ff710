"""A trial that ran on a worker, recorded in the notebook's ledger as if it ran here.

The ledger line is the one the in-kernel trial writes (``FitReport.record``), with the
worker's environment in place of the kernel's and the worker's address beside it; its
verdict compares it with every earlier run of the same inputs, wherever that ran, so a
trial that gives other bits on a worker than in the notebook is named, with what differs.
Under ``--cache`` the trained state enters the store exactly as an in-kernel trial's does,
so a later ``--cache`` revisit (in the kernel, or on the cluster) replays it.
"""
from __future__ import annotations

import os
from typing import List

import numpy as np

from ..store.quota import OverCap, unwritable


def record_remote(session, report, result: dict, cache: bool) -> None:
    """Append the ledger line of ``report`` (a worker's trial); store its state under ``--cache``."""
    from .environment import Environment
    from .session import _whoami
    from .verdict import decide

    ledger = session.ledger
    if ledger is None:
        return
    record = report.record(Environment(result["env"]))
    record.update(id=os.urandom(8).hex(), by=_whoami(), worker=result["worker"])
    try:
        records = ledger.records()
        if cache and result.get("storable") and report.inputs.comparable:
            _store(session, report, result, record)
        verdict = decide(record, records, session.signer.verifies)
        same = verdict.earlier["run"] if verdict.earlier and verdict.status != "first" else None
        record.update(verdict=verdict.status, same_inputs_as=same)
        report.verdict = verdict
        verdict.record = ledger.append(session.signer.sign(record))
    except OSError as error:
        report.notes.append(f"⚠ this trial was not recorded: {unwritable(session.store, error)}")
        return
    report.run = verdict.record["run"]


def _store(session, report, result: dict, record: dict) -> None:
    from .cache import StateCache

    cache = StateCache(session.store, session.cache_max_bytes, session.signer, keep=session._saved.values())
    held = _Held(result["state"], result["optimizer_state"])
    history = _History(report.history, result.get("params") or {}, result.get("epoch") or [])
    try:
        cache.save(report.fingerprint, held, history, report.inputs.key)
        record["state"] = True
    except OverCap as error:
        report.notes.append(f"cache: {error}")


class _Variable:
    """An array where ``StateCache.save`` reads a variable: path, shape, dtype, bytes."""

    def __init__(self, path: str, array: np.ndarray):
        self.path, self.value = path, array
        self.shape, self.dtype = array.shape, array.dtype

    def __array__(self, dtype=None, copy=None):
        return self.value


class _Held:
    """A model as ``StateCache.save`` reads one: the variables a worker trained, and its optimizer's."""

    def __init__(self, state: List[np.ndarray], optimizer_state: List[np.ndarray]):
        self.variables = [_Variable(f"model/{i}", a) for i, a in enumerate(state)]
        self.optimizer = _Optimizer([_Variable(f"optimizer/{i}", a) for i, a in enumerate(optimizer_state)])


class _Optimizer:
    def __init__(self, variables):
        self.variables, self.built = variables, bool(variables)


class _History:
    def __init__(self, history: dict, params: dict, epoch: list):
        self.history, self.params, self.epoch = history, params, epoch
