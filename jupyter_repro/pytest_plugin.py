"""``pytest --repro NOTEBOOK_OR_DIR...``: every ``%%repro_fit`` cell is a test.

Registered through the ``pytest11`` entry point, as nbval and nbmake are, so pytest loads
it in every run; without ``--repro`` it adds its options and does nothing else (it
collects nothing and imports nothing beyond pytest). With it, each notebook runs in
``--repro-runs`` fresh kernels (``run/check.py``, the same code as ``jupyter-repro check``),
and each ``%%repro_fit`` cell passes when its fits agree between the kernels and with
the fingerprints saved in the notebook (``--repro-against``), and fails naming what
differs::

    pytest --repro notebooks/ --repro-runs 2 --repro-set EPOCHS=2

The notebook runs once per file, when its first fit cell is tested; its other cells'
items reuse the result.
"""
from __future__ import annotations

import pytest
from .errors import ReproError

#: the comparisons ``--repro-against`` may ask for (``check.AGAINST``, restated so that
#: adding the options imports nothing of the package)
AGAINST = ("both", "kernels", "saved")


def pytest_addoption(parser):
    group = parser.getgroup("repro", "reproducible fits in notebooks (jupyter-repro)")
    group.addoption("--repro", action="store_true", default=False,
                    help="Test each %%%%repro_fit cell of the notebooks: its fits must give the same bytes in "
                         "fresh kernels as each other and as the fingerprints saved in the notebook.")
    group.addoption("--repro-runs", type=int, default=2, metavar="N",
                    help="Fresh kernels per notebook (default 2; 1 will do with --repro-against saved).")
    group.addoption("--repro-kernel", default="", metavar="NAME",
                    help="Kernelspec to run the notebooks in (default: each notebook's own).")
    group.addoption("--repro-timeout", type=int, default=600, metavar="SECONDS",
                    help="Seconds a cell may take (default 600).")
    group.addoption("--repro-set", action="append", default=[], metavar="NAME=VALUE",
                    help="Assign VALUE (a Python literal) right after each cell that assigns NAME, e.g. "
                         "EPOCHS=2 for a short CI run; repeatable. The kernels are still compared.")
    group.addoption("--repro-tolerance", default="", metavar="TOLERANCE",
                    help="Pass a fit whose bits differ but whose metrics and sampled weights are this close "
                         "(still reported as not bit-identical): 1e-5 (relative, both), "
                         "metrics=1e-6,weights=1e-5, or weights=64ulp.")
    group.addoption("--repro-against", choices=AGAINST, default="both",
                    help="Compare each fit between the fresh kernels, with the fingerprints saved in the "
                         "notebook, or both (default).")
    group.addoption("--repro-team-store", default="", metavar="URL",
                    help="A team store (s3://bucket/prefix, file:///shared/drive) the kernels' %%%%repro_fit --cache "
                         "fits read, and write signed with this machine's key ($JUPYTER_REPRO_KEY_FILE for CI's).")


def pytest_configure(config):
    if not config.option.repro:
        return
    from .run.check import Override, validate
    from .run.divergence import Tolerance

    try:
        overrides = tuple(Override.parse(text) for text in config.option.repro_set)
        validate(config.option.repro_runs, config.option.repro_against, overrides, config.option.repro_timeout)
        tolerance = Tolerance.parse(config.option.repro_tolerance) if config.option.repro_tolerance else None
        if config.option.repro_team_store:
            from .store.team import check as check_team_store

            check_team_store(config.option.repro_team_store)
    except ReproError as error:
        raise pytest.UsageError(str(error)) from None
    config.stash[_OVERRIDES] = overrides
    config.stash[_TOLERANCE] = tolerance


_OVERRIDES = pytest.StashKey()
_TOLERANCE = pytest.StashKey()
_TOLERATED = pytest.StashKey()  # "cell N of NB: ..." for each fit passed within the tolerance, not bit-identical
_SAVED_MISSING = pytest.StashKey()  # fit cells compared without saved fingerprints (none in the notebook)


def pytest_collect_file(file_path, parent):
    if parent.config.option.repro and file_path.suffix == ".ipynb":
        return ReproNotebook.from_parent(parent, path=file_path)
    return None


def pytest_report_header(config):
    if not config.option.repro:
        return None
    option = config.option
    against = {"both": "between the kernels and with the fingerprints saved in each notebook",
               "kernels": "between the kernels", "saved": "with the fingerprints saved in each notebook"}
    line = f"repro: each notebook in {option.repro_runs} fresh kernel(s); fits compared {against[option.repro_against]}"
    if option.repro_set:
        line += f"; set after the cell that assigns each: {', '.join(option.repro_set)}"
    if option.repro_tolerance:
        line += f"; a fit within tolerance {option.repro_tolerance} passes, reported as not bit-identical"
    return line


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    for line in config.stash.get(_TOLERATED, []) if config.option.repro else []:
        terminalreporter.write_line(f"repro: passed within --repro-tolerance, NOT bit-identical: {line}")
    missing = config.stash.get(_SAVED_MISSING, 0) if config.option.repro else 0
    if missing:
        terminalreporter.write_line(
            f"repro: {missing} fit cell(s) had no fingerprints saved in their notebook, so were compared "
            "between the kernels only; run the notebooks and save them to compare with them too")


