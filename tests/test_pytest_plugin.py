"""``pytest --repro``: the plugin run by pytest's own ``pytester``, on tiny notebooks in
real kernels (a 4-feature model, 2 epochs), and the pieces it is made of.

Kernel runs are what these tests cost (a fresh kernel imports Keras and its backend), so
each pytester run proves several things: 13 kernel runs in all, 11 of them import Keras.

Nothing here imports Keras into this process during a pytester test: pytester takes modules
imported meanwhile out of ``sys.modules`` afterwards, and TensorFlow imported a second time
in one process aborts it ("PyExceptionRegistry::Init() already called").
"""
import copy
import json
import subprocess
import sys
from importlib import metadata

import nbformat
import pytest
from nbclient import NotebookClient

import jupyter_repro.run.environment  # noqa: F401 -- the plugin imports it late; here it is in before pytester's snapshot
from jupyter_repro.run.check import Cell, Override, difference, read_cells
from jupyter_repro.errors import ReproError

pytest_plugins = ["pytester"]

PLUGIN = ["-p", "jupyter_repro.pytest_plugin"]  # the same plugin whether or not the entry point is installed

SETUP = "%load_ext jupyter_repro\n%repro_seed 5"
MODEL = ("import numpy as np, keras\n"
         "model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4), keras.layers.Dropout(0.3),"
         " keras.layers.Dense(1)])\nmodel.compile(keras.optimizers.Adam(0.01), 'mse')")
SNAPSHOT = "%repro_snapshot model"
DATA = "X = np.random.normal(size=(64, 4)).astype('float32')\ny = X.sum(1)"
UNSEEDED = "X = np.random.default_rng().normal(size=(64, 4)).astype('float32')\ny = X.sum(1)"
FIT = "%%repro_fit model\nhistory = model.fit(X, y, epochs=2, batch_size=16, verbose=0)"


def cell(source, *tags):
    made = nbformat.v4.new_code_cell(source)
    if tags:
        made.metadata["tags"] = list(tags)
    return made


def write(path, *cells):
    cells = [c if isinstance(c, nbformat.NotebookNode) else cell(c) for c in cells]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    return path


def fingerprints(reports, name):
    """The (input key, result) each kernel recorded for the item called ``name``."""
    report = next(r for r in reports if r.when == "call" and r.nodeid.endswith(name))
    return [value for key, value in report.user_properties if key.startswith("repro.kernel")]


def test_reproducible_notebook_passes_an_unseeded_one_fails_naming_cell_and_input(pytester):
    """Two notebooks, one run, two kernels each. The reproducible one carries the tags users
    put for nbmake and nbval: cells that would raise if run, a cell allowed to raise, and
    two fit cells that are skipped (one by its tag, one raising as its tag allows)."""
    write(pytester.path / "ok.ipynb", SETUP, MODEL, SNAPSHOT, DATA,
          cell("raise RuntimeError('skip-execution not honoured')", "skip-execution"),
          cell("raise RuntimeError('nbval-skip not honoured')", "nbval-skip"),
          "# NBVAL_SKIP\nraise RuntimeError('the NBVAL_SKIP comment not honoured')",
          cell("1 / 0", "raises-exception"),
          FIT,
          cell(FIT, "skip-execution"),
          cell("%%repro_fit model\nraise ValueError('on purpose')", "raises-exception"))
    write(pytester.path / "unseeded.ipynb", SETUP, MODEL, SNAPSHOT, UNSEEDED, FIT)
    recorder = pytester.inline_run(*PLUGIN, "--repro", "ok.ipynb", "unseeded.ipynb")
    recorder.assertoutcome(passed=1, skipped=2, failed=1)
    reports = recorder.getreports("pytest_runtest_logreport")
    first, second = fingerprints(reports, "ok.ipynb::repro_fit cell 9")
    assert first == second and len(first.split()) == 2           # input key and result, equal in both kernels

    skipped = {r.nodeid: r.longrepr[2] for r in reports if r.skipped}
    assert skipped == {
        "ok.ipynb::repro_fit cell 10": "Skipped: cell 10 is tagged skip-execution",
        "ok.ipynb::repro_fit cell 11": "Skipped: cell 11 raised in every kernel, as its raises-exception tag "
                                       "allows (UsageError: the fit cell did not finish (ValueError); run it "
                                       "again: it restarts from the snapshot): no fit to compare"}

    failed = next(r for r in reports if r.failed)
    assert failed.nodeid == "unseeded.ipynb::repro_fit cell 5"
    assert failed.head_line == "unseeded.ipynb cell 5: %%repro_fit model"
    assert str(failed.longrepr).splitlines()[0].startswith(
        "kernel 2 vs kernel 1: inputs differ: x of model.fit, y of model.fit, notebook value X, notebook value y; "
        "differs from the first epoch; largest weight difference ")   # and how much: ulp, relative, the loss
    assert "cell 5 of unseeded.ipynb:\n    %%repro_fit model\n    history = model.fit(" in str(failed.longrepr)


