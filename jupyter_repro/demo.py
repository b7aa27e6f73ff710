"""``jupyter-repro demo``: the turbofan notebook's back-and-forth, run headless.

The notebook is executed in a fresh kernel (nbclient): its setup cells once, then, for
each alpha in turn, the cells tagged ``parameters`` (with that alpha), ``preprocess``,
``fit`` and ``evaluate`` — exactly what a user does when jumping back to an earlier
setting. A repeated alpha must reproduce its first run to the bit: the fingerprint of
every variable and the validation-loss curve are compared.
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
from typing import Callable, List, Optional, Sequence

import nbformat

NOTEBOOK = Path(__file__).parent / "notebooks" / "turbofan_fd001.ipynb"
LOOP_TAGS = ("parameters", "preprocess", "fit", "evaluate")
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
class DemoResult:
    data: str
    runs: List[DemoRun] = field(default_factory=list)
    notebook: Optional[Path] = None
    figure: Optional[Path] = None

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


def _record(cell) -> dict:
    for output in cell.get("outputs", []):
        for line in output.get("text", "").splitlines():
            if line.startswith("@@repro "):
                return json.loads(line[len("@@repro "):])
    raise RuntimeError("the evaluate cells printed no result")


def run_demo(alphas: Sequence[float] = (1.0, 0.4, 0.2, 0.4), epochs: int = 20,
             data_dir: Optional[str] = None, output: Path = Path("demo-output"),
             notebook_path: Path = NOTEBOOK, timeout: int = 1800,
             progress: Callable[[str], None] = print) -> DemoResult:
    """Execute the notebook's back-and-forth in one fresh kernel and compare repeats."""
    from nbclient import NotebookClient

    from .run.check import read_notebook
    from .datasets import load_or_synthesize

    env = {k: v for k, v in os.environ.items() if k != "CMAPSS_DIR"}
    if data_dir or os.environ.get("CMAPSS_DIR"):
        data_dir = str(Path(data_dir or os.environ["CMAPSS_DIR"]).expanduser().resolve())
        env["CMAPSS_DIR"] = data_dir
    source = load_or_synthesize(data_dir).source  # fails here, before any kernel, if files are missing
    env.update(REPRO_EPOCHS=str(epochs), TF_CPP_MIN_LOG_LEVEL=env.get("TF_CPP_MIN_LOG_LEVEL", "3"))

    template = read_notebook(notebook_path)
    executed = nbformat.v4.new_notebook(metadata=template.metadata)
    result = DemoResult(data=source)
    output.mkdir(parents=True, exist_ok=True)
    client = NotebookClient(executed, kernel_name="python3", timeout=timeout,
                            extra_arguments=["--IPKernelApp.log_level=ERROR"],
                            resources={"metadata": {"path": str(output)}})
    progress(f"data: {source}")
    progress(f"starting a fresh kernel ({sys.executable})")
    started = time.perf_counter()
    with client.setup_kernel(env=env):
        for cell in _cell_plan(template, alphas):
            executed.cells.append(cell)
            tags = set(cell.get("metadata", {}).get("tags", []))
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
