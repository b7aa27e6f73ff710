"""IPython connectivity: the ``%repro_*`` magics, a thin layer over ``session.Session``.

They parse arguments, hand the cell and the notebook namespace to the core, and turn the
core's errors into a one-line ``UsageError``; every decision is the core's.

Configuration (an IPython profile's ``ipython_config.py`` / ``ipython_kernel_config.py``)::

    c.InteractiveShellApp.extensions = ["jupyter_repro"]
    c.ReproMagics.seed = 42             # seed at kernel start, before any import
    c.ReproMagics.portable = True       # same bits on every x86-64 CPU with AVX (TensorFlow, JAX, NumPy)
    c.ReproMagics.portable_floor = "avx"  # or "avx2": every CPU with AVX2 and FMA (Haswell, Zen and later)
    c.ReproMagics.deterministic = True  # op determinism (TensorFlow, JAX, PyTorch)
    c.ReproMagics.reseed_cells = True   # reseed from (seed, cell text) before every cell
    c.ReproMagics.store = ".repro"      # ledger and snapshots, beside the notebook ("" = off)
    c.ReproMagics.cache_max_bytes = 2**33  # cap on the store's snapshots and cached states
    c.ReproMagics.mlflow = True         # log each %%repro_fit as an MLflow run (jupyter-repro[mlflow])
    c.ReproMagics.snapshot_memory_max_bytes = 64 * 2**20  # larger snapshots stay only in their mapped file
    c.ReproMagics.team_store = "s3://bucket/prefix"  # share --cache results, signed (jupyter-repro[s3]; "" = off)
    c.ReproMagics.trust_file = "repro-trust.json"  # whose shared results replay ("" = found beside the notebook)
    c.ReproMagics.key_file = ""         # this installation's ed25519 key ("" = Jupyter data dir / $JUPYTER_REPRO_KEY_FILE)
    c.ReproMagics.team_timeout = 2.0    # seconds the team store may take to answer, once per session
    c.ReproMagics.cluster = "local"     # --trials on a Dask cluster: "local" or "tcp://scheduler:8786" (jupyter-repro[dask])

or, in a running session, ``%config ReproMagics.seed = 42``.
"""
from __future__ import annotations

import contextlib
import sys

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from traitlets import Bool, Float, Int, TraitError, Unicode, observe, validate

from .errors import ReproError
from .store.quota import DEFAULT_CAP, validate_cap
from .seeding.portable import UnknownFloor, floor
from .seeding.seeder import Seeder, validate_seed
from .run.session import Session

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


def _arguments(magic, line):
    """``parse_argstring``, with a line shlex cannot split (an unclosed quote) a ``UsageError`` too."""
    try:
        return parse_argstring(magic, line)
    except ValueError as error:
        raise UsageError(f"cannot read the options {line!r} ({error}): close the quote") from error


class _BodyFailed(Exception):
    """The fit cell's own code raised (already shown to the user)."""