def test_epochs_override_runs_and_the_kernels_still_agree(pytester):
    write(pytester.path / "long.ipynb", SETUP, MODEL, SNAPSHOT, DATA, "EPOCHS = 40",
          "%%repro_fit model\nhistory = model.fit(X, y, epochs=EPOCHS, batch_size=16, verbose=0)",
          "open('epochs.log', 'a').write(f'{EPOCHS} {len(history.epoch)}\\n')")
    recorder = pytester.inline_run(*PLUGIN, "--repro", "--repro-set", "EPOCHS=1", "long.ipynb")
    recorder.assertoutcome(passed=1)
    assert (pytester.path / "epochs.log").read_text().splitlines() == ["1 1", "1 1"]  # both kernels trained 1 epoch
    first, second = fingerprints(recorder.getreports("pytest_runtest_logreport"), "repro_fit cell 6")
    assert first == second


def test_saved_fingerprints_pass_next_to_nbval_and_nbmake_and_an_altered_one_fails(pytester):
    """Executed and saved as Jupyter saves it, the notebook passes against its own
    fingerprints, in a run with --nbval-lax and --nbmake; one result altered fails."""
    notebook = nbformat.v4.new_notebook(cells=[cell(c) for c in (SETUP, MODEL, SNAPSHOT, DATA, FIT)])
    NotebookClient(notebook, resources={"metadata": {"path": str(pytester.path)}},
                   extra_arguments=["--IPKernelApp.log_level=ERROR"]).execute()
    nbformat.write(notebook, pytester.path / "saved.ipynb")
    saved = read_cells(notebook)[-1].saved
    assert len(saved) == 1 and {"input_key", "inputs", "result", "env"} <= set(saved[0])
    assert saved[0]["env"]["keras"] == metadata.version("keras") and "python" in saved[0]["env"]

    altered = copy.deepcopy(notebook)
    output = next(o for o in altered.cells[-1].outputs if "jupyter_repro" in o.metadata)
    output.metadata["jupyter_repro"]["result"] = "0" * 32
    nbformat.write(altered, pytester.path / "altered.ipynb")

    result = pytester.runpytest(*PLUGIN, "--nbval-lax", "--nbmake", "--repro", "--repro-against", "saved",
                                "--repro-runs", "1", "-v", "saved.ipynb")
    result.assert_outcomes(passed=5 + 1 + 1)  # nbval's cells, nbmake's notebook, our fit cell
    result.stdout.fnmatch_lines(["*saved.ipynb::repro_fit cell 5 PASSED*"])

    recorder = pytester.inline_run(*PLUGIN, "--repro", "--repro-against", "saved", "--repro-runs", "1",
                                   "altered.ipynb")
    recorder.assertoutcome(failed=1)
    failed = next(r for r in recorder.getreports("pytest_runtest_logreport") if r.failed)
    assert failed.nodeid == "altered.ipynb::repro_fit cell 5"
    first_line = str(failed.longrepr).splitlines()[0]
    assert first_line.startswith(
        f"kernel 1 vs saved: result differs (000000000000 vs {saved[0]['result'][:12]}) with the same "
        "inputs; environment unchanged as far as the summary saved with it tells; identical at every epoch's "
        f"end ({len(saved[0]['epochs'])}); largest weight difference 0 ulp (relative 0) among ")
    assert first_line.endswith(" sampled values, a lower bound; metrics equal")  # only the fingerprint was altered

    # one weight 1 ulp off in the saved sketch: fails without a tolerance, passes within one, said not bit-identical
    off = output.metadata["jupyter_repro"]
    dtype, data = off["sketch"][0].split(":")
    off["sketch"][0] = f"{dtype}:{int(data[:2], 16) ^ 1:02x}{data[2:]}"
    nbformat.write(altered, pytester.path / "tolerated.ipynb")
    result = pytester.runpytest(*PLUGIN, "--repro", "--repro-against", "saved", "--repro-runs", "1",
                                "--repro-tolerance", "metrics=1e-6,weights=4ulp", "tolerated.ipynb")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["repro: passed within --repro-tolerance, NOT bit-identical: tolerated.ipynb cell 5: "
                                 "kernel 1 vs saved: result differs (* largest weight difference 1 ulp *"])
    result = pytester.runpytest(*PLUGIN, "--repro", "--repro-against", "saved", "--repro-runs", "1",
                                "--repro-tolerance", "weights=0ulp", "tolerated.ipynb")
    result.assert_outcomes(failed=1)


