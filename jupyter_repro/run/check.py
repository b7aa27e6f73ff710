"""Run a notebook in fresh kernels and compare its fits, cell by cell: the one
implementation behind ``jupyter-repro check`` and ``pytest --repro``.

Each kernel gets a ledger of its own (``--ReproMagics.store`` on its command line); the
fits a cell records there are that cell's fits in that kernel (a cell whose ledger stays
empty, with the store off, is read from the fingerprints in its output instead). A fit
cell passes when its fits agree fit by fit across the kernels (``kernels``) and with the
fingerprints saved in the notebook's outputs (``saved``; ``FitReport.fingerprints`` puts
them there), and otherwise names what differs: an input (x, y, a callback, the seed, a
notebook value...) or the result with the same inputs, and what in the environment
changed.

The cell tags notebook testers already use are honoured: ``skip-execution`` and
``nbval-skip`` (or a ``# NBVAL_SKIP`` comment) leave a cell out; ``raises-exception`` and
``nbval-raises-exception`` (``# NBVAL_RAISES_EXCEPTION``) let it raise. An ``Override``
(``--set EPOCHS=2``) assigns a value in every kernel right after each cell that assigns
the name, as nbmake's ``mock`` does; the kernels are then compared with each other, not
with fingerprints saved from the unshortened run.
"""
from __future__ import annotations

import ast
import json
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import nbformat

from .divergence import Tolerance, distance
from ..errors import ReproError
from .fit import METADATA_KEY
from .ledger import Ledger
from . import arithmetic
from .environment import Environment, explain, summary
from .inputs import describe
from ..values.source import binds

AGAINST = ("both", "kernels", "saved")
SKIP = {"skip-execution": "skip-execution", "nbval-skip": "nbval-skip", "# NBVAL_SKIP": "nbval-skip"}
RAISES = ("raises-exception", "nbval-raises-exception", "# NBVAL_RAISES_EXCEPTION")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class BadNotebook(ReproError):
    """A file that is not a notebook this can read: missing, not JSON, not an nbformat
    version nbformat knows, not valid against its schema, or with saved fingerprints
    that are not what ``FitReport.fingerprints`` writes. Nothing is run."""


