"""A reproducible training session: the policy of every run, in plain Python.

``Session`` owns what a run goes through, in this order: check the model against its
snapshot, take the inputs (``run/inputs.py``), restore the snapshot with a fresh optimizer
built from the compile settings the model has *now*, reseed, run the user's code
(watching ``model.fit``), fingerprint the result, decide the verdict (``run/verdict.py``),
record it in the ledger, store or replay the state (``run/cache.py``). The magics and
scripts are thin callers::

    from jupyter_repro import Session

    session = Session(seed=42, store=".repro")
    session.snapshot(model)
    report = session.fit(model, lambda: model.fit(X, y, epochs=20, verbose=0))
    print(report.verdict)      # run #2: same inputs as run #1 (12:04) → identical ✓

A script's fit function counts by its code, closure and the globals it reads; a
notebook cell by its code and the notebook names it reads (``source=``, ``namespace=``).

A team store (``Session(store="s3://bucket/prefix")``, or ``team_store=`` beside a local
``store``) shares ``cache=True`` results between installations, signed and verified
(``run/sharing.py``); ``.repro/`` stays the local store and the copy of what was fetched.

``listeners`` hear of each run as it goes (an experiment tracker, ``tracking.py``), each
method optional: ``run_started(report)`` before the model is restored,
``run_finished(report, error)`` after the run is recorded (``error`` None) or did not
finish; ``trials_started(seeds)`` and ``trials_finished(frame, error)`` around trials.
"""
from __future__ import annotations

import contextlib
import os
import time
import weakref
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from ..errors import DistributionError, ReproError, Unfingerprintable
from ..model import distribution
from ..store.quota import DEFAULT_CAP, DiskQuota, OverCap, owner_of, touch, unwritable, validate_cap
from ..seeding.seeder import Seeder, validate_seed


