"""``--trials 3`` on the FD001 notebook, in a real kernel: the same table twice (three trials
prove what five did; one epoch each)."""
import nbformat

from jupyter_repro.demo import NOTEBOOK
from kernel import Kernel


def tagged(notebook, tag):
    return next(c.source for c in notebook.cells if tag in c.metadata.get("tags", []))


def test_trials_on_fd001_print_the_same_table_twice(cmapss_dir):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    setup = [c.source for c in notebook.cells[: notebook.cells.index(
        next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])))] if c.cell_type == "code"]
    fit_body = tagged(notebook, "fit").split("\n", 1)[1]
    trials = ("%%repro_fit model --trials 3 --metric test_rmse\n" + fit_body + "\n"
              + tagged(notebook, "evaluate") + "\n_ = None")
    with Kernel(env={"CMAPSS_DIR": cmapss_dir, "REPRO_EPOCHS": "1"}) as kernel:
        for source in setup:
            kernel.run(source)
        kernel.run("alpha = 0.4")
        kernel.run(tagged(notebook, "preprocess"))
        kernel.run("import pandas as pd\npd.set_option('display.precision', 17)")  # every digit
        tables = [kernel.run(trials) for _ in range(2)]
    assert "trial 3/3: seed 44" in tables[0]
    printed = [table_of(t) for t in tables]
    assert printed[0] == printed[1]
    assert printed[0].split()[:3] == ["loss", "val_loss", "test_rmse"]
    assert [line.split()[0] for line in printed[0].splitlines()[1:]] == [
        "42", "43", "44", "mean", "std", "min", "max"]


def table_of(output):
    """The DataFrame the magic returned, without the timed progress lines above it."""
    return output.rsplit(" s)\n", 1)[1]