def read_notebook(path) -> "nbformat.NotebookNode":
    """The notebook at ``path``, as nbformat version 4, validated against its schema: the
    one place a notebook is read. ``BadNotebook`` names the file and what is wrong."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise BadNotebook(f"{path}: no such file; give the path of an .ipynb") from None
    except IsADirectoryError:
        raise BadNotebook(f"{path} is a folder, not a notebook; give the path of an .ipynb") from None
    except OSError as error:
        raise BadNotebook(f"{path} cannot be read ({error.strerror})") from None
    try:
        text = raw.decode("utf-8")
        data = json.loads(text)
    except ValueError as error:  # UnicodeDecodeError and JSONDecodeError both are
        raise BadNotebook(f"{path} is not a notebook: not JSON text ({_first_line(error)})") from None
    except RecursionError:
        raise BadNotebook(f"{path} is not a notebook: its JSON nests deeper than Python reads") from None
    if not isinstance(data, dict):
        raise BadNotebook(f"{path} is not a notebook: its JSON is {type(data).__name__}, not an object")
    major, minor = data.get("nbformat"), data.get("nbformat_minor", 0)
    if "nbformat" not in data:
        raise BadNotebook(f"{path} is not a notebook: its JSON has no 'nbformat' version; save it again from Jupyter")
    if type(major) is not int or major not in nbformat.versions or type(minor) is not int:
        raise BadNotebook(f"{path} is not a notebook nbformat {nbformat.__version__} reads: nbformat "
                          f"{major!r}.{minor!r} (it reads {min(nbformat.versions)} to {max(nbformat.versions)}); "
                          "save it again from Jupyter")
    if major == 4:  # checked before the reader and converters touch it: they assume the schema
        _add_missing_ids(data, minor)
        _validate(path, data, major, minor)
    try:
        notebook = nbformat.convert(nbformat.reader.reads(json.dumps(data)), 4)
    except (TypeError, KeyError, AttributeError, ValueError, IndexError,  # an old format's converter
            nbformat.ValidationError) as error:                          # (it validates as it goes)
        raise BadNotebook(f"{path} is a notebook of nbformat {major} that cannot be converted to version 4 "
                          f"({type(error).__name__}: {_first_line(error)}); save it again from Jupyter") from None
    _validate(path, notebook, 4, notebook.get("nbformat_minor", 0))
    return notebook


def _add_missing_ids(data: dict, minor: int) -> None:
    """Give a 4.5+ notebook's cells that lack one an id, as nbformat's own reader does
    (with a warning) rather than refusing the notebook."""
    from nbformat.corpus.words import generate_corpus_id

    if minor >= 5 and isinstance(data.get("cells"), list):
        for cell in data["cells"]:
            if isinstance(cell, dict) and "id" not in cell:
                cell["id"] = generate_corpus_id()


def _validate(path, data, major: int, minor: int) -> None:
    """``BadNotebook`` naming the first place ``data`` breaks nbformat's schema."""
    from nbformat.validator import get_validator

    validator = get_validator(version=major, version_minor=minor)
    if validator is None:
        raise BadNotebook(f"{path} is not a notebook nbformat {nbformat.__version__} reads: nbformat {major}.{minor}; "
                          "save it again from Jupyter")
    error = next(iter(validator.iter_errors(data)), None)
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path)
        raise BadNotebook(f"{path} is not a valid nbformat {major} notebook ({_first_line(error.message)}"
                          f"{f' at {where}' if where else ''}); save it again from Jupyter")


def _first_line(error, limit: int = 160) -> str:
    text = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _saved_fits(path, number: int, outputs) -> List[dict]:
    """The fingerprints a cell's saved outputs carry, checked to be what
    ``FitReport.fingerprints`` writes (``BadNotebook`` if not)."""
    fits = []
    for output in outputs:
        metadata = output.get("metadata", {})
        if not isinstance(metadata, dict) or METADATA_KEY not in metadata:
            continue
        saved, problem = metadata[METADATA_KEY], None
        if not isinstance(saved, dict):
            problem = f"is {type(saved).__name__}, not an object"
        else:
            for key, kind, required in (("input_key", str, True), ("result", str, True), ("inputs", dict, False),
                                        ("env", dict, False), ("reason", str, False)):
                if (required or saved.get(key) is not None) and not isinstance(saved.get(key), kind):
                    problem = (f"has no '{key}'" if key not in saved else
                               f"has a '{key}' that is {type(saved[key]).__name__}, not {kind.__name__}")
                    break
        if problem:
            raise BadNotebook(f"{path}: the fingerprints saved in cell {number}'s output (metadata "
                              f"'{METADATA_KEY}') {problem}; run the cell again and save the notebook")
        fits.append(saved)
    return fits


class NotebookFailed(ReproError):
    """The notebook did not run to its end in a kernel (a cell raised without a tag that
    allows it, timed out, the kernel died or does not exist)."""

    def __init__(self, summary: str, details: str = ""):
        super().__init__(summary)
        self.summary, self.details = summary, _ANSI.sub("", details)


@dataclass(frozen=True)
class Override:
    """``NAME=VALUE``: VALUE (a Python literal) is assigned to NAME right after each cell
    that assigns NAME, in every kernel."""

    name: str
    value: object

    @classmethod
    def parse(cls, text: str) -> "Override":
        name, equals, value = text.partition("=")
        name = name.strip()
        if not equals or not name.isidentifier():
            raise ReproError(f"--set {text!r}: give NAME=VALUE, e.g. EPOCHS=2")
        try:
            return cls(name, ast.literal_eval(value.strip()))
        except (ValueError, SyntaxError):
            raise ReproError(f"--set {text!r}: the value must be a Python literal, e.g. 2, 0.5, 'adam' "
                             "or [32, 16]") from None

    @property
    def code(self) -> str:
        return f"{self.name} = {self.value!r}"

    def __str__(self) -> str:
        return f"{self.name}={self.value!r}"