class Session:
    """Seed, snapshots, fits, trials, ledger and cache of one interpreter."""

    def __init__(self, seed: Optional[int] = None, deterministic: bool = True, store: Optional[str] = ".repro",
                 cache_max_bytes: int = DEFAULT_CAP, seeder: Optional[Seeder] = None, signer=None,
                 listeners: Sequence[object] = (), snapshot_memory_max_bytes: int = 64 * 2**20,
                 portable=False, team_store: str = "", trust_file: Optional[str] = None,
                 key_file: Optional[str] = None, team_timeout: float = 2.0, team_options: Optional[dict] = None):
        self.seeder = seeder or Seeder()
        #: ``portable.PortableReport`` once the portable mode is asked for (``portable=True``: the
        #: AVX floor; or a floor's name, ``"avx2"``)
        self.portable = self.make_portable(None if portable is True else portable) if portable else None
        self.listeners = list(listeners)
        #: the trust file (None: repro-trust.json in the working folder or a parent), the ed25519
        #: key file (None: the Jupyter data dir's, or $JUPYTER_REPRO_KEY_FILE), the team store's bound
        self.trust_file, self.key_file, self.team_timeout = trust_file, key_file, team_timeout
        self.team_options = dict(team_options or {})  # fsspec storage options (an endpoint, credentials)
        self.team_publish = True  # False: results wait in .repro/team-held/ (check publishes those its kernels agree on)
        self._team_stores: Dict[tuple, object] = {}  # the TeamStores opened, kept: one found down stays down
        self._team = None  # this run's run/sharing.Sharing
        self.team_store = team_store  # before store: a URL given as the store sets it
        self.store = store
        self.cache_max_bytes = cache_max_bytes
        #: a snapshot up to this size is also kept in memory; a larger one only in its mapped file
        self.snapshot_memory_max_bytes = snapshot_memory_max_bytes
        self._signer = signer
        self.snapshots: Dict[str, object] = {}
        self._saved: Dict[str, str] = {}  # snapshot name -> its file in the store, marked used by each fit
        self._compiled: Dict[int, tuple] = {}  # id(model) -> (model, optimizer, compile config, recipe), weakly
        self._left: Dict[int, tuple] = {}  # id(model) -> (model weakly, digest of each variable as last left)
        self._loads = None  # model.weight_loads.WeightLoads, made with the first snapshot
        if seed is not None:
            self.seed(seed, deterministic)

    # -- seed -------------------------------------------------------------------
    def make_portable(self, floor: Optional[str] = None):
        """Pin the math libraries to ``floor`` (``None``: the x86-64 AVX floor; ``"avx2"``)
        where it still takes effect (``seeding/portable.py``); a report of what was set and
        what came too late."""
        from ..seeding.portable import apply

        self.portable = apply(floor_name=floor)
        return self.portable

    def seed(self, seed, deterministic: bool = True):
        """Seed every RNG (now, or when its library is imported) and set determinism."""
        return self.seeder.seed_everything(seed, deterministic)

    @property
    def signer(self):
        if self._signer is None:
            from ..store.signing import Signer

            self._signer = Signer()
        return self._signer

    @property
    def store(self) -> Optional[str]:
        """The local store (``.repro``): ledger, snapshots, states. Set to a URL, it sets
        ``team_store`` to it, and the local store to ``.repro``; set back to a path, it turns
        that team store off again (one named as ``team_store`` stays)."""
        return self._store

    @store.setter
    def store(self, value) -> None:
        from ..store.team import is_url

        if is_url(value):
            self.team_store, value = value, ".repro"
            self._team_from_store = True
        elif getattr(self, "_team_from_store", False):  # a path after a URL: the URL's sharing ends too
            self.team_store = ""
        self._store = value

    @property
    def team_store(self) -> str:
        """The team store's URL ("": none)."""
        return self._team_store

    @team_store.setter
    def team_store(self, value) -> None:
        self._team_store, self._team_from_store = value or "", False  # named itself: a local store keeps it
        if self._team_store:  # opened now: a missing package is said at once, and its client warms up meanwhile
            self._opened(self._team_store, self.team_timeout, self.team_options)

    def _opened(self, where: str, timeout: float, options: dict):
        from ..store.team import TeamStore

        key = (where, timeout, repr(sorted(options.items())))
        if key not in self._team_stores:
            self._team_stores[key] = TeamStore(where, timeout, options)
        return self._team_stores[key]

    def team_sharing(self):
        """The team store as a run sees it (``run/sharing.py``): ``ReproError`` for a
        missing package or a bad trust file, before anything of the run is touched."""
        from ..store import keys, trust
        from . import bits_class, environment
        from .sharing import Sharing

        identity = keys.Identity(self.key_file)
        trusted = trust.Trust.load(self.trust_file or trust.find("."), own=identity.public)
        remote = self._opened(self.team_store, self.team_timeout, self.team_options)
        mirror = self._opened(str(Path(self.store).resolve() / "team"), 60.0, {})
        held = None if self.team_publish else Path(self.store).resolve() / "team-held"
        return Sharing(remote, mirror, identity, trusted, bits_class.facts(environment.collect(), self._floor()), held)

    def _floor(self) -> str:
        """The portable mode's floor when every pin is in force, else ""."""
        from ..seeding.portable import FLOOR_PINS, FLOORS

        report = self.portable
        if report is None or not report.complete or report.backend not in FLOORS:
            return ""
        return FLOOR_PINS[report.floor].description.split(" (")[0]

    @property
    def cache_max_bytes(self) -> int:
        """The cap on the store's snapshots and cached states together (``store/quota.py``)."""
        return self._cache_max_bytes

    @cache_max_bytes.setter
    def cache_max_bytes(self, value) -> None:
        self._cache_max_bytes = validate_cap(value)

    @property
    def ledger(self):
        from .ledger import Ledger

        return Ledger(self.store) if self.store else None

    # -- snapshots --------------------------------------------------------------
    def snapshot(self, model, name: Optional[str] = None, variable: Optional[str] = None):
        """Register ``model``'s current state as the one each fit starts from, and save it.

        A state up to ``snapshot_memory_max_bytes`` is also kept in memory; a larger one
        is restored from its stored file, memory-mapped, so RAM holds the weights once.
        """
        from ..model.snapshot import Snapshot, require_model

        _require_name(name, "the snapshot's name")
        _require_name(variable, "the model's variable name")
        require_model(model, repr(name or variable or "model"), built=False)
        if not _built(model):  # a subclassed model not called yet: taken at its first build
            return self._pending(model, name or variable or "model", variable)
        snapshot = Snapshot.capture(model, name or variable or "model", digests=not self.store,
                                    memory_max_bytes=self.snapshot_memory_max_bytes if self.store else None)
        snapshot.variable = variable or snapshot.name
        snapshot.status = self._persist(snapshot, model)
        self.snapshots[snapshot.name] = snapshot
        self._remember_compile(model, snapshot.recipe)
        self._remember_left(model)
        snapshot.state_digests = self._left_for(model)
        return snapshot

    def _pending(self, model, name: str, variable: Optional[str]):
        """A ``PendingSnapshot`` of ``model``, which has no variables yet (``model/pending.py``)."""
        from ..model.pending import PendingSnapshot
        from ..model.snapshot import CompileRecipe

        snapshot = PendingSnapshot(name, CompileRecipe.of(model), variable or name)
        self.snapshots[name] = snapshot
        self._remember_compile(model, snapshot.recipe)
        return snapshot

    def _complete(self, model, pending, report) -> None:
        """Take ``pending`` now that the fit built ``model``, before its first step: the
        run's start, and the state every later fit restores."""
        snapshot = self.snapshot(model, pending.name, pending.variable)
        report.snapshot_fingerprint = snapshot.fingerprint
        report.inputs.parts["snapshot"] = snapshot.fingerprint
        report.inputs.opaque.pop("snapshot", None)
        report.notes.append(f"snapshot '{snapshot.name}' taken at the model's build in this fit, before any "
                            f"training step ({snapshot.fingerprint[:12]}): {snapshot.status}")

    def _remember_left(self, model, read=None) -> None:
        """What ``model``'s variables hold now, as a snapshot or a run left them (``read``:
        their ``StateRead`` if it was just taken): a later difference was made by the
        notebook (``model_state.UserChanges``). The read's witness is kept with it, so the
        next fit need not hash what nothing wrote since."""
        from ..model.model_state import optimizer_steps
        from ..model.state_read import read_state
        from ..model.weight_loads import WeightLoads

        read = read or read_state(model)
        self._left[id(model)] = (_weak(model, self._left), read.digests, optimizer_steps(model), read)
        if self._loads is None:
            self._loads = WeightLoads()
        self._loads.watch(model)
        self._loads.forget(model)

    def close(self) -> None:
        """Undo what the session put on the user's models (the ``load_weights`` watch)."""
        if self._loads is not None:
            self._loads.close()

    def _left_for(self, model):
        known = self._left.get(id(model))
        return known[1] if known is not None and known[0]() is model else None

    def _left_read(self, model):
        known = self._left.get(id(model))
        return known[3] if known is not None and known[0]() is model else None

    def _let_go(self, model) -> None:
        """Drop the buffers the last read holds before writing every variable (TensorFlow
        would otherwise keep each old buffer beside the new one)."""
        read = self._left_read(model)
        if read is not None:
            read.release()

    def _trained_since(self, model) -> bool:
        """True when ``model``'s optimizer took steps since the snapshot or its last run:
        trained outside ``%%repro_fit`` (then its weights are the fit's, not the notebook's).
        A step count that ``load_weights`` set, and nothing moved on since, is a load."""
        from ..model.model_state import optimizer_steps

        known, now = self._left.get(id(model)), optimizer_steps(model)
        if known is None or known[0]() is not model or now is None or now == known[2]:
            return False
        load = self._loads.since_last_run(model) if self._loads is not None else None
        return load is None or load.steps != now

    def snapshot_for(self, name: Optional[str] = None):
        """The snapshot called ``name`` (or taken of the variable ``name``); the only one if None."""
        _require_name(name, "a snapshot's name")
        if not self.snapshots:
            raise ReproError("no snapshot registered: run %repro_snapshot MODEL after compiling it")
        if name is None:
            if len(self.snapshots) > 1:
                raise ReproError(f"several snapshots ({', '.join(self.snapshots)}): name one, "
                                 "e.g. %%repro_fit " + next(iter(self.snapshots)))
            return next(iter(self.snapshots.values()))
        if name in self.snapshots:
            return self.snapshots[name]
        matches = [s for s in self.snapshots.values() if s.variable == name]
        if not matches:
            raise ReproError(f"no snapshot for '{name}': run %repro_snapshot {name} after compiling it")
        return matches[-1]

    def _persist(self, snapshot, model) -> str:
        """Save ``snapshot`` under the store's cap (streamed from ``model``, one variable
        at a time) unless the same content is stored already, which is verified without
        copying it; say how it compares with the one saved under its name before. A store
        that cannot be written costs only the copy on disk: the snapshot is registered all
        the same (in memory, whatever its size), and the status says so."""
        from ..model.snapshot import read_variables

        if not self.store:
            return "kept in memory (no store)"
        try:
            return self._save(snapshot, model)
        except OverCap as error:
            status = f"{error}; registered for this session only"
        except OSError as error:
            status = f"⚠ not saved: {unwritable(self.store, error)}; registered for this session only"
        if snapshot.kept is None and snapshot.file is None:  # too big for memory, but there is nowhere else
            snapshot.kept = read_variables(model)
        return status

    def _save(self, snapshot, model) -> str:
        from ..store.snapshot_store import LEGACY, CorruptSnapshot, SnapshotStore

        store = SnapshotStore(self.store)
        found = store.lookup(snapshot.name, snapshot.fingerprint)  # a damaged file of this content is not "saved"
        saved, same, damaged = found.manifests, found.same(snapshot.fingerprint), found.damaged
        if same and same[-1].get("format") != LEGACY and damaged is None:
            try:  # verified by hashing the mapped pages: nothing copied
                snapshot.attach(store.open(same[-1]), keep_copy=snapshot.kept is not None)
            except CorruptSnapshot as error:  # damaged, or evicted by another kernel meanwhile
                damaged = str(error)  # not the exception: its traceback would keep the damaged file open
            else:
                self._saved[snapshot.name] = same[-1]["manifest"]
                touch(same[-1]["manifest"], marker=True)
                when = time.strftime("%Y-%m-%d %H:%M", time.localtime(same[-1]["created"]))
                return f"matches the snapshot saved under '{snapshot.name}' on {when} ✓"
        manifest = self._write(store, snapshot, model)
        if damaged is not None:
            return f"{damaged}; saved a fresh copy"
        if same:  # the same content, stored by jupyter-repro 0.1 (.bin + .json): verified, stored anew
            try:
                store.verify(same[-1])
            except CorruptSnapshot as error:
                return f"{error}; saved a fresh copy as {manifest['data']}"
            return (f"matches the snapshot saved under '{snapshot.name}' by an earlier version ✓; stored anew "
                    f"as {manifest['data']} (its old .bin and .json files can be deleted)")
        if saved:
            return (f"⚠ differs from the snapshot saved earlier under '{snapshot.name}' "
                    f"({saved[-1]['fingerprint'][:12]}); both are kept: {manifest['data']}")
        return f"saved to {manifest['manifest']}"

    def _write(self, store, snapshot, model) -> dict:
        """Store ``snapshot`` (from its copy, or straight from the model's variables) under
        the cap, and restore from the file from now on."""
        from ..store.tensorfile import TensorFile
        from ..values.tensors import host_view

        variables = model.variables
        read = snapshot.kept.__getitem__ if snapshot.kept is not None else (lambda i: host_view(variables[i]))
        quota = DiskQuota(self.store, self.cache_max_bytes, keep=self._saved.values(),  # in use: not evicted
                          owner=owner_of(self.signer))  # nor another installation's states
        with quota.admit(snapshot.nbytes, f"snapshot '{snapshot.name}'"):
            manifest = store.save(snapshot.name, snapshot.fingerprint, snapshot.specs, read)
            stored = TensorFile(manifest["manifest"]).trust()  # opened under the lock: no eviction in between
        self._saved[snapshot.name] = manifest["manifest"]
        snapshot.attach(stored, keep_copy=snapshot.kept is not None)
        return manifest

    # -- compile settings -------------------------------------------------------
    def _remember_compile(self, model, recipe) -> None:
        """What ``model`` is compiled with now, and by whom: a later ``compile`` by the
        user replaces these objects, which is how ``recipe_for`` tells."""
        refs = tuple(_weak(o) for o in _compiled_with(model))
        self._compiled[id(model)] = (refs, _held_ids(model), recipe)

    def recipe_for(self, model, snapshot):
        """The compile settings a fit uses: the model's as they are now (a ``compile`` after
        the snapshot counts), each time with a brand-new optimizer; and what differs from
        the snapshot's, for the report."""
        from ..model.snapshot import CompileRecipe

        known = self._compiled.get(id(model))
        current = _compiled_with(model)
        if known is not None and all(ref() is obj for ref, obj in zip(known[0], current)) \
                and known[1] == _held_ids(model):
            recipe = known[2]
        else:
            recipe = CompileRecipe.of(model)
        return recipe, recipe.differences(snapshot.recipe)

    # -- fit ----------------------------------------------------------------------
    def fit(self, model, body: Callable[[], object], **options):
        """Restore, reseed, run ``body`` (which trains ``model``), record; a ``FitReport``.

        ``body`` counts by its code, closure and the globals it reads, unless ``source``
        and ``namespace`` name the notebook cell it runs. Options as for ``running``.
        """
        with self.running(model, code=body, **options) as report:
            body()
        return report

    @contextlib.contextmanager
    def running(self, model, *, code: Optional[Callable] = None, source: Optional[str] = None,
                namespace: Optional[dict] = None, hidden: Sequence[str] = (), snapshot=None,
                seed: Optional[int] = None, cache: bool = False, verify: bool = False,
                label: Optional[str] = None, state: Optional[List] = None, batches: bool = False):
        """Context manager: the model restored and reseeded inside, the run recorded after.

        ``source``/``namespace``: the notebook cell that runs inside and the names it reads;
        else ``code``, the function that runs inside. With neither, the code is unknown
        and the run is "not compared". ``cache``: replay a stored result for the same
        inputs instead of training; ``verify``: train anyway and compare. ``state``: initial
        variables other than the snapshot's (a seed trial's). ``batches``: also fingerprint
        the variables after every batch, so a difference is placed to the batch (the finer
        look, on demand: one hash of every variable per step). What the block raises is
        raised again after the model's ``fit`` is put back; a run that did not finish is
        not recorded.
        """
        from .fit import FitCalls
        from .observed import FilesRead

        snapshot = snapshot or self.snapshot_for(label)
        if _pending(snapshot) and _built(model):  # built since %repro_snapshot (called on a batch): take it now
            if snapshot.missed:  # built by a fit that could not take it: its weights are trained
                raise ReproError(f"'{snapshot.name}' was built and trained by a fit that could not take its snapshot "
                                 f"(its data is read only as it trains): create the model again, call it on one "
                                 f"batch, then run %repro_snapshot {snapshot.variable}")
            snapshot = self.snapshot(model, snapshot.name, snapshot.variable)
        seed = self._checked(model, snapshot, seed, cache, verify, label, state)
        recipe, compile_changes = self.recipe_for(model, snapshot)
        report = self._take_inputs(model, snapshot, seed, label, state, code, source, namespace, hidden)
        keep, same = self._users_state(model, snapshot, report.inputs, report, trial=state is not None)
        self._tell("run_started", report)
        try:
            started = time.perf_counter()
            report.restored = self._restore(model, snapshot, state, recipe, keep, seed, same)
            if compile_changes:
                report.notes.append("compiled with the model's current settings, not the snapshot's: "
                                    + "; ".join(compile_changes))
            ledger = self.ledger
            replayer = self._replayer(ledger, report.inputs, model, verify) if cache and not _pending(snapshot) else None
            built = (lambda: self._complete(model, snapshot, report)) if _pending(snapshot) else None
            if cache and built is not None:
                report.notes.append("cache: the snapshot is taken at this fit's build, so this fit trains")
            with self.seeder.paused(), FitCalls(model, report.inputs, recipe, replay=replayer, batches=batches,
                                                on_built=built) as calls, FilesRead() as files:
                with _timed(report, started):
                    yield report
            self._fingerprint(model, report, calls, files)
            _missed(snapshot, model)
            if calls.replayed and recipe.held:
                report.notes.append(f"replayed: the model's variables; {', '.join(recipe.held)} start anew at the next "
                                    "fit as always, and are new now (their steps and moments are not stored)")
            if ledger is not None:  # read after the fit: nothing extra is held while it trains
                self._record(report, ledger, calls, replayer, model)
        except BaseException as error:  # the listeners hear of it, then it goes on as it was
            _missed(snapshot, model)
            self._stopped(model, report, error)
            raise
        self._tell("run_finished", report, None)

    # -- the steps of a run, in order -------------------------------------------------
    def _checked(self, model, snapshot, seed, cache: bool, verify: bool, label, state=None) -> int:
        """The run's seed; refuses, before anything is touched, what cannot run."""
        from ..model.snapshot import require_model

        seed = self.seeder.seed if seed is None else seed
        if seed is None:
            raise ReproError("no seed: run %repro_seed 42 first, or pass --seed 42")
        seed = validate_seed(seed)
        if (cache or verify) and not self.store:
            raise ReproError("--cache needs a store: set %config ReproMagics.store = '.repro'")
        if verify and not cache:
            raise ReproError("--verify goes with --cache: %%repro_fit --cache --verify")
        if cache and distribution.processes()[0] > 1:  # each process decides from its own store: they could disagree
            raise DistributionError(f"--cache in a run of {distribution.processes()[0]} processes: every process must train "
                                    "(one replaying while another trains would wait for it forever); drop --cache")
        if _pending(snapshot):
            require_model(model, repr(label or snapshot.variable), built=False)
            if state is not None:
                raise ReproError(f"'{snapshot.name}' has no variables yet: run one %%repro_fit first (it takes "
                                 "the snapshot at the model's build), then the trials")
            return seed
        require_model(model, repr(label or snapshot.variable))
        snapshot.check(model)
        self._team = self.team_sharing() if cache and self.team_store else None
        return seed

    def _take_inputs(self, model, snapshot, seed, label, state, code, source, namespace, hidden):
        """A ``FitReport`` whose inputs hold what is known before the run: the initial
        state, the seed, the layout, and the cell's code with the notebook names it reads."""
        from ..values.arrays import fingerprint_arrays
        from ..values.fingerprint import fingerprint_value
        from .fit import FitReport
        from .inputs import add_cell, add_function

        start = snapshot.fingerprint if state is None else fingerprint_arrays(
            (str(i), a) for i, a in enumerate(state))
        report = FitReport(label or snapshot.variable, seed, snapshot.name, start or "not built yet")
        inputs = report.inputs
        inputs.parts.update(snapshot=start, seed=str(seed))
        if start is None:  # a pending snapshot: its part comes at the build (``_complete``)
            del inputs.parts["snapshot"]
            inputs.opaque["snapshot"] = ("the model was not built by a model.fit in this cell, so its initial "
                                         "state was not taken: call it on a batch, then run %repro_snapshot again")
        placed = distribution.layout(model)  # processes, mesh, where each variable lives: a different layout is another input
        if placed is not None:
            inputs.parts["distribution"] = fingerprint_value(placed)
        exclude = {id(model): "the model trained"}
        exclude.update((id(v), f"the model's variable {i}") for i, v in enumerate(model.variables))
        if source is not None:
            add_cell(inputs, source, namespace or {}, hidden, exclude)
        elif code is not None:
            add_function(inputs, code, exclude)
        else:
            inputs.opaque["cell"] = "the code run is not known (pass a function to Session.fit)"
        return report

    def _restore(self, model, snapshot, state, recipe, keep, seed, same=None):
        """The snapshot (or a trial's ``state``) back in the model, but for ``keep`` (and
        what the last read's witness vouches for: ``same``), with a fresh optimizer from
        ``recipe``; every generator reseeded. What was written."""
        left = self._left_read(model)
        if _pending(snapshot):  # nothing to put back: a fresh compile, then the build comes in the fit
            from ..model.distribution import strategy_scope
            from ..model.snapshot import Restored

            with strategy_scope(model):
                recipe.compile(model)
            self._remember_compile(model, recipe)
            self.seeder.reseed(seed)
            return Restored()
        restored = snapshot.restore(model, state, recipe, keep, left, same)  # checks first: raises before touching anything
        touch(self._saved.get(snapshot.name), marker=True)  # in use: evicted last
        self._remember_compile(model, recipe)
        self.seeder.reseed(seed)
        return restored

    def _fingerprint(self, model, report, calls, files) -> None:
        """What the run produced: the result's fingerprint, per-epoch fingerprints, the
        weights' sketch, metrics; for a loop of its own, the files it read count as inputs."""
        from ..model.state_read import read_state
        from ..values.tensors import host_view
        from .divergence import sketch

        read = calls.last_read  # taken at the last epoch's end: it stands if nothing wrote since
        if read is None or not read.still(model.variables):
            read = read_state(model)
        calls.last_read = None
        report.fingerprint = read.fingerprint
        self._remember_left(model, read)
        report.metrics, report.history, report.parameters = calls.metrics, calls.epochs, calls.parameters
        report.epochs = list(calls.epoch_fingerprints)
        report.batches = [list(epoch) for epoch in calls.batch_fingerprints]
        report.sketch = sketch(host_view(v) for v in model.variables)
        if not calls.calls:  # a training loop of its own: what it read from disk counts too
            try:
                report.inputs.parts.update(files.fingerprints())
            except Unfingerprintable as error:
                report.inputs.opaque["files"] = error.reason
            report.notes.append("no model.fit in the cell: its inputs are its code, the notebook "
                                f"values it reads and the files it opened ({len(files.paths)})")

    def _stopped(self, model, report, error) -> None:
        """A run that raised: what it trained before it stopped is the fit's, not the notebook's."""
        from ..model.model_state import optimizer_steps

        steps = optimizer_steps(model)
        if steps is not None and steps[1] > 0:  # it trained before it stopped: what it changed is the fit's
            self._remember_left(model)          # (raised before any step: what the notebook set stays its own)
        self._tell("run_finished", report, error)

    def _users_state(self, model, snapshot, inputs, report, trial: bool) -> tuple:
        """The model's state that is the notebook's, not the fit's (``model/model_state.py``):
        its preprocessing layers' state, and the variables it changed since the last run;
        each an input by content, never written by the restore. ``id`` of those variables,
        and for each variable whether the last read's witness vouches that nothing wrote it
        since (``model/state_read.py``), or None where it was not asked."""
        from ..model.model_state import UserChanges, preprocessing_fingerprint, preprocessing_variables

        if _pending(snapshot):
            return frozenset(), None
        keep = preprocessing_variables(model)
        try:
            state = preprocessing_fingerprint(model)
        except Unfingerprintable as error:
            inputs.opaque["preprocessing"] = f"preprocessing: {error.reason}"
        else:
            if state is not None:
                inputs.parts["preprocessing"] = state
        if trial:  # a seed trial starts from its own state, whole
            return keep, None
        if self._trained_since(model):  # a model.fit outside %%repro_fit: its changes are a fit's
            report.notes.append("the model was trained outside %%repro_fit since the last run: every variable "
                                "was restored from the snapshot")
            return keep, None
        load = self._loads.since_last_run(model) if self._loads is not None else None
        origin = getattr(snapshot, "state_digests", None)
        left, read = self._left_for(model), self._left_read(model)
        same = read.unchanged(model.variables) if read is not None and left is not None else None
        # a load is the notebook's change even where it wrote the bytes the last run left (a checkpoint
        # of its last epoch): then every variable unlike the snapshot's is kept
        changes = UserChanges(model, origin if load is not None else left, origin,
                              same=None if load is not None else same)
        if changes:
            inputs.parts["user changes"] = changes.fingerprint()
            report.notes.append(changes.note(load.name if load is not None else None))
            keep = keep | changes.ids()
        return keep, same

    def _tell(self, event: str, *args) -> None:
        for listener in self.listeners:
            method = getattr(listener, event, None)
            if method is not None:
                method(*args)

    def _replayer(self, ledger, inputs, model, verify):
        from .cache import Replayer, StateCache

        cache = StateCache(self.store, self.cache_max_bytes, self.signer, keep=self._saved.values())
        return Replayer(cache, ledger, inputs, model, verify, sharing=self._team)

    def _record(self, report, ledger, calls, replayer, model) -> None:
        """Decide the verdict, store the state for ``--cache``, write the ledger line. A
        store that cannot be written (read-only, full, a bad path) costs the record, never
        the fit: the model stays as trained and the report says in one line that the run
        was not recorded."""
        from . import environment

        record = report.record(environment.collect())
        record.update(id=os.urandom(8).hex(), by=_whoami())
        count, index = distribution.processes()
        if count > 1:
            record["process"] = index  # each process records its own runs
        try:
            verdict = self._decide(record, ledger, calls, replayer)
            unstored = None if calls.replayed else self._store_state(report, record, calls, replayer, model)
            same = verdict.earlier["run"] if verdict.earlier and verdict.status != "first" else None
            record.update(verdict=verdict.status, same_inputs_as=same)  # a first run's "earlier" had other inputs
            if verdict.changed_inputs:
                record["changed_since"] = {"run": verdict.earlier["run"], "inputs": verdict.changed_inputs}
            report.verdict = verdict
            verdict.record = ledger.append(self.signer.sign(record))
        except OSError as error:
            report.notes.append(f"⚠ this run was not recorded: {unwritable(self.store, error)}; "
                                "the model is as the cell left it")
            return
        report.run = verdict.record["run"]
        if unstored is not None:
            replayer.note = f"⚠ cache: the result's state was not stored: {unwritable(self.store, unstored)}"
        if replayer is not None and not calls.replayed and replayer.note:
            report.notes.append(replayer.note)
        if replayer is not None and replayer.shared:
            report.notes.append(replayer.shared)

    def _decide(self, record, ledger, calls, replayer):
        """The verdict: replayed from the cache, or compared with the runs recorded before."""
        from .verdict import Verdict, decide

        if calls.replayed:
            if replayer.source.get("team"):  # computed by another installation: who, when, in which class
                record["computed_by"] = {k: replayer.source.get(k) for k in ("computed_by", "time", "mode", "signer")}
            else:
                record["cached_from"] = replayer.source["run"]
            return Verdict("cached", record, replayer.source)
        return decide(record, ledger.records(), self.signer.verifies)

    def _store_state(self, report, record, calls, replayer, model) -> Optional[OSError]:
        """Under ``--cache``, the trained state stored for the next run with these inputs
        (one ``fit`` whose inputs are all known by content); why it could not be written."""
        if replayer is None or replayer.refused is not None or len(calls.calls) != 1 or not report.inputs.comparable:
            return None
        try:
            manifest = replayer.cache.save(report.fingerprint, model, calls.history, report.inputs.key)
            record["state"] = True
            replayer.share(manifest, report, record)
        except OverCap as error:
            replayer.note = f"cache: {error}"
        except OSError as error:
            return error
        return None

    # -- trials -------------------------------------------------------------------
    def trials(self, model, body: Callable[[], object], seeds: Sequence[int],
               metrics: Callable[[], Dict[str, object]] = dict, progress: Callable[[object], None] = print,
               metric_names: Sequence[str] = (), client=None, **fit_options):
        """Run the fit once per seed, each from the model's own initializers under that
        seed (the session seed's from the snapshot); a DataFrame per seed with mean, std,
        min and max. The model then holds the session seed's result (the last trial's if
        the session seed is not among ``seeds``). ``metrics()`` gives the values to collect,
        those of ``metric_names``: each must be set by the cell (``source=``) or be in
        ``namespace=``, checked before any trial runs. ``client``: run them on a Dask
        cluster instead (a ``Client``, ``"local"`` or a scheduler address;
        ``run/cluster_trials.py``), the same table back. ``progress`` hears a
        ``TrialProgress`` at each change (``run/trial_progress.py``; its str is a line)."""
        from ..model.snapshot import assign_variables, read_variables
        from .trial_progress import Tracker
        from .trials import checked_seeds, initial_state, require_metrics, trial_row, trials_frame

        seeds = checked_seeds(seeds)
        require_metrics(metric_names, fit_options.get("source"), fit_options.get("namespace"))
        snapshot = fit_options.pop("snapshot", None) or self.snapshot_for(fit_options.get("label"))
        if _pending(snapshot):
            raise ReproError(f"'{snapshot.name}' has no variables yet: run one %%repro_fit first (it takes "
                             "the snapshot at the model's build), then the trials")
        if client is not None:
            return self._cluster_trials(model, body, metrics, seeds, metric_names, snapshot, progress, client,
                                        fit_options)
        session_seed = self.seeder.seed
        rows, session_state, runs = [], None, {}
        tracker = Tracker(progress, len(seeds))  # progress hears TrialProgress events (run/trial_progress.py)
        self._tell("trials_started", list(seeds))
        try:
            for number, seed in enumerate(seeds, 1):
                tracker.started(f"trial {number}/{len(seeds)}: seed {seed}", running=1)
                state = None if seed == session_seed else initial_state(model, snapshot, seed)
                report = self.fit(model, body, snapshot=snapshot, seed=seed, state=state, **fit_options)
                rows.append(trial_row(seed, report.metrics, metrics()))
                runs[seed] = {"result": report.fingerprint, "where": "kernel", "arithmetic": "",
                              "seconds": report.seconds, "run": report.run}
                tracker.finished(rows[-1], "    " + ", ".join(f"{k} {v:.6g}" for k, v in rows[-1].items()
                                                              if k != "seed") + f" ({report.seconds:.1f} s)", 0)
                if seed == session_seed:
                    session_state = read_variables(model)
        except BaseException as error:
            tracker.stopped(f"stopped: {tracker.done} of {len(seeds)} trials finished")
            self._tell("trials_finished", None, error)
            raise
        if session_state is not None and seeds[-1] != session_seed:
            self._let_go(model)
            assign_variables(model, session_state)  # the model holds the session seed's result
            self._remember_left(model)  # as a run left it: not a change of the notebook's
        frame = trials_frame(rows)
        frame.attrs["runs"] = runs  # per seed: the result's fingerprint and where it ran, as on a cluster
        self._tell("trials_finished", frame, None)
        return frame

    def _cluster_trials(self, model, body, metrics, seeds, metric_names, snapshot, progress, client, options):
        """``trials`` on a Dask cluster (``run/cluster_trials.py``); refuses what it cannot run."""
        from .cluster_trials import ClusterTrials, refuse

        refuse(options)
        self._checked(model, snapshot, seeds[0], options.get("cache", False), False, options.get("label"))
        return ClusterTrials(self, client, progress).run(
            model, seeds, metric_names, snapshot, options.get("source"), options.get("namespace"),
            options.get("hidden", ()), cache=options.get("cache", False), label=options.get("label"),
            body=body, metrics=metrics)