@magics_class
class ReproMagics(Magics):
    """Reproducible Keras training: ``%repro_seed``, ``%repro_snapshot``, ``%%repro_fit``."""

    seed = Int(None, allow_none=True, help=(
        "Session seed. Set in config, the extension seeds at load (kernel start), "
        "before any user import.")).tag(config=True)
    portable = Bool(False, help=(
        "Pin oneDNN, XLA (on JAX), OpenBLAS, NumPy's SIMD dispatch and glibc's math to the x86-64 AVX "
        "floor, so fits give the same bits on every x86-64 CPU with AVX (jupyter_repro/seeding/portable.py; "
        "TensorFlow and JAX: PyTorch is reported not portable). "
        "Set in config (or by install-kernel --portable, which also sets them in the kernel's env), it "
        "takes effect at kernel start; set later, a pin whose library is loaded is reported too late."
        )).tag(config=True)
    portable_floor = Unicode("avx", help=(
        "The portable mode's floor: avx (every x86-64 CPU with AVX) or avx2 (x86-64-v3: AVX2 and FMA, "
        "Haswell, Zen and later; a fleet's CPUs all at or above it get the same bits, and run faster)."
        )).tag(config=True)
    deterministic = Bool(True, help=(
        "Turn on the determinism switches when seeding: TensorFlow op determinism, JAX's "
        "XLA_FLAGS, PyTorch deterministic algorithms. False turns them off.")).tag(config=True)
    reseed_cells = Bool(True, help=(
        "Before every cell, reseed all RNGs from (seed, the cell's code), so a cell "
        "draws the same numbers whatever ran before it.")).tag(config=True)
    store = Unicode(".repro", help=(
        "Folder for the run ledger and saved snapshots, relative to the kernel's working "
        "directory (the notebook's folder). Empty: keep nothing on disk.")).tag(config=True)
    cache_max_bytes = Int(DEFAULT_CAP, help=(
        "Size cap, in bytes, of the store's snapshots and %%repro_fit --cache states together; "
        "the least recently used go first, and one larger than the cap is not stored.")).tag(config=True)
    mlflow = Bool(False, help=(
        "Log every %%repro_fit as an MLflow run (parameters, metrics per epoch, verdict tags; "
        "--trials as nested runs), to MLflow's own tracking URI. Needs jupyter-repro[mlflow].")).tag(config=True)
    team_store = Unicode("", help=(
        "A team's store at an fsspec URL (s3://bucket/prefix, gs://…, file:///shared/drive): "
        "%%repro_fit --cache replays a result a trusted key signed in this environment class, and "
        "shares its own, signed. Needs jupyter-repro[s3] (or [gcs], [team]). Setting store to a URL "
        "sets this. Empty: off.")).tag(config=True)
    trust_file = Unicode("", help=(
        "The trust file naming the public keys whose shared results replay (repro-trust.json). "
        "Empty: repro-trust.json in the notebook's folder or a parent, up to the repository's root; "
        "with none, only this installation's own results replay.")).tag(config=True)
    key_file = Unicode("", help=(
        "This installation's ed25519 key, made on first use. Empty: $JUPYTER_REPRO_KEY_FILE, "
        "else the Jupyter data dir's. CI points it at its key, kept as a secret.")).tag(config=True)
    team_publish = Bool(True, help=(
        "Whether --cache fits share their results in the team store. False (jupyter-repro check's "
        "kernels): results wait in the store's team-held/ folder, and check shares those its kernels "
        "agreed on.")).tag(config=True)
    team_timeout = Float(2.0, help=(
        "Seconds the team store may take to answer; one that does not is left alone for the "
        "rest of the session (the fit trains, its result kept in .repro/).")).tag(config=True)
    snapshot_memory_max_bytes = Int(64 * 2**20, help=(
        "A snapshot up to this many bytes is also kept in memory, for the fastest restore; "
        "a larger one is restored from its stored file, memory-mapped, so RAM does not hold "
        "the weights twice. Without a store every snapshot is kept in memory.")).tag(config=True)

    cluster = Unicode("", help=(
        "Where %%repro_fit --trials runs its trials: '' in the kernel, 'local' on a Dask LocalCluster of "
        "worker processes on this machine, or a Dask scheduler's address (tcp://scheduler:8786); "
        "--on overrides it for one cell. Needs jupyter-repro[dask]; see docs/clusters.md.")).tag(config=True)

    def __init__(self, shell=None, **kwargs):
        self._syncing = False
        self._mirroring = False  # team_store being set from the session's, not by the user
        self.session = Session(seeder=Seeder())  # before traitlets load config, which may seed
        super().__init__(shell=shell, **kwargs)
        self.seeder.reseed_cells = self.reseed_cells
        self.session.store, self.session.cache_max_bytes = self.store, self.cache_max_bytes
        self.session.snapshot_memory_max_bytes = self.snapshot_memory_max_bytes
        if self.team_store and self.team_store != self.session.team_store:
            self.session.team_store = self.team_store
        self._mirror_team_store()
        self.session.trust_file, self.session.key_file = self.trust_file or None, self.key_file or None
        self.session.team_timeout, self.session.team_publish = self.team_timeout, self.team_publish

    @property
    def seeder(self) -> Seeder:
        return self.session.seeder

    @property
    def snapshots(self):
        return self.session.snapshots

    # -- options ----------------------------------------------------------------
    @validate("seed")
    def _valid_seed(self, proposal):
        if proposal.value is None:
            return None
        try:
            return validate_seed(proposal.value)
        except ReproError as error:
            raise TraitError(str(error)) from error

    @validate("cache_max_bytes")
    def _valid_cap(self, proposal):
        try:
            return validate_cap(proposal.value)
        except ReproError as error:
            raise TraitError(str(error)) from error

    @validate("snapshot_memory_max_bytes")
    def _valid_memory_cap(self, proposal):
        if proposal.value < 0:
            raise TraitError(f"snapshot_memory_max_bytes must be 0 or more (0: never keep a copy in memory), "
                             f"not {proposal.value}")
        return proposal.value

    @validate("portable_floor")
    def _valid_floor(self, proposal):
        try:
            return floor(proposal.value).name
        except UnknownFloor as error:
            raise TraitError(str(error)) from error

    @observe("portable", "portable_floor")
    def _portable_changed(self, change):
        if self.portable:
            report = self.session.make_portable(self.portable_floor)
            if not report.complete:
                print(report)

    @observe("seed", "deterministic")
    def _seed_changed(self, change):
        if self._syncing or self.seed is None:
            return
        if (self.seeder.seed, self.seeder.deterministic) != (self.seed, self.deterministic):
            self.session.seed(self.seed, self.deterministic)

    @observe("reseed_cells")
    def _reseed_cells_changed(self, change):
        self.seeder.reseed_cells = change.new

    @observe("store", "cache_max_bytes", "snapshot_memory_max_bytes", "team_store", "team_timeout", "team_publish")
    def _store_changed(self, change):
        if self._mirroring:
            return
        setattr(self.session, change.name, change.new)
        if change.name == "store":
            self._mirror_team_store()

    def _mirror_team_store(self) -> None:
        """``team_store`` as the session has it: a store URL sets it, a path after one clears it."""
        if self.team_store != self.session.team_store:
            self._mirroring = True
            try:
                self.team_store = self.session.team_store
            finally:
                self._mirroring = False

    @observe("trust_file", "key_file")
    def _team_file_changed(self, change):
        setattr(self.session, change.name, change.new or None)

    @validate("team_store", "store")
    def _valid_team_store(self, proposal):
        from .store.team import check, is_url

        if proposal.trait.name == "team_store" and proposal.value or is_url(proposal.value):
            try:
                check(proposal.value)
            except ReproError as error:  # a TraitError: %config prints it and keeps the old value
                raise TraitError(str(error)) from error
        return proposal.value

    @validate("team_timeout")
    def _valid_team_timeout(self, proposal):
        if not 0 < proposal.value <= 600:
            raise TraitError(f"team_timeout is seconds, more than 0 and at most 600, not {proposal.value}")
        return proposal.value

    @validate("mlflow")
    def _valid_mlflow(self, proposal):
        if proposal.value:
            from .tracking import require_mlflow

            try:
                require_mlflow()
            except ReproError as error:  # a TraitError: %config prints it and keeps the old value
                raise TraitError(str(error)) from error
        return proposal.value

    @observe("mlflow")
    def _mlflow_changed(self, change):
        from .tracking import MlflowTracker

        listeners = [each for each in self.session.listeners if not isinstance(each, MlflowTracker)]
        self.session.listeners = listeners + ([MlflowTracker()] if change.new else [])

    # -- events -----------------------------------------------------------------
    def pre_run_cell(self, info):
        raw = info.raw_cell or ""
        if self.seeder.seed is None or not self.seeder.reseed_cells:
            return
        if raw.lstrip().startswith("%%repro_fit"):
            return  # it reseeds itself before its body runs; nothing it does before draws a number
        try:
            source = self.shell.transform_cell(raw)  # magics as the Python they run
        except Exception:  # noqa: BLE001 -- a cell IPython cannot transform seeds from its text
            source = raw
        self.seeder.reseed_for_cell(source)

    # -- magics -----------------------------------------------------------------
    @magic_arguments()
    @argument("seed", nargs="?", type=int, help="Session seed (default: the configured one).")
    @argument("--no-deterministic", action="store_true",
              help="Turn the determinism switches off (TensorFlow, JAX, PyTorch).")
    @argument("--portable", nargs="?", const="avx", default=None, metavar="FLOOR",
              help="Also pin the math libraries to a floor: avx (the default: same bits on every x86-64 CPU "
                   "with AVX) or avx2 (every CPU with AVX2 and FMA); prints what came too late.")
    @line_magic
    def repro_seed(self, line):
        """Seed Python, NumPy, TensorFlow, Keras, JAX and PyTorch; libraries not imported
        yet are seeded the moment they are. Returns a report of what was set."""
        args = _arguments(self.repro_seed, line)
        seed = self.seed if args.seed is None else args.seed
        if seed is None:
            raise UsageError("no seed given or configured: use %repro_seed 42")
        if args.portable:
            with _as_usage_error():
                floor(args.portable)  # a floor that does not exist changes nothing, not even the seed
            print(self.session.make_portable(args.portable))
        with _as_usage_error():
            report = self.session.seed(seed, not args.no_deterministic)
        self._syncing = True
        try:
            self.seed, self.deterministic = report.seed, report.deterministic
        finally:
            self._syncing = False
        return report

    @magic_arguments()
    @argument("model", help="Name of a compiled Keras model in the notebook.")
    @argument("--name", help="Register the snapshot under this name (default: MODEL).")
    @line_magic
    def repro_snapshot(self, line):
        """Register MODEL's current state (every variable, and its compile settings)
        as the state each ``%%repro_fit`` starts from. Returns a description that holds
        no weights (``Out`` keeps it)."""
        args = _arguments(self.repro_snapshot, line)
        model = self._user_variable(args.model)
        with _as_usage_error():
            return self.session.snapshot(model, args.name or args.model, variable=args.model).info()

    @magic_arguments()
    @argument("model", nargs="?", help="The model (or snapshot name); optional with one snapshot.")
    @argument("--seed", type=int, help="Seed for this fit (default: the session seed).")
    @argument("--trials", type=int, help="Run the cell once per seed: the session seed and the N-1 after it.")
    @argument("--seeds", help="Seeds for the trials, comma-separated, e.g. 1,2,3.")
    @argument("--on", help="With --trials/--seeds: run the trials on a Dask cluster, 'local' or an address "
                           "(tcp://scheduler:8786); default ReproMagics.cluster.")
    @argument("--metric", action="append", default=[],
              help="A variable the cell sets (e.g. test_rmse), collected per trial; repeatable.")
    @argument("--cache", action="store_true",
              help="Skip training when an earlier run with the same inputs stored its result.")
    @argument("--verify", action="store_true", help="With --cache: train anyway and compare with the stored result.")
    @argument("--batches", action="store_true",
              help="Also fingerprint the weights after every batch, so a difference from an earlier run "
                   "with --batches is placed to the batch of the first differing epoch.")
    @cell_magic
    def repro_fit(self, line, cell):
        """Reseed, restore the snapshot, recompile with a fresh optimizer, then run
        the cell: the same inputs give the same weights, to the bit."""
        from .progress_bar import ProgressBar
        from .run.trials import trial_seeds

        args = _arguments(self.repro_fit, line)
        trials = args.trials is not None or args.seeds is not None
        if args.metric and not trials:
            raise UsageError("--metric goes with --trials N or --seeds 1,2,3")
        if args.on is not None and not trials:
            raise UsageError("--on goes with --trials N or --seeds 1,2,3")
        with _as_usage_error():
            snapshot = self.session.snapshot_for(args.model)
            seeds = trial_seeds(args.seed if args.seed is not None else self.seeder.seed,
                                args.trials, args.seeds) if trials else None
        model = self._user_variable(snapshot.variable)
        body = self._body(cell)
        if self.session.portable is not None:  # what the mode's claim does not cover, said before the fit
            from .seeding.portable import gaps_line

            gaps = gaps_line(model, self.session.portable.backend)
            if gaps:
                print(gaps)

        def run():
            error = body.run()
            if error is not None:
                raise _BodyFailed(type(error).__name__) from error

        options = dict(source=body.source, namespace=self.shell.user_ns, hidden=self.shell.user_ns_hidden,
                       snapshot=snapshot, cache=args.cache, verify=args.verify, label=snapshot.variable,
                       batches=args.batches)
        namespace = self.shell.user_ns
        with _as_usage_error():
            try:
                if trials:
                    return self.session.trials(
                        model, run, seeds, metrics=lambda: {name: namespace.get(name) for name in args.metric},
                        metric_names=args.metric, client=(args.on or self.cluster) or None,
                        progress=ProgressBar(self.shell), **options)
                return self.session.fit(model, run, seed=args.seed, **options)
            except _BodyFailed as error:
                raise UsageError(f"the fit cell did not finish ({error}); "
                                 "run it again: it restarts from the snapshot") from None

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

    @magic_arguments()
    @argument("--model", help="Only the runs of this model.")
    @argument("--last", type=int, help="Only the last N runs.")
    @argument("--plot", action="store_true",
              help="A figure of each run's METRIC per epoch, repeats drawn over their earlier run.")
    @argument("--metric", default="loss", help="With --plot: the metric drawn (default: loss).")
    @line_magic
    def repro_history(self, line):
        """The recorded runs as a DataFrame (inputs and result fingerprints, verdict,
        metrics), coloured by verdict; ``--plot``: their loss curves."""
        from .run.ledger import history_frame

        args = _arguments(self.repro_history, line)
        if self.session.ledger is None:
            raise UsageError("no ledger: ReproMagics.store is empty; set it, e.g. %config ReproMagics.store = '.repro'")
        from .run.history import plot_runs

        with _as_usage_error():
            records = self.session.ledger.records()
            frame = history_frame(records, args.model, args.last)
            if not args.plot:
                return frame
            by_run = {r["run"]: r for r in records}
            return plot_runs([by_run[run] for run in frame.index], args.metric)

    @line_magic
    def repro_env(self, line):
        """Versions, devices and determinism flags a result depends on."""
        from .run import environment

        if line.strip():
            raise UsageError("%repro_env takes no arguments")
        return environment.collect()

    # -- helpers ----------------------------------------------------------------
    def _user_variable(self, name):
        namespace = self.shell.user_ns
        if name not in namespace:
            raise UsageError(f"name '{name}' is not defined in the notebook: define the model first")
        return namespace[name]