@dataclass
class Cell:
    """A code cell as the check reads it from the .ipynb."""

    index: int                  # position among all the notebook's cells, 0-based
    source: str
    skip: Optional[str] = None  # the tag (or nbval comment) that leaves it out
    raises: bool = False        # a tag lets it raise
    saved: List[dict] = field(default_factory=list)  # fingerprints its saved outputs carry

    @property
    def number(self) -> int:
        return self.index + 1

    @property
    def headline(self) -> str:
        return next((line.strip() for line in self.source.splitlines() if line.strip()), "")

    @property
    def is_fit(self) -> bool:
        return self.headline.startswith("%%repro_fit")

    def assigns(self, name: str) -> bool:
        """Whether the cell's top level binds ``name`` (a cell magic's body counts)."""
        return binds(self.source, name)


def read_cells(notebook, path="the notebook") -> List[Cell]:
    """The code cells of ``notebook`` (an nbformat node, from ``read_notebook``), with their
    tags and saved fingerprints."""
    cells = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        tags = cell.metadata.get("tags", [])
        tags = tags if isinstance(tags, list) else []
        comments = {line.strip().lstrip("#").strip() for line in cell.source.splitlines() if line.strip().startswith("#")}
        marks = set(tags) | {f"# {comment}" for comment in comments}
        skip = next((SKIP[mark] for mark in SKIP if mark in marks), None)
        saved = _saved_fits(path, index + 1, cell.get("outputs", []))
        cells.append(Cell(index, cell.source, skip, any(mark in marks for mark in RAISES), saved))
    return cells


@dataclass
class KernelRun:
    """What one fresh kernel did, cell by cell."""

    fits: Dict[int, List[dict]] = field(default_factory=dict)  # cell index -> fits it recorded
    errors: Dict[int, str] = field(default_factory=dict)       # cell index -> what it raised (allowed)