@contextlib.contextmanager
def _timed(report, started: float):
    """``report.seconds`` since ``started`` and ``report.success``, however the block ends."""
    success = False
    try:
        yield
        success = True
    finally:
        report.seconds, report.success = time.perf_counter() - started, success


def _require_name(name, what: str) -> None:
    if name is not None and not isinstance(name, str):
        raise ReproError(f"{what} must be a string, not {type(name).__name__} ({str(name)[:40]!r})")


def _built(model) -> bool:
    """Keras has built ``model``'s weights: a subclassed model not called yet may already
    hold a few variables (a Dropout's seed state), and gets its weights at its first batch."""
    return bool(model.trainable_variables) or bool(model.variables) and bool(getattr(model, "built", True))


def _missed(snapshot, model) -> None:
    """A pending snapshot whose fit built the model without taking it (a generator's data,
    a loop of its own): the model is trained now, so it can never be taken from it."""
    if _pending(snapshot) and _built(model):
        snapshot.missed = True


def _pending(snapshot) -> bool:
    return snapshot.fingerprint is None  # model.pending.PendingSnapshot: no variables yet


def _compiled_with(model) -> tuple:
    """What a ``compile`` call replaces: a later call by the user changes one of these."""
    from ..model.compile_call import WATCH

    return model, model.optimizer, getattr(model, "_compile_config", None), WATCH.recorded(model)


