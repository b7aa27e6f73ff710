"""``jupyter-repro demo``: the turbofan notebook's back-and-forth, run headless.

The notebook is executed in a fresh kernel (nbclient): its setup cells once, then, for
each alpha in turn, the cells tagged ``parameters`` (with that alpha), ``preprocess``,
``fit`` and ``evaluate`` — exactly what a user does when jumping back to an earlier
setting. A repeated alpha must reproduce its first run to the bit: the fingerprint of
every variable and the validation-loss curve are compared.

The kernel runs in the portable mode by default (``seeding/portable.py``): its pins are put in
the kernel process's environment before it starts, as ``install-kernel --portable`` does
(``GLIBC_TUNABLES`` is read only then), so the table's digits are those of the x86-64 AVX floor,
the same on every such CPU. ``portable=False`` runs native: this CPU's own code paths. The
kernel says which mode it is in, and the output repeats it, so a table is never taken for the
other mode's.
"""
from __future__ import annotations

import copy
import json
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence

import nbformat

NOTEBOOK = Path(__file__).parent / "notebooks" / "turbofan_fd001.ipynb"
LOOP_TAGS = ("parameters", "preprocess", "fit", "evaluate")
#: run in the kernel before the first fit: the mode the extension is in, as its own report says,
#: the CPU's instruction sets and the versions the digits depend on
MODE = ('import json as _json, sys as _sys\nfrom jupyter_repro.run import arithmetic as _arithmetic\n'
        '_magics = get_ipython().magics_manager.registry.get("ReproMagics")\n'
        '_portable = None if _magics is None else _magics.session.portable\n'
        'print("@@mode " + _json.dumps({"report": None if _portable is None else str(_portable), '
        '"complete": bool(_portable is not None and _portable.complete), '
        '"backend": None if _portable is None else _portable.backend, "cpu_isa": _arithmetic.facts()["cpu isa"], '
        '"versions": {_name: _sys.modules[_name].__version__ for _name in ("tensorflow", "jax", "keras", "numpy") '
        'if _name in _sys.modules}}))')
RECORD = ('import json as _json\nprint("@@repro " + _json.dumps({"alpha": alpha, "train_rmse": train_rmse, '
          '"test_rmse": test_rmse, "fingerprint": model_fingerprint(model), '
          '"val_loss": history.history["val_loss"]}))')


@dataclass
class DemoRun:
    alpha: float
    train_rmse: float
    test_rmse: float
    fingerprint: str
    val_loss: List[float]
    seconds: float
    repeat_of: Optional[int] = None  # index of the first run with the same alpha
    identical: Optional[bool] = None


@dataclass
class KernelMode:
    """The mode asked for, and what the kernel said of it: the table's digits mean nothing
    to another reader without it."""

    portable: bool
    report: Optional[str] = None   # the kernel's PortableReport, as text (None: native)
    complete: bool = False         # every pin in force, nothing uncovered in use
    backend: Optional[str] = None
    cpu_isa: str = ""
    versions: Dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        names = {"tensorflow": "TensorFlow", "jax": "JAX", "keras": "Keras", "numpy": "NumPy"}
        versions = ", ".join(f"{names[name]} {version}" for name, version in self.versions.items())
        facts = f"      {versions + '; ' if versions else ''}CPU features (NumPy's probe): {self.cpu_isa}"
        if not self.portable:
            return ("mode: native (this CPU's own code paths)\n" + facts + "\n      these digits can differ on "
                    "another CPU; without --native the demo gives the x86-64 AVX floor's, the same on every such CPU")
        if not self.complete:
            return f"mode: {self.report or 'portable, not reported by the kernel'}\n{facts}"
        return (f"mode: portable, every pin in force ({self.backend} backend, the x86-64 AVX floor)\n" + facts +
                "\n      these digits are the same on every x86-64 CPU with AVX; another version of these "
                "libraries can change them")


@dataclass
class DemoResult:
    data: str
    runs: List[DemoRun] = field(default_factory=list)
    notebook: Optional[Path] = None
    figure: Optional[Path] = None
    mode: Optional[KernelMode] = None

    @property
    def reproducible(self) -> bool:
        return all(run.identical is not False for run in self.runs)

    def table(self) -> str:
        lines = [f"{'run':>3}  {'alpha':>5}  {'train RMSE':>10}  {'test RMSE':>9}  {'weights (XXH3-128)':<18}  repeat"]
        for i, run in enumerate(self.runs, 1):
            verdict = "" if run.repeat_of is None else (
                f"identical to run {run.repeat_of + 1} ✓" if run.identical
                else f"DIFFERS from run {run.repeat_of + 1} ✗")
            lines.append(f"{i:>3}  {run.alpha:>5}  {run.train_rmse:>10.6f}  {run.test_rmse:>9.6f}  "
                         f"{run.fingerprint[:16]:<18}  {verdict}")
        return "\n".join(lines)


def _cell_plan(notebook, alphas: Sequence[float]):
    """Setup cells, then the tagged loop once per alpha, then the closing cells."""
    def tags(cell):
        return set(cell.get("metadata", {}).get("tags", []))

    def fresh(cell):
        cell = copy.deepcopy(cell)
        cell["id"] = uuid.uuid4().hex[:8]  # a repeated cell needs its own id
        return cell

    loop = [i for i, cell in enumerate(notebook.cells) if tags(cell) & set(LOOP_TAGS)]
    if not loop:
        raise ValueError(f"the notebook has no cells tagged {', '.join(LOOP_TAGS)}")
    before, after = notebook.cells[: loop[0]], notebook.cells[loop[-1] + 1:]
    plan = [fresh(cell) for cell in before]
    for alpha in alphas:
        for i in loop:
            cell = fresh(notebook.cells[i])
            if "parameters" in tags(cell):
                cell.source = f"alpha = {alpha!r}"
            plan.append(cell)
        plan.append(nbformat.v4.new_code_cell(RECORD, metadata={"tags": ["demo-record"]}))
    return plan + [fresh(cell) for cell in after]