def run_in_kernel(path: Path, cells: Sequence[Cell], store: Path, kernel: str = "", timeout: int = 600,
                  overrides: Sequence[Override] = (), team_store: str = "") -> KernelRun:
    """Execute the notebook at ``path`` once, in a fresh kernel whose ledger is ``store``
    (and which reads and writes the team store at ``team_store``, if one is named)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    from nbclient import NotebookClient
    from nbclient.exceptions import CellControlSignal

    notebook = read_notebook(path)
    name = kernel or notebook.metadata.get("kernelspec", {}).get("name", "")
    try:  # asked first: jupyter_client logs its own traceback before it raises this
        KernelSpecManager().get_kernel_spec(name) if name else None
    except NoSuchKernel as error:
        raise NotebookFailed(f"no such kernel: {error.name!r} (see jupyter kernelspec list)") from None
    for cell in cells:  # nbclient knows skip-execution and raises-exception; nbval's marks map onto them
        tags = list(notebook.cells[cell.index].metadata.get("tags", None) or [])
        tags += ["skip-execution"] * bool(cell.skip) + ["raises-exception"] * cell.raises
        notebook.cells[cell.index].metadata["tags"] = tags
    after = {cell.index: [o for o in overrides if cell.assigns(o.name)] for cell in cells if not cell.skip}
    ledger, run, state = Ledger(store), KernelRun(), {"seen": 0, "cell": None}
    client = NotebookClient(notebook, kernel_name=kernel, timeout=timeout, startup_timeout=max(60, timeout),
                            extra_arguments=[f"--ReproMagics.store={store}", "--IPKernelApp.log_level=ERROR"]
                            + ([f"--ReproMagics.team_store={team_store}"] if team_store else []),
                            resources={"metadata": {"path": str(path.parent.resolve())}})

    def starting(cell, cell_index):
        state["cell"] = cell_index

    async def executed(cell, cell_index, execute_reply):
        records = ledger.records()
        fits = records[state["seen"]:] or [o["metadata"][METADATA_KEY] for o in cell.outputs
                                            if METADATA_KEY in o.get("metadata", {})]
        state["seen"] = len(records)
        if fits:
            run.fits[cell_index] = fits
        reply = execute_reply["content"]
        if reply["status"] == "error":
            run.errors[cell_index] = f"{reply.get('ename')}: {reply.get('evalue')}"
        for override in after.get(cell_index, ()):
            done = await client.kc.execute_interactive(override.code, silent=True, store_history=False,
                                                       timeout=timeout)
            if done["content"]["status"] != "ok":
                raise NotebookFailed(f"--set {override}: failed after cell {cell_index + 1}: "
                                     f"{done['content'].get('ename')}: {done['content'].get('evalue')}")

    client.on_cell_execute, client.on_cell_executed = starting, executed
    try:
        client.execute()
    except NoSuchKernel as error:
        raise NotebookFailed(f"no such kernel: {error.name!r} (see jupyter kernelspec list)") from error
    except (CellControlSignal, RuntimeError, TimeoutError) as error:  # a cell's error or timeout; a dead kernel
        where = f"cell {state['cell'] + 1}" if state["cell"] is not None else "kernel start"
        first = getattr(error, "ename", None)
        summary = f"{first}: {error.evalue}" if first else str(error).strip().splitlines()[0]
        raise NotebookFailed(f"{where}: {summary}", str(error)) from error
    return run


@dataclass
class Outcome:
    """The verdict on one cell's fits."""

    cell: Cell
    fits: int = 0                                        # fits per kernel (kernel 1's count)
    problems: List[str] = field(default_factory=list)    # each names what differs, and where
    notes: List[str] = field(default_factory=list)
    skipped: Optional[str] = None
    tolerated: List[str] = field(default_factory=list)   # differences within the tolerance: no problem, not bits

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class Check:
    """A notebook run in N fresh kernels: its fit cells, what each kernel recorded, and
    the comparisons asked for (``against``: kernels, saved, or both)."""

    notebook: Path
    cells: List[Cell]
    runs: int = 2
    against: str = "both"
    overrides: Sequence[Override] = ()
    kernels: List[KernelRun] = field(default_factory=list)
    tolerance: Optional[Tolerance] = None  # a fit this close passes, said to be not bit-identical

    @property
    def compares_kernels(self) -> bool:
        return self.against in ("both", "kernels")

    @property
    def compares_saved(self) -> bool:
        return self.against == "saved" or (self.against == "both" and not self.overrides)

    @property
    def notes(self) -> List[str]:
        """What applies to every cell: overrides, and comparisons left out because of them."""
        notes = [f"{o.code} set after cell(s) {', '.join(str(c.number) for c in self.cells if not c.skip and c.assigns(o.name))}"
                 f" in every kernel" for o in self.overrides]
        if self.overrides and self.against == "both":
            notes.append("not compared with the fingerprints saved in the notebook: --set changes the inputs")
        return notes

    def outcome(self, cell: Cell) -> Outcome:
        """Whether ``cell``'s fits agree between the kernels and with those saved."""
        outcome = Outcome(cell)
        if cell.skip:
            outcome.skipped = f"cell {cell.number} is tagged {cell.skip}"
            return outcome
        fits = [kernel.fits.get(cell.index, []) for kernel in self.kernels]
        errors = [kernel.errors.get(cell.index) for kernel in self.kernels]
        outcome.fits = len(fits[0])
        if all(errors) and not any(fits):
            outcome.skipped = (f"cell {cell.number} raised in every kernel, as its raises-exception tag allows "
                               f"({errors[0]}): no fit to compare")
            return outcome
        for number, error in enumerate(errors, 1):
            if error and not all(errors):
                outcome.problems.append(f"kernel {number} raised {error}; "
                                        f"kernel {errors.index(None) + 1} did not")
        if not any(fits):
            outcome.problems.append("no fit recorded in any kernel (neither in the ledger nor in the cell's output)")
            return outcome
        if self.compares_kernels:
            for number, other in enumerate(fits[1:], 2):
                outcome.problems += _compare(fits[0], other, f"kernel {number} vs kernel 1",
                                             tolerance=self.tolerance, notes=outcome.tolerated)
        if self.compares_saved:
            self._against_saved(cell, fits, outcome)
        unknown = {fit.get("reason") for fit in fits[0] if fit.get("reason")}
        outcome.notes += [f"inputs not all known by content: {reason}" for reason in sorted(unknown)]
        outcome.notes += _replays(fits)
        return outcome

    def _against_saved(self, cell: Cell, fits: List[List[dict]], outcome: Outcome) -> None:
        if not cell.saved:
            missing = f"no fingerprints saved in the notebook for cell {cell.number}: run it and save the notebook"
            (outcome.problems if self.against == "saved" else outcome.notes).append(missing)
            return
        found: Dict[str, List[int]] = {}
        for number, kernel_fits in enumerate(fits, 1):
            tolerated: List[str] = []
            for problem in _compare(cell.saved, kernel_fits, f"kernel {number} vs saved", saved=True,
                                    tolerance=self.tolerance, notes=tolerated):
                found.setdefault(problem.split(" vs ", 1)[1], []).append(number)
            outcome.tolerated += tolerated
        for problem, numbers in found.items():
            who = "kernel" + ("s " if len(numbers) > 1 else " ") + ", ".join(map(str, numbers))
            outcome.problems.append(f"{who} vs {problem}")

    def outcomes(self) -> List[Outcome]:
        """Every fit cell's outcome, and that of any other cell that recorded fits."""
        recorded = {index for kernel in self.kernels for index in kernel.fits}
        return [self.outcome(cell) for cell in self.cells if cell.is_fit or cell.index in recorded]

    def table(self) -> str:
        lines = [f"note: {note}" for note in self.notes]
        outcomes = self.outcomes()
        for outcome in outcomes:
            if outcome.skipped:
                lines.append(f"cell {outcome.cell.number:>3}  skipped: {outcome.skipped}")
                continue
            mark = "✓" if outcome.ok else "✗"
            lines.append(f"cell {outcome.cell.number:>3}  {mark} {outcome.cell.headline}  "
                         f"({outcome.fits} fit(s) × {self.runs} kernel(s))")
            lines += [f"          {problem}" for problem in outcome.problems]
            lines += [f"          within tolerance {self.tolerance}, not bit-identical: {line}"
                      for line in outcome.tolerated]
            lines += [f"          note: {note}" for note in outcome.notes]
        if not outcomes:
            lines.append("no %%repro_fit cell in the notebook")
        elif all(o.ok for o in outcomes):
            lines.append(self._summary([o for o in outcomes if not o.skipped]))
        return "\n".join(lines)

    def _summary(self, compared: List[Outcome]) -> str:
        """The last line when every fit agrees: what was compared, without claiming more."""
        if not compared:
            return "no fit compared: every fit cell was skipped"
        if any(o.tolerated for o in compared):
            return (f"{len(compared)} fit cell(s): within tolerance {self.tolerance}, NOT bit-identical "
                    f"({sum(bool(o.tolerated) for o in compared)} cell(s) differ) ✓")
        parts = [f"identical in {self.runs} kernels"] if self.compares_kernels else []
        if self.compares_saved:
            saved = sum(bool(o.cell.saved) for o in compared)
            parts.append("identical to the fingerprints saved in the notebook" if saved == len(compared) else
                         "no fingerprints saved in the notebook to compare with" if not saved else
                         f"{saved} of them identical to the fingerprints saved in the notebook (the others have none)")
        return f"{len(compared)} fit cell(s): " + "; ".join(parts) + " ✓"

    @property
    def ok(self) -> bool:
        outcomes = self.outcomes()
        return bool(outcomes) and all(o.ok for o in outcomes)