def _held_ids(model) -> frozenset:
    """The optimizers ``model`` holds, by ``id``: one added or replaced since the last
    compile the session saw is a compile setting changed (``recipe_for``)."""
    from ..model.compile_call import held_ids

    return held_ids(model)


def _weak(obj, entries: Optional[dict] = None):
    """A weak reference to ``obj``; with ``entries`` (keyed by ``id(obj)``), its entry goes
    when ``obj`` does: what the entry holds (a read's buffers) must not outlive the model."""
    if obj is None:
        return lambda: None
    key = id(obj)

    def gone(ref):
        if entries is not None and entries.get(key, (None,))[0] is ref:  # not a new object under a reused id
            del entries[key]
    try:
        return weakref.ref(obj, gone)
    except TypeError:
        return lambda: obj


def _whoami() -> str:
    import getpass  # with platform, 2-4 ms of the extension's load: only when a run is recorded
    import platform

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user name in this container
        user = "?"
    return f"{user}@{platform.node()}"


def reproducible_fit(model, snapshot, seed: int, seeder: Optional[Seeder] = None, label: str = "model"):
    """Context manager form of a fit for plain Python, recording nothing::

        with reproducible_fit(model, snapshot, seed=42) as run:
            model.fit(X, y, epochs=20)
        run.fingerprint   # XXH3-128 of every variable after training
    """
    return Session(seeder=seeder or Seeder(), store=None).running(model, snapshot=snapshot, seed=seed, label=label)
