"""The ``jupyter-repro`` command line: a traitlets application, like Jupyter's own.

``jupyter-repro demo [--data DIR] [--epochs N] [--alphas 1.0,0.4,0.2,0.4] [--output DIR]``
"""
from __future__ import annotations

import sys
from pathlib import Path

from traitlets import Bool, Int, List, TraitError, Unicode, validate
from traitlets.config import Application

from . import __version__
from .errors import ReproError


class DemoApp(Application):
    name = "jupyter-repro demo"
    description = ("Run the turbofan FD001 notebook headless in a fresh kernel, trying the alphas "
                   "in turn; a repeated alpha must reproduce its first run to the bit "
                   "(exit status 1 if not). Uses NASA's files from --data or CMAPSS_DIR, "
                   "else a synthetic fleet.")
    data = Unicode("", help="Directory with train_FD001.txt, test_FD001.txt, RUL_FD001.txt.").tag(config=True)
    epochs = Int(20, help="Epochs per fit.").tag(config=True)
    alphas = Unicode("1.0,0.4,0.2,0.4", help="Smoothing strengths, comma-separated, in the order tried."
                     ).tag(config=True)
    output = Unicode("demo-output", help="Where the executed notebook and figure go.").tag(config=True)
    notebook = Unicode("", help=("Another notebook to walk (default: the bundled turbofan one); its "
                                 "cells tagged parameters/preprocess/fit/evaluate are repeated.")).tag(config=True)
    aliases = {"data": "DemoApp.data", "epochs": "DemoApp.epochs", "alphas": "DemoApp.alphas",
               "output": "DemoApp.output", "notebook": "DemoApp.notebook"}

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
                              notebook_path=Path(self.notebook) if self.notebook else NOTEBOOK)
        except ReproError as error:
            self.exit_with(f"jupyter-repro demo: {error}", 2)
        print()
        print(result.table())
        print(f"\nexecuted notebook: {result.notebook}\nfigure: {result.figure}")
        if not result.reproducible:
            self.exit_with("a repeated setting gave a different result", 1)
        repeats = sum(run.repeat_of is not None for run in result.runs)
        print(f"{repeats} repeated setting(s), all bit-identical." if repeats else "no repeated setting.")

    def exit_with(self, message, status):
        print(message, file=sys.stderr)
        self.exit(status)


class InstallKernelApp(Application):
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
    backend = Unicode("", help="Keras backend for this kernel: tensorflow, jax or torch "
                               "(default: KERAS_BACKEND / keras.json).").tag(config=True)
    aliases = {"name": "InstallKernelApp.kernel_name", "display-name": "InstallKernelApp.display_name",
               "seed": "InstallKernelApp.seed", "prefix": "InstallKernelApp.prefix",
               "backend": "InstallKernelApp.backend"}
    flags = {"user": ({"InstallKernelApp": {"user": True}}, "Install for the current user."),
             "sys-prefix": ({"InstallKernelApp": {"sys_prefix": True}}, "Install into sys.prefix."),
             "portable": ({"InstallKernelApp": {"portable": True}},
                          "Pin the math libraries in the kernel's env: the same bits on every x86-64 CPU with AVX "
                          "(TensorFlow and NumPy; not JAX or PyTorch).")}

    def start(self):
        from .kernelspec import install_kernel

        if self.user + self.sys_prefix + bool(self.prefix) > 1:
            _fail("choose one of --user, --sys-prefix, --prefix DIR", 2)
        prefix = sys.prefix if self.sys_prefix else (self.prefix or None)
        try:
            where = install_kernel(self.kernel_name, self.display_name or None, self.seed,
                                   user=self.user or prefix is None, prefix=prefix, backend=self.backend or None,
                                   portable=self.portable)
        except ReproError as error:
            _fail(f"jupyter-repro install-kernel: {error}", 2)
        print(f"installed kernelspec '{self.kernel_name}' (seed {self.seed}, PYTHONHASHSEED={self.seed}"
              f"{', portable' if self.portable else ''}) in {where}")


class CheckApp(Application):
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
    aliases = {"runs": "CheckApp.runs", "kernel": "CheckApp.kernel", "timeout": "CheckApp.timeout",
               "against": "CheckApp.against", "set": "CheckApp.overrides", "tolerance": "CheckApp.tolerance"}

    def start(self):
        from .check import NotebookFailed, Override, check_notebook, validate
        from .divergence import Tolerance

        if len(self.extra_args) != 1 or not Path(self.extra_args[0]).is_file():
            _fail("usage: jupyter-repro check NOTEBOOK [--runs 2] [--kernel NAME] [--timeout S] "
                  "[--against both|kernels|saved] [--set NAME=VALUE ...] [--tolerance metrics=1e-6,weights=1e-5]", 2)
        try:
            overrides = [Override.parse(text) for text in self.overrides]
            validate(self.runs, self.against, overrides)
            tolerance = Tolerance.parse(self.tolerance) if self.tolerance else None
            result = check_notebook(Path(self.extra_args[0]), self.runs, self.kernel, self.timeout,
                                    self.against, overrides, tolerance=tolerance)
        except NotebookFailed as error:
            _fail(f"the notebook failed to run: {error}\n{error.details}".rstrip(), 2)
        except ReproError as error:
            _fail(f"jupyter-repro check: {error}", 2)
        print(result.table())
        if not result.ok:
            self.exit(1)


class HistoryApp(Application):
    name = "jupyter-repro history"
    description = "Print the run ledger in DIR (default .repro) as a table."

    def start(self):
        from .ledger import Ledger, history_frame

        folder = Path(self.extra_args[0]) if self.extra_args else Path(".repro")
        ledger = Ledger(folder)
        if not ledger.path.exists():
            _fail(f"no ledger at {ledger.path}: run a %%repro_fit first, or name the .repro folder", 2)
        frame = history_frame(ledger.records())
        print(frame.to_string() if len(frame) else "no runs recorded")
        if ledger.skipped:
            print(f"({ledger.skipped} unreadable line(s) skipped)")


def _fail(message, status):
    print(message, file=sys.stderr)
    sys.exit(status)


class ReproApp(Application):
    name = "jupyter-repro"
    version = __version__
    description = "Reproducible Keras training in Jupyter."
    subcommands = {
        "demo": (DemoApp, DemoApp.description.split(";")[0]),
        "install-kernel": (InstallKernelApp, InstallKernelApp.description),
        "check": (CheckApp, CheckApp.description),
        "history": (HistoryApp, HistoryApp.description),
    }

    def start(self):
        if self.subapp is None:
            self.print_subcommands()
            self.exit(2)
        self.subapp.start()


def main(argv=None):
    ReproApp.launch_instance(argv)


if __name__ == "__main__":
    main()