def _replays(fits: List[List[dict]]) -> List[str]:
    """"kernel 2: replayed — computed by ci on 2026-12-05 (native)": fits a team store handed over."""
    from .verdict import computed_by

    return [f"kernel {number}: fit {index} replayed — {computed_by(fit['computed_by'])}"
            for number, kernel in enumerate(fits, 1) for index, fit in enumerate(kernel, 1)
            if isinstance(fit.get("computed_by"), dict)]


def _compare(reference: List[dict], fits: List[dict], who: str, saved: bool = False,
             tolerance: Optional[Tolerance] = None, notes: Optional[List[str]] = None) -> List[str]:
    """How ``fits`` differ from ``reference``, fit by fit; each line starts with ``who``.
    A difference within ``tolerance`` is no problem: it goes to ``notes``, still saying
    that the fit is not bit-identical."""
    if len(reference) != len(fits):
        return [f"{who}: {len(fits)} fit(s) against {len(reference)}"]
    problems = []
    for number, (first, other) in enumerate(zip(reference, fits), 1):
        what = difference(first, other, saved)
        if not what:
            continue
        line = f"{who}{f', fit {number}' if len(fits) > 1 else ''}: {what}"
        if tolerance is not None and within(first, other, tolerance):
            if notes is not None:
                notes.append(line)
        else:
            problems.append(line)
    return problems


