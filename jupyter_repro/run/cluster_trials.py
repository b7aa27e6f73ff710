"""Seed trials handed to a Dask cluster, and the same rows back as in the kernel.

The kernel does what only it can: it takes each seed's initial state from the model's own
initializers (``trials.initial_state``, as the in-kernel trials do), packs the cell and
the values it reads (``run/shipment.py``), asks every worker for its versions, scatters
the large values once, and submits one task per seed (``run/remote_trial.run_trial``).
As each trial finishes it is recorded in the ledger (with the worker's environment, so a
verdict against an in-kernel run of the same inputs names what differs), its row joins the
table and, under ``--cache``, its final state enters the store for later revisits.

A worker lost mid-trial: Dask runs the task again on another, and the kernel records the
one result it gets. An interrupt: every unfinished trial is cancelled, none recorded.
Where the worker's arithmetic (``run/arithmetic.py``) differs from the notebook's, the
trial's row says so: its bits may differ for that reason alone.
"""
from __future__ import annotations

import os
import re
from typing import Callable, Dict, Sequence

from ..errors import ReproError
from .cluster import check_workers, connect
from .trial_progress import TrialProgress, Tracker

#: facts the portable mode makes irrelevant: with its pins on both sides, the CPU's own
#: instruction sets do not choose the code (``seeding/portable.py``)
PORTABLE_IGNORES = ("cpu", "cpu isa", "onednn isa")


#: fit options trials on a cluster cannot honour: why, and what to do instead
UNSUPPORTED = {
    "verify": "--verify (it trains again to compare with the stored result, in the kernel): drop --on to verify "
              "in the kernel, or drop --verify",
    "batches": "--batches (it fingerprints every batch in the kernel): drop --on to place a difference by batch, "
               "or drop --batches",
    "code": "code= (a compiled body; a worker runs the cell's source): pass source= and namespace=",
}


def refuse(options: dict) -> None:
    """A ``ReproError`` for what trials on a cluster cannot run, before anything is started
    or sent: an option of ``UNSUPPORTED``, or a cell with magics (no IPython on a worker)."""
    from .shipment import require_plain_python

    for name, why in UNSUPPORTED.items():
        if options.get(name):
            raise ReproError(f"trials on a cluster do not take {why}")
    require_plain_python(options.get("source") or "")


