"""The ``jupyter-repro`` command line: a traitlets application, like Jupyter's own.

``jupyter-repro demo [--data DIR] [--epochs N] [--alphas 1.0,0.4,0.2,0.4] [--output DIR]``
"""
from __future__ import annotations

import sys
from pathlib import Path

from traitlets import Int, TraitError, Unicode, validate
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


class ReproApp(Application):
    name = "jupyter-repro"
    version = __version__
    description = "Reproducible Keras training in Jupyter."
    subcommands = {"demo": (DemoApp, DemoApp.description.split(";")[0])}

    def start(self):
        if self.subapp is None:
            self.print_subcommands()
            self.exit(2)
        self.subapp.start()


def main(argv=None):
    ReproApp.launch_instance(argv)


if __name__ == "__main__":
    main()
