"""IPython connectivity: the ``%repro_*`` magics, a thin layer over the core.

Configuration (an IPython profile's ``ipython_config.py`` / ``ipython_kernel_config.py``)::

    c.InteractiveShellApp.extensions = ["jupyter_repro"]
    c.ReproMagics.seed = 42             # seed at kernel start, before any import
    c.ReproMagics.deterministic = True  # op determinism (TensorFlow, JAX, PyTorch)
    c.ReproMagics.reseed_cells = True   # reseed from (seed, cell text) before every cell
    c.ReproMagics.store = ".repro"      # ledger and snapshots, beside the notebook ("" = off)
    c.ReproMagics.cache_max_bytes = 2**30  # cap on stored final states for --cache

or, in a running session, ``%config ReproMagics.seed = 42``.
"""
from __future__ import annotations

import contextlib
import time

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from traitlets import Bool, Int, TraitError, Unicode, observe, validate

from .errors import ReproError
from .ledger import Ledger, Verdict
from .seeding import Seeder, validate_seed

# The rest of the core (fit, snapshot, cache, store, trials, environment) imports NumPy;
# it is imported inside the magics that use it, so %load_ext at kernel start does not.


@contextlib.contextmanager
def _as_usage_error():
    """Core errors become a one-line ``UsageError`` (exactly that type: IPython
    prints no traceback only for it)."""
    try:
        yield
    except ReproError as error:
        raise UsageError(str(error)) from error