class ClusterTrials:
    """One ``--trials`` cell on a cluster: ``run`` returns the table ``Session.trials`` does."""

    def __init__(self, session, where, progress: Callable[[TrialProgress], None] = print):
        self.session, self.client, self.progress = session, connect(where), progress
        self.threads: Dict[str, int] = {}  # the notebook's TensorFlow pools (shipment.threads)
        self.tracker = Tracker(progress, 0)  # the counts, once trials are submitted (``_results``)
        self._running = 0

    def run(self, model, seeds: Sequence[int], metric_names: Sequence[str], snapshot, source: str,
            namespace: dict, hidden=(), cache: bool = False, label=None, body=None, metrics=dict):
        """The trials of ``seeds``; the model then holds the session seed's result. Under
        ``cache``, a trial whose inputs have a stored result is replayed here (``body``, the
        cell, and ``metrics()``, its values, as in-kernel trials take them), not trained."""
        from .shipment import pack
        from .trials import trials_frame

        if source is None:
            raise ReproError("trials on a cluster run a notebook cell: pass source= and namespace=")
        session, seed0 = self.session, self.session.seeder.seed
        if seed0 in seeds:
            _require_snapshot_state(session, model, snapshot)
        recipe, _ = session.recipe_for(model, snapshot)
        shipment, large = pack(model, snapshot, recipe, source, namespace, hidden, metric_names,
                               session.seeder.deterministic)
        shipment.return_state = list(seeds) if cache else [s for s in seeds if s == seed0]
        shipment.cached = _stored_keys(session) if cache else set()
        check_workers(self.client, shipment.versions, shipment.modules)
        self.threads = shipment.threads
        states = {}  # filled as each trial is submitted (``_states``): the first trials run meanwhile
        session._tell("trials_started", list(seeds))
        try:
            rows, runs, replays = self._collect(model, snapshot, shipment, large, seeds,
                                                self._states(model, snapshot, seeds, seed0, states), cache)
            for seed in sorted(replays, key=lambda s: s == seed0):  # the session seed's last: the model keeps it
                state = None if seed == seed0 else states[seed][0]
                rows[seed], runs[seed] = self._replay(model, body, metrics, seed, state, snapshot=snapshot,
                                                      source=source, namespace=namespace, hidden=hidden, label=label)
        except BaseException as error:
            session._tell("trials_finished", None, error)
            raise
        frame = trials_frame([rows[seed] for seed in seeds])
        frame.attrs["runs"] = {seed: runs[seed] for seed in seeds}
        differing = [seed for seed in seeds if runs[seed]["arithmetic"]]
        if differing:
            self.tracker.note(f"⚠ trials {', '.join(map(str, differing))} ran where the arithmetic differs from the "
                          "notebook's (see each row above): their bits can differ for that reason alone")
        session._tell("trials_finished", frame, None)
        return frame

    def _collect(self, model, snapshot, shipment, large, seeds, states, cache):
        """Rows and runs of the trials the cluster trained; the seeds it left to replay here."""
        here, seed0 = _arithmetic(), self.session.seeder.seed
        rows, runs, replays, held = {}, {}, [], None
        for result in self._results(shipment, large, seeds, states):
            seed = result["seed"]
            if result.get("replay"):
                replays.append(seed)
                self.tracker.finished(None, f"trial seed {seed}: a stored result has these inputs; replayed here",
                                      self._running)
                continue
            rows[seed], runs[seed] = self._finished(snapshot, result, here, cache)
            if seed == seed0:
                held = result["state"]
        if held is not None and seed0 not in replays:
            self._hold(model, held)
        return rows, runs, replays

    def _replay(self, model, body, metrics, seed, state, **options):
        """A trial with a stored result, replayed in the kernel as an in-kernel trial would be."""
        from .trials import trial_row

        report = self.session.fit(model, body, seed=seed, state=state, cache=True, **options)
        row = trial_row(seed, report.metrics, metrics())
        return row, {"result": report.fingerprint, "where": "kernel (replayed from the store)", "arithmetic": "",
                     "seconds": report.seconds, "run": report.run}

    def _states(self, model, snapshot, seeds, seed0, states: Dict[int, tuple]):
        """Each seed's initial state and its fingerprint, as the in-kernel trial starts from,
        taken as its trial is submitted (so the first trials run while the kernel takes the
        next); each also kept in ``states``."""
        from ..values.arrays import fingerprint_arrays
        from .trials import initial_state

        for seed in seeds:
            state = list(snapshot.values) if seed == seed0 else initial_state(model, snapshot, seed)
            states[seed] = (state, fingerprint_arrays((str(i), a) for i, a in enumerate(state)))
            yield seed, states[seed]

    def _results(self, shipment, large, seeds, states):
        """Each trial's result as it finishes; on an interrupt, every other one cancelled.
        ``states`` yields (seed, (state, fingerprint)) in submission order."""
        from distributed import as_completed

        from .remote_trial import run_trial

        client, total = self.client, len(seeds)
        token = os.urandom(4).hex()
        shipped = client.scatter(shipment, broadcast=True, hash=False)
        data = {name: client.scatter(value, broadcast=True, hash=True) for name, value in large.items()}
        workers = client.scheduler_info().get("workers", {})
        slots = sum(w.get("nthreads", 1) for w in workers.values()) or 1
        running = lambda done: min(slots, total - done)  # noqa: E731 -- each worker runs one trial at a time
        futures, done = [], 0
        finished = as_completed(loop=client.loop)
        self.tracker = tracker = Tracker(self.progress, total)
        try:
            for i, (seed, (state, fingerprint)) in enumerate(states):
                future = client.submit(run_trial, shipped, data, seed, state, fingerprint, pure=False,
                                       key=f"repro-trial-{seed}-{token}", priority=total - i)
                futures.append(future)
                finished.add(future)
                if i == 0:
                    tracker.started(f"{total} trials on {len(workers)} workers "
                                    f"({len(large)} values scattered once to each)", running(0))
            for future in finished:
                if future.status == "error":
                    error = future.exception()
                    tracker.failed_one(f"trial failed on the cluster: {type(error).__name__}: {error}")
                    raise error if isinstance(error, ReproError) else ReproError(
                        f"a trial failed on the cluster ({type(error).__name__}: {error})") from error
                result = future.result()
                done += 1
                self._running = running(done)
                yield result
        except BaseException:
            client.cancel(futures)
            tracker.stopped(f"stopped: {total - done} trials cancelled, {done} recorded")
            raise
        finally:
            client.cancel([shipped, *data.values()])

    def _finished(self, snapshot, result, here, cache):
        """Record one finished trial; its table row and its run (result, where, arithmetic)."""
        from .remote_record import record_remote
        from .trials import trial_row

        report = self._report(snapshot, result)
        differs = arithmetic_differs(here, result["facts"], self.threads, result["threads"])
        self.session._tell("run_started", report)  # a tracker logs it as the kernel's trials are logged
        record_remote(self.session, report, result, cache)
        self.session._tell("run_finished", report, None)
        row = trial_row(result["seed"], report.metrics, result["user"])
        where = result["worker"]
        self.tracker.finished(row, f"trial seed {result['seed']} on {where}: "
                              + ", ".join(f"{k} {v:.6g}" for k, v in row.items() if k != "seed")
                              + f" -> {report.fingerprint[:12]} ({report.seconds:.1f} s)" + _compared(report.verdict)
                              + (f" ⚠ arithmetic differs: {differs}" if differs else ""), self._running)
        return row, {"result": report.fingerprint, "where": where, "arithmetic": differs,
                     "seconds": report.seconds, "run": report.run}

    def _report(self, snapshot, result):
        """The worker's run as a ``FitReport`` the notebook's ledger takes."""
        from .fit import FitReport

        report = FitReport(snapshot.variable, result["seed"], snapshot.name, result["start"])
        report.inputs.parts.update(result["parts"])
        report.inputs.opaque.update(result["opaque"])
        report.fingerprint, report.metrics, report.history = result["fingerprint"], result["metrics"], result["history"]
        report.epochs, report.sketch = result["epochs"], result["sketch"]
        report.seconds, report.success = result["seconds"], True
        report.parameters = result.get("parameters", {})
        return report

    def _hold(self, model, state) -> None:
        from ..model.snapshot import assign_variables

        self.session._let_go(model)
        assign_variables(model, state)
        self.session._remember_left(model)