#: inputs that are data: a run on another CPU can compute them with other bits (NumPy's
#: tanh, OpenBLAS's matmul in a data cell), so a tolerance may cover them; code, seed and
#: compile settings it never covers
_DATA_INPUTS = tuple(f"fit.{name}" for name in ("x", "y", "validation_data", "sample_weight"))
#: what computes the initial state from the seed (the backend's initializers): where one of
#: these changed, other initial bits are the arithmetic's, and a tolerance covers them too
#: (JAX's initializers give other bits on an AVX-only CPU); with all of them unchanged,
#: another initial state is the notebook's doing (weights it loaded), never tolerated
_COMPUTES_THE_INITIAL_STATE = frozenset(arithmetic.FACTS) | {
    "platform", "devices", "jax devices", "torch devices", "numpy", "keras", "keras backend", "tensorflow",
    "jax", "torch", "cuda", "cudnn", "XLA_FLAGS"}


def within(reference: dict, fit: dict, tolerance: Tolerance) -> bool:
    """Whether ``fit`` is within ``tolerance`` of ``reference``: same inputs, or inputs that
    differ in data only (and in the initial state where what computes it changed), and
    metrics and sampled weights as close as it asks."""
    if reference.get("input_key") != fit.get("input_key"):
        before, now = reference.get("inputs", {}), fit.get("inputs", {})
        differing = [name for name in set(before) | set(now) if before.get(name) != now.get(name)]
        if "snapshot" in differing and _initial_state_recomputed(reference, fit):
            differing.remove("snapshot")
        if not all(name.startswith("global ") or name.split("[")[0].startswith(_DATA_INPUTS)
                   or name.startswith("fit[") and name.partition(".")[2] in ("x", "y", "validation_data",
                                                                          "sample_weight")
                   for name in differing):
            return False
    return tolerance.admits(distance(reference, fit))


def _initial_state_recomputed(reference: dict, fit: dict) -> bool:
    """The two runs' environments differ in what computes an initial state from the seed."""
    if not reference.get("env") or not fit.get("env"):
        return False
    changes = Environment(summary(fit["env"])).diff(summary(reference["env"]))
    return any(name in _COMPUTES_THE_INITIAL_STATE for name, _, _ in changes)