def _record(cell, marker: str = "@@repro ") -> dict:
    for output in cell.get("outputs", []):
        for line in output.get("text", "").splitlines():
            if line.startswith(marker):
                return json.loads(line[len(marker):])
    raise RuntimeError(f"the demo's cell printed no {marker.strip()} line")


def kernel_env(environ: Mapping[str, str], portable: bool) -> Dict[str, str]:
    """The kernel's environment: ``environ``, with the portable mode's pins when asked for
    (they must be there when the process starts: glibc reads its own only then)."""
    from .seeding.portable import backend_env

    env = dict(environ)
    if portable:
        env.update(backend_env(env.get("KERAS_BACKEND"), env))
    return env


def run_demo(alphas: Sequence[float] = (1.0, 0.4, 0.2, 0.4), epochs: int = 20,
             data_dir: Optional[str] = None, output: Path = Path("demo-output"),
             notebook_path: Path = NOTEBOOK, timeout: int = 1800,
             progress: Callable[[str], None] = print, portable: bool = True,
             kernel_name: str = "python3") -> DemoResult:
    """Execute the notebook's back-and-forth in one fresh kernel and compare repeats
    (``kernel_name``: another kernelspec of this Python, e.g. one under an emulated CPU)."""
    from nbclient import NotebookClient

    from .run.check import read_notebook
    from .datasets import load_or_synthesize

    env = {k: v for k, v in os.environ.items() if k != "CMAPSS_DIR"}
    if data_dir or os.environ.get("CMAPSS_DIR"):
        data_dir = str(Path(data_dir or os.environ["CMAPSS_DIR"]).expanduser().resolve())
        env["CMAPSS_DIR"] = data_dir
    source = load_or_synthesize(data_dir).source  # fails here, before any kernel, if files are missing
    env.update(REPRO_EPOCHS=str(epochs), TF_CPP_MIN_LOG_LEVEL=env.get("TF_CPP_MIN_LOG_LEVEL", "3"))
    env = kernel_env(env, portable)

    template = read_notebook(notebook_path)
    executed = nbformat.v4.new_notebook(metadata=template.metadata)
    result = DemoResult(data=source)
    output.mkdir(parents=True, exist_ok=True)
    client = NotebookClient(executed, kernel_name=kernel_name, timeout=timeout,
                            extra_arguments=["--IPKernelApp.log_level=ERROR",
                                             f"--ReproMagics.portable={portable}"],
                            resources={"metadata": {"path": str(output)}})
    progress(f"data: {source}")
    progress(f"starting a fresh kernel ({sys.executable}), " + ("portable mode" if portable else "native mode"))
    started = time.perf_counter()
    with client.setup_kernel(env=env):
        for cell in _with_mode_cell(_cell_plan(template, alphas)):
            executed.cells.append(cell)
            tags = set(cell.get("metadata", {}).get("tags", []))
            if "demo-mode" in tags:
                client.execute_cell(cell, len(executed.cells) - 1)
                seen = _record(cell, "@@mode ")
                result.mode = KernelMode(portable, **seen)
                progress(str(result.mode))
                continue
            if "parameters" in tags:
                started = time.perf_counter()
                progress(f"run {len(result.runs) + 1}/{len(alphas)}: {cell.source} ...")
            if cell.cell_type == "code":
                client.execute_cell(cell, len(executed.cells) - 1)
            if "demo-record" in tags:
                result.runs.append(_compare(result.runs, DemoRun(**_record(cell),
                                                                 seconds=time.perf_counter() - started)))
                run = result.runs[-1]
                progress(f"    train RMSE {run.train_rmse:.6f}, test RMSE {run.test_rmse:.6f} "
                         f"({run.seconds:.0f} s)")
    result.notebook = output / "turbofan_fd001.executed.ipynb"
    nbformat.write(executed, result.notebook)
    result.figure = _plot(result, output / "val_loss.png")
    return result


def _with_mode_cell(plan):
    """``plan`` with the cell that asks the kernel its mode before the first fit."""
    first = next(i for i, cell in enumerate(plan) if set(cell.get("metadata", {}).get("tags", [])) & set(LOOP_TAGS))
    return plan[:first] + [nbformat.v4.new_code_cell(MODE, metadata={"tags": ["demo-mode"]})] + plan[first:]


def _compare(runs: List[DemoRun], run: DemoRun) -> DemoRun:
    for i, earlier in enumerate(runs):
        if earlier.alpha == run.alpha:
            run.repeat_of = i
            run.identical = (earlier.fingerprint == run.fingerprint and earlier.val_loss == run.val_loss)
            break
    return run


def _plot(result: DemoResult, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.2), dpi=120)
    for i, run in enumerate(result.runs, 1):
        epochs = range(1, len(run.val_loss) + 1)
        if run.repeat_of is None:
            axes.plot(epochs, run.val_loss, lw=2.5, alpha=0.75, label=f"run {i}: alpha={run.alpha}")
        else:
            color = axes.get_lines()[run.repeat_of].get_color()
            mark = "identical" if run.identical else "DIFFERS"
            axes.plot(epochs, run.val_loss, ls="none", marker="x", color=color,
                      label=f"run {i}: alpha={run.alpha} again ({mark})")
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.set(xlabel="epoch", ylabel="validation loss (MSE)", yscale="log",
             title="Validation loss per run; a repeated alpha is drawn over its first run")
    axes.legend(fontsize=8)
    figure.text(0.01, 0.01, result.data, fontsize=7, color="gray")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path