def _compared(verdict) -> str:
    """``"; identical to run #3"``: how the trial compares with an earlier run of its inputs."""
    if verdict is None or verdict.earlier is None or verdict.status not in ("identical", "differs"):
        return ""
    return f"; {'identical to' if verdict.status == 'identical' else '⚠ differs from'} run #{verdict.earlier['run']}"


def _stored_keys(session) -> set:
    """The input keys of this installation's runs whose result the store holds."""
    ledger = session.ledger
    records = ledger.records() if ledger is not None else []
    return {r["input_key"] for r in records if r.get("state") and not r.get("opaque") and session.signer.verifies(r)}


def _arithmetic() -> Dict[str, str]:
    from .arithmetic import facts

    return facts()


def _pins(fact: str) -> Dict[str, str]:
    """The ``pins`` fact (``NAME=value, NAME=value``) as a mapping."""
    return dict(part.partition("=")[::2] for part in fact.split(", ") if "=" in part)


def arithmetic_differs(notebook: Dict[str, str], worker: Dict[str, str], notebook_threads=None,
                       worker_threads=None) -> str:
    """The arithmetic facts in which ``worker`` differs from ``notebook``, or "". With the
    portable mode's pins on both, the CPU's own instruction sets are left out. TensorFlow's
    pools count by the intra-op threads in force (0 is the CPU count), as a worker with
    another CPU count pins them to the notebook's (``remote_trial.pin_threads``)."""
    from ..seeding.portable import FLOOR_PINS

    held = [_pins(facts.get("pins", "")) for facts in (notebook, worker)]
    pinned = any(all(pins.get(name) == value for pins in held for name, value in floor.pins.items())
                 for floor in FLOOR_PINS.values())  # both at one floor (another floor's pins differ: named)
    notebook, worker = dict(notebook), dict(worker)
    if notebook_threads and worker_threads and "intra" in worker_threads:  # TensorFlow pinned
        for facts, threads in ((notebook, notebook_threads), (worker, worker_threads)):
            facts["threads"] = _TF_POOLS.sub("", facts.get("threads", ""))
            facts["tensorflow intra-op threads"] = str(threads.get("intra") or threads.get("cpus"))
    names = [name for name in notebook if not (pinned and name in PORTABLE_IGNORES)]
    return "; ".join(f"{name} {worker.get(name)} (notebook {notebook[name]})"
                     for name in names if worker.get(name) != notebook[name])


_TF_POOLS = re.compile(r"TensorFlow intra \d+ inter \d+ \(0: default\)")


def _require_snapshot_state(session, model, snapshot) -> None:
    """The session seed's trial starts from the snapshot on a worker: refuse a model whose
    variables the notebook changed since its last run (the kernel would keep those)."""
    from ..model.model_state import UserChanges

    if session._trained_since(model):
        return  # the kernel restores every variable from the snapshot too
    if UserChanges(model, session._left_for(model), getattr(snapshot, "state_digests", None)):
        raise ReproError("the notebook changed the model's variables since its last run; trials on a cluster "
                         "start the session seed's trial from the snapshot: run %repro_snapshot again first")
