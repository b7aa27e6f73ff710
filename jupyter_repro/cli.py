"""The ``jupyter-repro`` command line: a traitlets application, like Jupyter's own.

``jupyter-repro demo [--data DIR] [--epochs N] [--alphas 1.0,0.4,0.2,0.4] [--output DIR] [--native]``
``jupyter-repro key show|export``, ``jupyter-repro trust NAME PUBLIC_KEY``: a team store's keys.

Bad input (an unknown command or option, a value of the wrong type, a missing or
unreadable notebook) ends in one line on stderr and exit status 2, before anything runs.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import logging
import sys
from pathlib import Path

from traitlets import Bool, Int, List, TraitError, Unicode, validate
from traitlets.config import Application, Config
from traitlets.config.loader import ArgumentError


class _Command(Application):
    """An application whose command line, when refused, gives one line and exit 2
    (traitlets would log a CRITICAL line and exit 1, argparse print its usage)."""

    def initialize(self, argv=None):
        argv = sys.argv[1:] if argv is None else list(argv)
        self.log_level = logging.ERROR  # no WARNING lines about what is refused below
        said = io.StringIO()
        try:
            with contextlib.redirect_stderr(said):  # argparse's usage lines
                Application.parse_command_line.__wrapped__(self, argv)  # not catch_config_error's exit 1
        except (TraitError, ArgumentError, argparse.ArgumentError) as error:
            _fail(f"{self.name}: {self._options(_first(error))}", 2)
        except SystemExit as exit:
            if not exit.code:
                raise  # --help, --version
            lines = [line for line in said.getvalue().splitlines() if line.strip()]
            reason = lines[-1].split("error: ", 1)[-1] if lines else "bad arguments"
            _fail(f"{self.name}: {self._options(reason)} (see --help)", 2)
        unknown = self._unknown(self.cli_config)
        if unknown:
            _fail(f"{self.name}: unknown option --{unknown} (see --help)", 2)

    def _configure_logging(self) -> None:
        """This application's logger, and only it, to stderr at ``log_level``. traitlets'
        own runs ``logging.config.dictConfig``, which closes every handler in the process:
        run in a process that imported TensorFlow, absl's handler then closes the stream
        it holds (under pytest, pytest's captured stderr)."""
        log = logging.getLogger(type(self).__name__)
        log.propagate = False
        for handler in list(log.handlers):
            log.removeHandler(handler)
        handler = logging.StreamHandler(sys.stderr)
        handler.setLevel(self.log_level)
        handler.setFormatter(self._log_formatter_cls(fmt=self.log_format, datefmt=self.log_datefmt))
        log.addHandler(handler)
        log.setLevel(logging.DEBUG)
        self._logging_configured = True

    def _options(self, text: str) -> str:
        """``text`` with options named as the user types them (--set, not --CheckApp.overrides)."""
        for alias, target in sorted(self.aliases.items(), key=lambda item: -len(item[1])):
            if isinstance(alias, str):
                text = text.replace(f"--{target}", f"--{alias}")
        return text

    def _unknown(self, config: Config):
        """The first option given that no trait of this application takes, or None."""
        names = {cls.__name__: cls for cls in [type(self), *self.classes]}
        for section, values in config.items():
            if not isinstance(values, Config) or section not in names:
                return section
            traits = names[section].class_traits(config=True)
            for name in values:
                if name not in traits:
                    return f"{section}.{name}"
        return None

from . import __version__
from . import kernelspec
from .errors import ReproError


class DemoApp(_Command):
    name = "jupyter-repro demo"
    description = ("Run the turbofan FD001 notebook headless in a fresh kernel, trying the alphas "
                   "in turn; a repeated alpha must reproduce its first run to the bit "
                   "(exit status 1 if not). Uses NASA's files from --data or CMAPSS_DIR, "
                   "else a synthetic fleet. The kernel runs in the portable mode (the same digits on every "
                   "x86-64 CPU with AVX) unless --native.")
    data = Unicode("", help="Directory with train_FD001.txt, test_FD001.txt, RUL_FD001.txt.").tag(config=True)
    epochs = Int(20, help="Epochs per fit.").tag(config=True)
    alphas = Unicode("1.0,0.4,0.2,0.4", help="Smoothing strengths, comma-separated, in the order tried."
                     ).tag(config=True)
    output = Unicode("demo-output", help="Where the executed notebook and figure go.").tag(config=True)
    notebook = Unicode("", help=("Another notebook to walk (default: the bundled turbofan one); its "
                                 "cells tagged parameters/preprocess/fit/evaluate are repeated.")).tag(config=True)
    native = Bool(False, help=("Run the kernel native (this CPU's own code paths) instead of in the portable "
                               "mode, whose pins give the x86-64 AVX floor's digits on every such CPU.")
                  ).tag(config=True)
    aliases = {"data": "DemoApp.data", "epochs": "DemoApp.epochs", "alphas": "DemoApp.alphas",
               "output": "DemoApp.output", "notebook": "DemoApp.notebook"}
    flags = {"native": ({"DemoApp": {"native": True}},
                        "Run native: this CPU's own code paths (default: the portable mode, the AVX floor's digits).")}

    @validate("alphas")
    def _valid_alphas(self, proposal):
        try:
            values = [float(v) for v in proposal.value.split(",")]
        except ValueError:
            values = []
        if not values or any(not 0 < a <= 1 for a in values):
            raise TraitError(f"alphas must be numbers in (0, 1], comma-separated, e.g. 1.0,0.4,0.2,0.4; "
                             f"got {proposal.value!r}")
        return proposal.value

    @property
    def alpha_values(self):
        return [float(v) for v in self.alphas.split(",")]

    @validate("epochs")
    def _valid_epochs(self, proposal):
        if proposal.value < 1:
            raise TraitError("epochs must be at least 1")
        return proposal.value

    def start(self):
        from .demo import NOTEBOOK, run_demo

        try:
            result = run_demo(self.alpha_values, self.epochs, self.data or None, Path(self.output),
                              notebook_path=Path(self.notebook) if self.notebook else NOTEBOOK,
                              portable=not self.native)
        except ReproError as error:
            self.exit_with(f"jupyter-repro demo: {error}", 2)
        print()
        print(result.table())
        print(result.mode)
        print(f"\nexecuted notebook: {result.notebook}\nfigure: {result.figure}")
        if not result.reproducible:
            self.exit_with("a repeated setting gave a different result", 1)
        repeats = sum(run.repeat_of is not None for run in result.runs)
        print(f"{repeats} repeated setting(s), all bit-identical." if repeats else "no repeated setting.")

    def exit_with(self, message, status):
        print(message, file=sys.stderr)
        self.exit(status)


class InstallKernelApp(_Command):
    name = "jupyter-repro install-kernel"
    description = ("Install a Jupyter kernelspec that fixes PYTHONHASHSEED and loads and seeds "
                   "the extension at kernel start.")
    kernel_name = Unicode("python3-repro", help="Kernelspec name.").tag(config=True)
    display_name = Unicode("", help="Name shown in Jupyter (default: mentions the seed).").tag(config=True)
    seed = Int(42, help="Session seed; also the PYTHONHASHSEED.").tag(config=True)
    user = Bool(False, help="Install for the current user.").tag(config=True)
    sys_prefix = Bool(False, help="Install into this environment (sys.prefix).").tag(config=True)
    prefix = Unicode("", help="Install under this prefix (PREFIX/share/jupyter/kernels).").tag(config=True)
    portable = Bool(False, help="Portable mode: pins in the kernel's env (see --portable).").tag(config=True)
    portable_floor = Unicode("", help="The portable mode's floor: avx (the default) or avx2; naming one turns "
                                      "the mode on (--portable avx2).").tag(config=True)
    backend = Unicode("", help="Keras backend for this kernel: tensorflow, jax or torch "
                               "(default: KERAS_BACKEND / keras.json).").tag(config=True)
    aliases = {"name": "InstallKernelApp.kernel_name", "display-name": "InstallKernelApp.display_name",
               "seed": "InstallKernelApp.seed", "prefix": "InstallKernelApp.prefix",
               "backend": "InstallKernelApp.backend", "portable": "InstallKernelApp.portable_floor"}
    flags = {"user": ({"InstallKernelApp": {"user": True}}, "Install for the current user."),
             "sys-prefix": ({"InstallKernelApp": {"sys_prefix": True}}, "Install into sys.prefix."),
             "portable": ({"InstallKernelApp": {"portable": True}},
                          "Pin the math libraries in the kernel's env: the same bits on every x86-64 CPU with AVX "
                          "(TensorFlow, JAX with --backend jax, and NumPy; PyTorch is reported not portable); "
                          "--portable avx2: on every CPU with AVX2 and FMA (Haswell, Zen and later), faster.")}

    def start(self):
        if self.user + self.sys_prefix + bool(self.prefix) > 1:
            _fail("choose one of --user, --sys-prefix, --prefix DIR", 2)
        prefix = sys.prefix if self.sys_prefix else (self.prefix or None)
        portable = self.portable_floor or self.portable  # a floor's name, True (the default floor) or False
        try:
            where = kernelspec.install_kernel(self.kernel_name, self.display_name or None, self.seed,
                                              user=self.user or prefix is None, prefix=prefix,
                                              backend=self.backend or None, portable=portable)
        except ReproError as error:
            _fail(f"jupyter-repro install-kernel: {error}", 2)
        floor = f", portable, floor {kernelspec.floor(None if portable is True else portable).name}" if portable else ""
        print(f"installed kernelspec '{self.kernel_name}' (seed {self.seed}, PYTHONHASHSEED={self.seed}"
              f"{floor}) in {where}")


class CheckApp(_Command):
    name = "jupyter-repro check"
    description = ("Execute NOTEBOOK in N fresh kernels and compare its fits cell by cell, between the "
                   "kernels and with the fingerprints saved in the notebook; exit 1 naming what differs.")
    runs = Int(2, help="How many fresh kernels.").tag(config=True)
    kernel = Unicode("", help="Kernelspec to run (default: the notebook's own).").tag(config=True)
    timeout = Int(600, help="Seconds a cell may take.").tag(config=True)
    against = Unicode("both", help="Compare the fits between the kernels, with the fingerprints saved in "
                                   "the notebook, or both: kernels, saved, both.").tag(config=True)
    overrides = List(Unicode(), help=("NAME=VALUE, assigned right after each cell that assigns NAME "
                                      "(e.g. EPOCHS=2 for a short run); repeatable.")).tag(config=True)
    tolerance = Unicode("", help=("Pass a fit whose bits differ but whose metrics and sampled weights are this "
                                  "close, still reported as not bit-identical: 1e-5 (relative, both), "
                                  "metrics=1e-6,weights=1e-5, or weights=64ulp.")).tag(config=True)
    team_store = Unicode("", help=("A team store URL (s3://bucket/prefix, file:///shared/drive) the kernels' "
                                   "--cache fits read, and write signed with this machine's key "
                                   "($JUPYTER_REPRO_KEY_FILE: CI's, kept as a secret).")).tag(config=True)
    aliases = {"runs": "CheckApp.runs", "kernel": "CheckApp.kernel", "timeout": "CheckApp.timeout",
               "against": "CheckApp.against", "set": "CheckApp.overrides", "tolerance": "CheckApp.tolerance",
               "team-store": "CheckApp.team_store"}

    def start(self):
        from .run.check import NotebookFailed, Override, check_notebook, validate
        from .run.divergence import Tolerance

        if len(self.extra_args) != 1:
            given = f"{len(self.extra_args)} given: {' '.join(self.extra_args)}" if self.extra_args else "none given"
            _fail("jupyter-repro check: give one NOTEBOOK (" + given + "); usage: jupyter-repro check NOTEBOOK "
                  "[--runs 2] [--kernel NAME] [--timeout S] [--against both|kernels|saved] [--set NAME=VALUE ...] "
                  "[--tolerance metrics=1e-6,weights=1e-5]", 2)
        try:
            overrides = [Override.parse(text) for text in self.overrides]
            validate(self.runs, self.against, overrides, self.timeout)
            tolerance = Tolerance.parse(self.tolerance) if self.tolerance else None
            if self.team_store:
                from .store.team import check as check_team_store

                check_team_store(self.team_store)
            result = check_notebook(Path(self.extra_args[0]), self.runs, self.kernel, self.timeout,
                                    self.against, overrides, tolerance=tolerance, team_store=self.team_store)
        except NotebookFailed as error:
            _fail(f"the notebook failed to run: {error}\n{error.details}".rstrip(), 2)
        except ReproError as error:
            _fail(f"jupyter-repro check: {error}", 2)
        print(result.table())
        if not result.ok:
            self.exit(1)


class HistoryApp(_Command):
    name = "jupyter-repro history"
    description = "Print the run ledger in DIR (default .repro) as a table."

    def start(self):
        from .run.ledger import Ledger, history_frame  # each subcommand loads what it runs

        if len(self.extra_args) > 1:
            _fail(f"jupyter-repro history: give one folder, not {len(self.extra_args)}: {' '.join(self.extra_args)}", 2)
        folder = Path(self.extra_args[0]) if self.extra_args else Path(".repro")
        ledger = Ledger(folder)
        if not ledger.path.is_file():
            _fail(f"jupyter-repro history: no ledger at {ledger.path}: run a %%repro_fit first, or name the "
                  ".repro folder", 2)
        try:
            frame = history_frame(ledger.records())
        except (ReproError, OSError) as error:
            _fail(f"jupyter-repro history: {ledger.path} cannot be read ({_first(error)})", 2)
        print(frame.to_string() if len(frame) else "no runs recorded")
        if ledger.skipped:
            print(f"({ledger.skipped} unreadable line(s) skipped)")


class KeyApp(_Command):
    name = "jupyter-repro key"
    description = ("Show this installation's public key (to add to a team's trust file), or export its "
                   "private key (to keep as CI's secret): key show | key export.")
    key_file = Unicode("", help="The key file (default: $JUPYTER_REPRO_KEY_FILE, else the Jupyter data dir's).").tag(config=True)
    aliases = {"key-file": "KeyApp.key_file"}

    def start(self):
        from .store.keys import Identity

        if self.extra_args not in (["show"], ["export"]):
            _fail("jupyter-repro key: give show or export (usage: jupyter-repro key show|export [--key-file F])", 2)
        identity = Identity(self.key_file or None)
        try:
            if self.extra_args == ["show"]:
                print(identity.public)
                print(f"(key file {identity.key_file}; a team trusts it with: jupyter-repro trust NAME "
                      f"{identity.public})", file=sys.stderr)
            else:
                print(identity.export())
                print("this is the PRIVATE key: keep it as a secret (CI writes it to the file that "
                      "$JUPYTER_REPRO_KEY_FILE names); never commit it", file=sys.stderr)
        except (ReproError, OSError) as error:
            _fail(f"jupyter-repro key: {_first(error)}", 2)


class TrustApp(_Command):
    name = "jupyter-repro trust"
    description = ("Trust NAME's public key: results it signed in a team store replay here. "
                   "Writes the trust file (repro-trust.json) to commit beside the notebooks.")
    file = Unicode("repro-trust.json", help="The trust file to write.").tag(config=True)
    aliases = {"file": "TrustApp.file"}

    def start(self):
        from .store.trust import Trust

        if len(self.extra_args) != 2:
            _fail("jupyter-repro trust: give NAME and PUBLIC_KEY (usage: jupyter-repro trust ci ed25519:… "
                  "[--file repro-trust.json])", 2)
        name, public = self.extra_args
        try:
            trust = Trust.load(Path(self.file)).add(name, public)
        except (ReproError, OSError) as error:
            _fail(f"jupyter-repro trust: {_first(error)}", 2)
        print(f"{trust.path}: trusts {', '.join(sorted(trust.keys))}; commit it beside the notebooks")


def _first(error) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _fail(message, status):
    print(message, file=sys.stderr)
    sys.exit(status)


class ReproApp(_Command):
    name = "jupyter-repro"
    version = __version__
    description = "Reproducible Keras training in Jupyter."
    subcommands = {
        "demo": (DemoApp, DemoApp.description.split(";")[0]),
        "install-kernel": (InstallKernelApp, InstallKernelApp.description),
        "check": (CheckApp, CheckApp.description),
        "history": (HistoryApp, HistoryApp.description),
        "key": (KeyApp, KeyApp.description.split(":")[0]),
        "trust": (TrustApp, TrustApp.description.split(".")[0]),
    }

    def initialize(self, argv=None):
        argv = sys.argv[1:] if argv is None else list(argv)
        if argv and argv[0] in self.subcommands:
            Application.initialize_subcommand.__wrapped__(self, argv[0], argv[1:])  # its errors: the subcommand's
        elif argv and not argv[0].startswith("-"):
            _fail(f"jupyter-repro: no command {argv[0]!r}; choose one of {', '.join(self.subcommands)}", 2)
        else:
            super().initialize(argv)

    def start(self):
        if self.subapp is None:
            self.print_subcommands()
            self.exit(2)
        self.subapp.start()


def main(argv=None):
    """Run the command line; the applications are cleared after, so it can run again in
    the same process (the tests do)."""
    try:
        ReproApp.launch_instance(argv)
    finally:
        for app in (ReproApp, DemoApp, InstallKernelApp, CheckApp, HistoryApp, KeyApp, TrustApp):
            app.clear_instance()


if __name__ == "__main__":
    main()