@magics_class
class ReproMagics(Magics):
    """Reproducible Keras training: ``%repro_seed``, ``%repro_snapshot``, ``%%repro_fit``."""

    seed = Int(None, allow_none=True, help=(
        "Session seed. Set in config, the extension seeds at load (kernel start), "
        "before any user import.")).tag(config=True)
    deterministic = Bool(True, help=(
        "Turn on the determinism switches when seeding: TensorFlow op determinism, JAX's "
        "XLA_FLAGS, PyTorch deterministic algorithms.")).tag(config=True)
    reseed_cells = Bool(True, help=(
        "Before every cell, reseed all RNGs from (seed, the cell's text), so a cell "
        "draws the same numbers whatever ran before it.")).tag(config=True)
    store = Unicode(".repro", help=(
        "Folder for the run ledger and saved snapshots, relative to the kernel's working "
        "directory (the notebook's folder). Empty: keep nothing on disk.")).tag(config=True)
    cache_max_bytes = Int(2**30, help=(
        "Size cap of the states kept for %%repro_fit --cache; the least recently used "
        "go first.")).tag(config=True)

    def __init__(self, shell=None, **kwargs):
        self.seeder = Seeder()  # before traitlets load config, which may seed
        self.snapshots = {}
        super().__init__(shell=shell, **kwargs)
        self.seeder.reseed_cells = self.reseed_cells

    # -- options ----------------------------------------------------------------
    @validate("seed")
    def _valid_seed(self, proposal):
        if proposal.value is None:
            return None
        try:
            return validate_seed(proposal.value)
        except ReproError as error:
            raise TraitError(str(error)) from error

    @observe("seed", "deterministic")
    def _seed_changed(self, change):
        if self.seed is not None and (self.seeder.seed, self.seeder.deterministic) != (
                self.seed, self.deterministic):
            self.seeder.seed_everything(self.seed, self.deterministic)

    @observe("reseed_cells")
    def _reseed_cells_changed(self, change):
        self.seeder.reseed_cells = change.new

    # -- events -----------------------------------------------------------------
    def pre_run_cell(self, info):
        self.seeder.reseed_for_cell(info.raw_cell or "")

    # -- magics -----------------------------------------------------------------
    @magic_arguments()
    @argument("seed", nargs="?", type=int, help="Session seed (default: the configured one).")
    @argument("--no-deterministic", action="store_true",
              help="Do not turn on the determinism switches (TensorFlow, JAX, PyTorch).")
    @line_magic
    def repro_seed(self, line):
        """Seed Python, NumPy, TensorFlow, Keras, JAX and PyTorch; libraries not imported
        yet are seeded the moment they are. Returns a report of what was set."""
        args = parse_argstring(self.repro_seed, line)
        seed = self.seed if args.seed is None else args.seed
        if seed is None:
            raise UsageError("no seed given or configured: use %repro_seed 42")
        with _as_usage_error():
            report = self.seeder.seed_everything(seed, not args.no_deterministic)
        self.deterministic = self.seeder.deterministic
        self.seed = self.seeder.seed
        return report

    @magic_arguments()
    @argument("model", help="Name of a compiled Keras model in the notebook.")
    @argument("--name", help="Register the snapshot under this name (default: MODEL).")
    @line_magic
    def repro_snapshot(self, line):
        """Register MODEL's current state (every variable, and its compile settings)
        as the state each ``%%repro_fit`` starts from."""
        from .snapshot import Snapshot

        args = parse_argstring(self.repro_snapshot, line)
        model = self._user_variable(args.model)
        with _as_usage_error():
            snapshot = Snapshot.capture(model, args.name or args.model)
        snapshot.variable = args.model
        snapshot.status = self._persist(snapshot)
        self.snapshots[snapshot.name] = snapshot
        return snapshot

    @magic_arguments()
    @argument("model", nargs="?", help="The model (or snapshot name); optional with one snapshot.")
    @argument("--seed", type=int, help="Seed for this fit (default: the session seed).")
    @argument("--trials", type=int, help="Run the cell once per seed: the session seed and the N-1 after it.")
    @argument("--seeds", help="Seeds for the trials, comma-separated, e.g. 1,2,3.")
    @argument("--metric", action="append", default=[],
              help="A variable the cell sets (e.g. test_rmse), collected per trial; repeatable.")
    @argument("--cache", action="store_true",
              help="Skip training when an earlier run with the same inputs stored its result.")
    @argument("--verify", action="store_true", help="With --cache: train anyway and compare with the stored result.")
    @cell_magic
    def repro_fit(self, line, cell):
        """Reseed, restore the snapshot, recompile with a fresh optimizer, then run
        the cell: the same inputs give the same weights, to the bit."""
        args = parse_argstring(self.repro_fit, line)
        snapshot = self._snapshot_for(args.model)
        model = self._user_variable(snapshot.variable)
        seed = self.seeder.seed if args.seed is None else args.seed
        if seed is None:
            raise UsageError("no seed: run %repro_seed 42 first, or pass --seed 42")
        if (args.cache or args.verify) and not self.store:
            raise UsageError("--cache needs a store: set %config ReproMagics.store = '.repro'")
        if args.verify and not args.cache:
            raise UsageError("--verify goes with --cache: %%repro_fit --cache --verify")
        if args.trials is None and args.seeds is None:
            if args.metric:
                raise UsageError("--metric goes with --trials N or --seeds 1,2,3")
            return self._fit_once(model, snapshot, seed, self._body(cell), args)
        from .trials import trial_seeds

        with _as_usage_error():
            seeds = trial_seeds(seed, args.trials, args.seeds)
        return self._trials(model, snapshot, seed, seeds, self._body(cell), args)

    def _body(self, cell):
        """The fit cell compiled, or a UsageError before the model is touched."""
        from .cell import AwaitInBody, Body

        try:
            return Body(self.shell, cell)
        except AwaitInBody as error:
            raise UsageError(str(error)) from error
        except Exception as error:  # a SyntaxError, or what an input transformer raised
            self.shell.showtraceback()
            raise UsageError(f"the fit cell does not compile ({type(error).__name__}); "
                             "nothing was run: fix it and run it again") from error

    def _fit_once(self, model, snapshot, seed, body, args, state=None):
        from .cache import Replayer, StateCache
        from .fit import FitCalls, finish_fit, start_fit

        started = time.perf_counter()
        with _as_usage_error():
            report = start_fit(model, snapshot, seed, self.seeder, label=snapshot.variable, source=body.cell, state=state)
        ledger = self._ledger
        cache = StateCache(self.store, self.cache_max_bytes) if args.cache else None
        replayer = Replayer(cache, ledger, report, model, args.verify) if cache else None
        with self.seeder.paused(), FitCalls(model, replay=replayer) as calls:
            error = body.run()
        finish_fit(model, report, started, error is None, calls)
        if error is not None:
            raise UsageError(f"the fit cell did not finish ({type(error).__name__}); "
                             "run it again: it restarts from the snapshot")
        if ledger is not None:  # read after the fit: nothing extra is held while it trains
            self._record(report, ledger, ledger.records(), calls, replayer, cache, model)
        return report

    def _record(self, report, ledger, records, calls, replayer, cache, model):
        from . import environment

        record = report.record(environment.collect())
        if calls.replayed:
            verdict = Verdict("cached", record, replayer.source)
            record["cached_from"] = replayer.source["run"]
        else:
            verdict = ledger.verdict(record, records)
            if cache is not None and replayer.refused is None and len(calls.calls) == 1:
                cache.save(report.fingerprint, model, calls.history)
                record["state"] = True
        record.update(verdict=verdict.status, same_inputs_as=verdict.earlier and verdict.earlier["run"])
        verdict.record = ledger.append(record)
        report.run, report.verdict = verdict.record["run"], verdict
        report.note = replayer.note if replayer is not None and not calls.replayed else None

    def _trials(self, model, snapshot, session_seed, seeds, body, args):
        from .snapshot import assign_variables, read_variables
        from .trials import initial_state, trial_row, trials_frame

        rows, session_state = [], None
        for number, seed in enumerate(seeds, 1):
            print(f"trial {number}/{len(seeds)}: seed {seed}", flush=True)
            with _as_usage_error():
                state = None if seed == session_seed else initial_state(model, snapshot, seed)
            report = self._fit_once(model, snapshot, seed, body, args, state)
            with _as_usage_error():
                rows.append(trial_row(seed, report.metrics,
                                      {name: self.shell.user_ns.get(name) for name in args.metric}))
            print("    " + ", ".join(f"{k} {v:.6g}" for k, v in rows[-1].items() if k != "seed")
                  + f" ({report.seconds:.1f} s)", flush=True)
            if seed == session_seed:
                session_state = read_variables(model)
        if session_state is not None and seeds[-1] != session_seed:
            assign_variables(model, session_state)  # the model holds the session seed's result
        return trials_frame(rows)

    @magic_arguments()
    @argument("--model", help="Only the runs of this model.")
    @argument("--last", type=int, help="Only the last N runs.")
    @line_magic
    def repro_history(self, line):
        """The recorded runs as a DataFrame: inputs and result fingerprints, verdict, metrics."""
        from .ledger import history_frame

        args = parse_argstring(self.repro_history, line)
        if self._ledger is None:
            raise UsageError("no ledger: ReproMagics.store is empty; set it, e.g. %config ReproMagics.store = '.repro'")
        return history_frame(self._ledger.records(), args.model, args.last)

    @line_magic
    def repro_env(self, line):
        """Versions, devices and determinism flags a result depends on."""
        from . import environment

        if line.strip():
            raise UsageError("%repro_env takes no arguments")
        return environment.collect()

    # -- helpers ----------------------------------------------------------------
    @property
    def _ledger(self):
        return Ledger(self.store) if self.store else None

    def _persist(self, snapshot) -> str:
        """Save ``snapshot``; say how it compares with the one saved under its name before."""
        from .store import CorruptSnapshot, SnapshotStore

        if not self.store:
            return "not saved (ReproMagics.store is empty)"
        store = SnapshotStore(self.store)
        saved = store.saved(snapshot.name)
        same = [m for m in saved if m.get("fingerprint") == snapshot.fingerprint]
        try:
            if same:
                store.load(same[-1])  # verify the bytes on disk, not only the manifest
                when = time.strftime("%Y-%m-%d %H:%M", time.localtime(same[-1]["created"]))
                return f"matches the snapshot saved under '{snapshot.name}' on {when} ✓"
        except CorruptSnapshot as error:
            store.save(snapshot.name, snapshot.fingerprint, snapshot.specs, snapshot.values)
            return f"{error}; saved a fresh copy"
        manifest = store.save(snapshot.name, snapshot.fingerprint, snapshot.specs, snapshot.values)
        if saved:
            return (f"⚠ differs from the snapshot saved earlier under '{snapshot.name}' "
                    f"({saved[-1]['fingerprint'][:12]}); both are kept: {manifest['data']}")
        return f"saved to {manifest['manifest']}"

    def _user_variable(self, name):
        namespace = self.shell.user_ns
        if name not in namespace:
            raise UsageError(f"name '{name}' is not defined in the notebook: define the model first")
        return namespace[name]

    def _snapshot_for(self, name):
        if not self.snapshots:
            raise UsageError("no snapshot registered: run %repro_snapshot MODEL after compiling it")
        if name is None:
            if len(self.snapshots) > 1:
                raise UsageError(f"several snapshots ({', '.join(self.snapshots)}): name one, "
                                 "e.g. %%repro_fit " + next(iter(self.snapshots)))
            return next(iter(self.snapshots.values()))
        if name in self.snapshots:
            return self.snapshots[name]
        matches = [s for s in self.snapshots.values() if s.variable == name]
        if not matches:
            raise UsageError(f"no snapshot for '{name}': run %repro_snapshot {name} after compiling it")
        return matches[-1]


def load(shell) -> ReproMagics:
    magics = ReproMagics(shell=shell)
    shell.register_magics(magics)
    shell.events.register("pre_run_cell", magics.pre_run_cell)
    return magics


def unload(shell, magics: ReproMagics) -> None:
    """Undo ``load`` exactly: event, import hook, magics, configurable."""
    shell.events.unregister("pre_run_cell", magics.pre_run_cell)
    magics.seeder.close()
    manager = shell.magics_manager
    for kind, table in magics.magics.items():
        for name in table:
            manager.magics[kind].pop(name, None)
    manager.registry.pop(type(magics).__name__, None)
    if magics in shell.configurables:
        shell.configurables.remove(magics)