def test_without_repro_the_plugin_collects_and_imports_nothing(pytester):
    write(pytester.path / "ok.ipynb", SETUP, FIT)
    result = pytester.runpytest(*PLUGIN, "--collect-only")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    loaded = subprocess.run([sys.executable, "-c", "import json, sys, jupyter_repro.pytest_plugin\n"
                             "print(json.dumps(sorted(set(sys.modules) & {'numpy', 'nbclient', 'nbformat', "
                             "'IPython', 'keras', 'jupyter_repro.run.check'})))"],
                            capture_output=True, text=True, check=True)
    assert json.loads(loaded.stdout) == []


def test_collects_one_item_per_fit_cell(pytester):
    write(pytester.path / "two.ipynb", SETUP, MODEL, SNAPSHOT, DATA, FIT, "x = 1", FIT)
    result = pytester.runpytest(*PLUGIN, "--repro", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["two.ipynb::repro_fit cell 5", "two.ipynb::repro_fit cell 7"])


@pytest.mark.parametrize("options, message", [
    (["--repro-set", "EPOCHS"], "--set 'EPOCHS': give NAME=VALUE, e.g. EPOCHS=2"),
    (["--repro-set", "EPOCHS=two"], "the value must be a Python literal"),
    (["--repro-runs", "1"], "1 kernel run(s) cannot be compared with each other: give at least 2"),
    (["--repro-against", "saved", "--repro-set", "EPOCHS=2"], "--set changes the inputs"),
    (["--repro-timeout", "0"], "--timeout must be at least 1 second, not 0"),
    (["--repro-team-store", "bucket/prefix"], "team store 'bucket/prefix' is not a URL: give s3://bucket/prefix"),
])
def test_bad_options_are_refused_before_any_kernel_starts(pytester, options, message):
    result = pytester.runpytest(*PLUGIN, "--repro", *options)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


def test_a_notebook_that_does_not_run_to_its_end_fails_its_fit_cells_saying_where(pytester):
    """A cell raising without a tag that allows it, a cell over the timeout, a kernel that
    does not exist: every fit cell fails, the cause is shown once per notebook. (Neither
    kernel gets as far as importing Keras.)"""
    write(pytester.path / "raising.ipynb", SETUP, "1 / 0", FIT, FIT)
    write(pytester.path / "slow.ipynb", SETUP, "import time\ntime.sleep(60)", FIT)
    recorder = pytester.inline_run(*PLUGIN, "--repro", "--repro-timeout", "3", "raising.ipynb", "slow.ipynb")
    recorder.assertoutcome(failed=3)
    raising, again, slow = [str(r.longrepr) for r in recorder.getreports("pytest_runtest_logreport") if r.failed]
    assert raising.splitlines()[0] == ("not compared: raising.ipynb did not run to the end in kernel 1: "
                                       "cell 2: ZeroDivisionError: division by zero")
    assert "----> 1 1 / 0" in raising                       # the traceback, without terminal colours
    assert again == raising.splitlines()[0]                 # once per notebook
    assert slow.splitlines()[0] == ("not compared: slow.ipynb did not run to the end in kernel 1: "
                                    "cell 2: A cell timed out while it was being executed, after 3 seconds.")

    result = pytester.runpytest(*PLUGIN, "--repro", "--repro-kernel", "no-such-kernel", "raising.ipynb")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*not compared: raising.ipynb did not run to the end in kernel 1: "
                                 "no such kernel: 'no-such-kernel' (see jupyter kernelspec list)*"])


def test_an_override_no_cell_assigns_fails_the_notebook_with_the_name(pytester):
    write(pytester.path / "ok.ipynb", SETUP, FIT)
    result = pytester.runpytest(*PLUGIN, "--repro", "--repro-set", "EPOHCS=1", "ok.ipynb")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*not compared: --set EPOHCS=1: no cell of ok.ipynb assigns EPOHCS*"])