class ReproNotebook(pytest.File):
    """A notebook: one item per ``%%repro_fit`` cell; run in fresh kernels once, on demand."""

    def collect(self):
        from .run.check import BadNotebook, read_cells, read_notebook

        self._check, self.failure_shown = None, False
        try:
            self.cells = read_cells(read_notebook(self.path), self.path.name)
        except BadNotebook as error:  # one failing item saying why, not an interrupted collection
            self.cells = []
            yield UnreadableNotebook.from_parent(self, name="notebook", error=error)
            return
        for cell in self.cells:
            if cell.is_fit:
                yield FitCellItem.from_parent(self, name=f"repro_fit cell {cell.number}", cell=cell)

    def check(self):
        """The notebook's ``check.Check``, made on first use (or the error that stopped it)."""
        from .run.check import check_notebook

        if self._check is None:
            option = self.config.option
            try:
                self._check = check_notebook(self.path, option.repro_runs, option.repro_kernel,
                                             option.repro_timeout, option.repro_against,
                                             self.config.stash[_OVERRIDES], progress=lambda text: None,
                                             cells=self.cells, tolerance=self.config.stash[_TOLERANCE],
                                             team_store=option.repro_team_store)
            except ReproError as error:
                self._check = error
        if isinstance(self._check, Exception):
            raise self._check
        return self._check


class FitDiffers(Exception):
    """A fit cell's fits do not agree; the report names what differs."""


class FitCellItem(pytest.Item):
    """One ``%%repro_fit`` cell: passes when its fits agree."""

    def __init__(self, *, cell, **kwargs):
        super().__init__(**kwargs)
        self.cell = cell

    def runtest(self):
        if self.cell.skip:  # before the notebook runs: a notebook whose fit cells are all skipped never does
            pytest.skip(f"cell {self.cell.number} is tagged {self.cell.skip}")
        check = self.parent.check()
        outcome = check.outcome(self.cell)
        notes = check.notes + outcome.notes
        if notes:
            self.add_report_section("call", "repro", "\n".join(notes))
        if outcome.skipped:
            pytest.skip(outcome.skipped)
        if check.compares_saved and check.against == "both" and not self.cell.saved:
            self.config.stash[_SAVED_MISSING] = self.config.stash.get(_SAVED_MISSING, 0) + 1
        for number, kernel in enumerate(check.kernels, 1):
            for fit in kernel.fits.get(self.cell.index, []):
                self.user_properties.append((f"repro.kernel{number}", f"{fit.get('input_key')} {fit.get('result')}"))
        if outcome.problems:
            raise FitDiffers(outcome)
        if outcome.tolerated:
            self.add_report_section("call", "repro", "\n".join(outcome.tolerated))
            self.config.stash.setdefault(_TOLERATED, []).extend(
                f"{self.path.name} cell {self.cell.number}: {line}" for line in outcome.tolerated)

    def repr_failure(self, excinfo, style=None):
        from .run.check import NotebookFailed

        error = excinfo.value
        if isinstance(error, NotebookFailed):  # the details once per notebook, not under every fit cell
            shown, self.parent.failure_shown = self.parent.failure_shown, True
            return f"not compared: {error.summary}" + ("" if shown else "\n" + error.details.rstrip())
        if isinstance(error, ReproError):
            return f"not compared: {error}"
        if not isinstance(error, FitDiffers):
            return super().repr_failure(excinfo, style)
        source = self.cell.source.splitlines()
        lines = error.args[0].problems + ["", f"cell {self.cell.number} of {self.path.name}:"]
        lines += [f"    {line}" for line in source[:12]] + (["    ..."] if len(source) > 12 else [])
        return "\n".join(lines)

    def reportinfo(self):
        return self.path, None, f"{self.path.name} cell {self.cell.number}: {self.cell.headline}"


class UnreadableNotebook(pytest.Item):
    """A file collected as a notebook that cannot be read as one: fails with the one line
    ``check.read_notebook`` gave; the other notebooks are collected and run."""

    def __init__(self, *, error, **kwargs):
        super().__init__(**kwargs)
        self.error = error

    def runtest(self):
        raise self.error

    def repr_failure(self, excinfo, style=None):
        return f"not compared: {self.error}"

    def reportinfo(self):
        return self.path, None, f"{self.path.name}: not a readable notebook"