def load(shell) -> ReproMagics:
    try:
        magics = ReproMagics(shell=shell)
    except TraitError as error:  # a profile setting refused (a bad seed, mlflow without MLflow)
        # IPython listed the half-built instance as a configurable before its config failed
        shell.configurables[:] = [c for c in shell.configurables if not isinstance(c, ReproMagics)]
        raise UsageError(f"jupyter_repro not loaded: {error}") from error
    shell.register_magics(magics)
    shell.events.register("pre_run_cell", magics.pre_run_cell)
    magics.compile_hook = _watch_compile()
    return magics


def _watch_compile():
    """Record user-defined ``compile`` calls (``model/compile_call.py``): now if Keras is
    imported, else the moment it is (nothing imported at load). The hook, or None."""
    import sys

    def install(keras):
        from .model.compile_call import WATCH

        WATCH.install(keras)

    if "keras" in sys.modules:
        install(sys.modules["keras"])
        return None
    from .seeding.import_hook import ImportHook

    return ImportHook({"keras": install}).install()


def _unwatch_compile(hook) -> None:
    import sys

    if hook is not None:
        hook.remove()
    watch = sys.modules.get("jupyter_repro.model.compile_call")
    if watch is not None:
        watch.WATCH.remove()


def unload(shell, magics: ReproMagics) -> None:
    """Undo ``load`` exactly: event, import hooks, the compile watch, magics, configurable."""
    shell.events.unregister("pre_run_cell", magics.pre_run_cell)
    magics.seeder.close()
    magics.session.close()
    _unwatch_compile(magics.compile_hook)
    manager = shell.magics_manager
    for kind, table in magics.magics.items():
        for name in table:
            manager.magics[kind].pop(name, None)
    manager.registry.pop(type(magics).__name__, None)
    if magics in shell.configurables:
        shell.configurables.remove(magics)
    if "distributed" in sys.modules:  # only a kernel that ran trials on a cluster started one
        from .run.cluster import close_local

        close_local()