# -- the pieces, without kernels -------------------------------------------------


def test_tags_comments_saved_fingerprints_and_assignments_are_read():
    saved = {"input_key": "k", "result": "r"}
    fit = cell("%%repro_fit model\nmodel.fit(X, y)")
    fit.outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "..."},
                                          metadata={"jupyter_repro": saved}, execution_count=1)]
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# title"), cell("a = 1", "skip-execution"), cell("b = 1", "nbval-skip"),
        cell("# NBVAL_SKIP\nc = 1"), cell("1/0", "raises-exception"), cell("# NBVAL_RAISES_EXCEPTION\n1/0"),
        cell("%%time\nEPOCHS = 3"), cell("def f():\n    EPOCHS = 2"), fit])
    cells = read_cells(notebook)
    assert [(c.number, c.skip, c.raises) for c in cells] == [
        (2, "skip-execution", False), (3, "nbval-skip", False), (4, "nbval-skip", False), (5, None, True),
        (6, None, True), (7, None, False), (8, None, False), (9, None, False)]
    assert [c.is_fit for c in cells] == [False] * 7 + [True]
    assert cells[-1].saved == [saved] and cells[-1].headline == "%%repro_fit model"
    assert [c.assigns("EPOCHS") for c in cells[5:7]] == [True, False]  # a function's local is not the notebook's
    assert Cell(0, "%load_ext jupyter_repro\nEPOCHS, LR = 3, 0.1").assigns("LR")


def test_override_values_are_python_literals():
    assert Override.parse("EPOCHS=2").code == "EPOCHS = 2"
    assert Override.parse(" OPT = 'adam' ").code == "OPT = 'adam'"
    with pytest.raises(ReproError, match="must be a Python literal"):
        Override.parse("OPT=adam")


def test_difference_names_the_input_the_result_and_the_environment():
    env = {"python": "3.11.7", "keras": "3.15.1", "keras backend": "tensorflow", "tensorflow": "2.21.0",
           "TF_DETERMINISTIC_OPS": "unset"}
    base = {"input_key": "a", "inputs": {"seed": "1", "global X": "x1", "fit.callbacks": "c1"}, "result": "r1",
            "env": env}
    assert difference(base, dict(base)) is None
    inputs = dict(base, input_key="b", inputs={"seed": "2", "global X": "x1", "fit.callbacks": "c2"})
    assert difference(base, inputs) == "inputs differ: callbacks of model.fit, the seed"
    other = dict(base, result="r2", env=dict(env, keras="3.16.0", TF_DETERMINISTIC_OPS="1"))
    assert difference(base, other, saved=True) == ("result differs (r1 vs r2) with the same inputs; "
                                                   "environment changed: keras 3.15.1 → 3.16.0")
    assert difference(base, dict(base, result="r2")).endswith(
        "with the same inputs; environment unchanged, so the fit itself is not deterministic")
    opaque = dict(base, result="r2", reason="x is a MyStream, whose content cannot be read")
    assert difference(base, opaque) == ("result differs (r1 vs r2); not every input is known by content: "
                                        "x is a MyStream, whose content cannot be read")


def test_fit_report_puts_its_fingerprints_in_the_output_metadata_beside_the_other_reprs(ip):
    """IPython's DisplayFormatter takes text/plain and text/html from the other _repr_*_
    methods; the bundle adds only the metadata the .ipynb saves."""
    from jupyter_repro.run.fit import FitReport

    ip.run_cell("%repro_seed 3")
    ip.run_cell(MODEL + "\n" + DATA)
    ip.run_cell(SNAPSHOT)
    report = ip.run_cell(FIT).result
    data, metadata = ip.display_formatter.format(report)
    assert data["text/plain"] == str(report)
    saved = metadata["jupyter_repro"]
    assert saved["result"] == report.fingerprint and saved["input_key"] == report.input_key
    assert saved["inputs"] == report.inputs.parts and saved["env"]["keras backend"]

    class WithHtml(FitReport):
        def _repr_html_(self):
            return "<b>report</b>"

    data, metadata = ip.display_formatter.format(WithHtml(**vars(report)))
    assert data["text/html"] == "<b>report</b>" and "text/plain" in data and metadata == {"jupyter_repro": saved}