def difference(reference: dict, fit: dict, saved: bool = False) -> Optional[str]:
    """What differs between two fits (ledger lines or saved fingerprints), or None.
    ``saved``: ``reference`` was saved in the notebook, with a summary of its environment only."""
    result_only = False
    if reference.get("input_key") != fit.get("input_key"):
        before, now = reference.get("inputs") or {}, fit.get("inputs") or {}   # saved as null: none known
        text = "inputs differ: " + ", ".join(describe(name) for name in sorted(set(before) | set(now))
                                             if before.get(name) != now.get(name))
    elif reference.get("result") != fit.get("result"):
        text = f"result differs ({str(reference.get('result'))[:12]} vs {str(fit.get('result'))[:12]})"
        unknown = fit.get("reason") or reference.get("reason")
        result_only = not unknown
        text += f"; not every input is known by content: {unknown}" if unknown else " with the same inputs"
    else:
        return None
    if not reference.get("env") or not fit.get("env"):
        return text + "; the environment of one of them is not known"
    changes = Environment(summary(fit["env"])).diff(summary(reference["env"]))
    if changes:
        text += "; " + explain(changes)
    elif result_only and saved:
        text += "; environment unchanged as far as the summary saved with it tells"
    elif result_only:
        text += "; environment unchanged, so the fit itself is not deterministic"
    far = distance(reference, fit)
    return text + (f"; {far}" if far else "")


def validate(runs: int, against: str, overrides: Sequence[Override], timeout: int = 600) -> None:
    """Options that cannot work together, refused before any kernel starts."""
    if timeout < 1:
        raise ReproError(f"--timeout must be at least 1 second, not {timeout}")
    if against not in AGAINST:
        raise ReproError(f"--against must be one of {', '.join(AGAINST)}; got {against!r}")
    if runs < 1 or (against != "saved" and runs < 2):
        raise ReproError(f"{runs} kernel run(s) cannot be compared with each other: give at least 2 "
                         "(or 1 with --against saved)")
    if against == "saved" and overrides:
        raise ReproError("--set changes the inputs, so the fits cannot match those saved in the "
                         "notebook: use it with --against kernels (or both, which then compares the kernels)")


def check_notebook(path: Path, runs: int = 2, kernel: str = "", timeout: int = 600, against: str = "both",
                   overrides: Sequence[Override] = (), progress: Callable[[str], None] = print,
                   cells: Optional[List[Cell]] = None, tolerance: Optional[Tolerance] = None,
                   team_store: str = "") -> Check:
    """Execute ``path`` in ``runs`` fresh kernels (``kernel``: a kernelspec name, default
    the notebook's own) and collect each cell's fits; ``Check.outcome`` compares them.
    ``team_store``: a URL the kernels' ``--cache`` fits read and (with a trusted key) write."""
    path = Path(path)
    validate(runs, against, overrides, timeout)
    cells = read_cells(read_notebook(path), path) if cells is None else cells
    for override in overrides:
        if not any(cell.assigns(override.name) for cell in cells if not cell.skip):
            raise ReproError(f"--set {override}: no cell of {path.name} assigns {override.name}")
    check = Check(path, cells, runs, against, tuple(overrides), tolerance=tolerance)
    with tempfile.TemporaryDirectory(prefix="repro-check-") as scratch:
        for number in range(1, runs + 1):
            progress(f"kernel {number}/{runs}: executing {path.name} ...")
            try:
                check.kernels.append(run_in_kernel(path, cells, Path(scratch) / f"kernel-{number}", kernel,
                                                   timeout, overrides, team_store))
            except NotebookFailed as error:
                raise NotebookFailed(f"{path.name} did not run to the end in kernel {number}: {error.summary}",
                                     error.details) from error
    return check
