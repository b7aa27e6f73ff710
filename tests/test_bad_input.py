"""Bad input at every entry point: one clear line, nothing changed. In-process, a few seconds.

The five cases first (the notebook a CI log shows someone who did not write it), then a
Hypothesis battery: malformed notebooks, option strings for every magic and subcommand,
truncated or bit-flipped ledger lines, stored tensor files and legacy manifests, saved
fingerprints, and ``Session``'s public methods. The property each time: a one-line
``ReproError`` / ``UsageError`` / exit 2, or a correct result; never another exception,
never a changed model, never a half-written file. ``EXAMPLES`` counts what ran; the
last test hands the count to pytest's summary at the end of every run (conftest.py).
"""
import json
import struct
from collections import Counter
from pathlib import Path

import keras  # noqa: F401 -- imported before pytester's snapshot of sys.modules (see test_pytest_plugin)
import nbformat
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError

from jupyter_repro import Session, cli
from jupyter_repro.run import check as check_module
from jupyter_repro.run.check import BadNotebook, Check, KernelRun, read_cells, read_notebook
from jupyter_repro.errors import ReproError
from jupyter_repro.run.ledger import Ledger, history_frame, well_formed
from jupyter_repro.store.snapshot_store import SnapshotStore
from jupyter_repro.store.tensorfile import CorruptSnapshot
from jupyter_repro.run.verdict import decide

pytest_plugins = ["pytester"]

EXAMPLES = Counter()  # examples run, by battery
REFUSED = Counter()   # of which refused in one line (the others gave a correct result)


def fast(examples):
    """At most ``examples`` examples, no deadline (a shared 2-core machine), no example database."""
    return settings(max_examples=examples, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

MODEL = '''
import numpy as np, keras
model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.Dense(1)])
model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
X = np.ones((4, 3), "float32"); y = np.ones((4, 1), "float32")
'''
FIT = "%%repro_fit model\nhistory = model.fit(X, y, epochs=1, verbose=0)"


def one_line(text):
    text = str(text)
    assert text.strip() and "\n" not in text.strip() and "Traceback" not in text, text
    return text


def run_cli(capsys, *argv):
    """``jupyter-repro ARGV`` in this process: (exit status, stdout, stderr)."""
    try:
        cli.main(list(argv))
        code = 0
    except SystemExit as exit:
        code = exit.code or 0
    out, err = capsys.readouterr()
    return code, out, err


def valid_notebook(*sources, saved=None):
    cells = [nbformat.v4.new_code_cell(source) for source in sources]
    if saved is not None:
        cells[-1].outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "..."},
                                                    metadata={"jupyter_repro": saved}, execution_count=1)]
    return nbformat.v4.new_notebook(cells=cells)


# -- the five cases of the issue -------------------------------------------------

def test_check_refuses_a_notebook_with_wrong_types_in_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.ipynb"
    bad.write_text('{"cells": 5}')
    code, out, err = run_cli(capsys, "check", str(bad))
    assert code == 2 and out == ""
    assert one_line(err).startswith(f"jupyter-repro check: {bad} is not a notebook: its JSON has no 'nbformat'")
    bad.write_text('{"cells": 5, "nbformat": 4, "nbformat_minor": 5, "metadata": {}}')
    code, out, err = run_cli(capsys, "check", str(bad))
    assert code == 2 and f"{bad} is not a valid nbformat 4 notebook (data.cells must be array)" in one_line(err)


def test_check_refuses_a_file_that_is_not_json_in_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.ipynb"
    bad.write_text("this is not JSON")
    code, out, err = run_cli(capsys, "check", str(bad))
    assert code == 2
    assert one_line(err) == (f"jupyter-repro check: {bad} is not a notebook: not JSON text "
                             "(Expecting value: line 1 column 1 (char 0))\n")


def test_check_says_the_notebook_does_not_exist(tmp_path, capsys):
    code, out, err = run_cli(capsys, "check", str(tmp_path / "missing.ipynb"))
    assert code == 2
    assert one_line(err) == f"jupyter-repro check: {tmp_path / 'missing.ipynb'}: no such file; give the path of an .ipynb\n"


def test_pytest_repro_fails_an_unreadable_notebook_as_one_item_and_collects_the_rest(pytester):
    (pytester.path / "types.ipynb").write_text('{"cells": 5, "nbformat": 4, "nbformat_minor": 5, "metadata": {}}')
    (pytester.path / "text.ipynb").write_text("not JSON")
    nbformat.write(valid_notebook("x = 1"), pytester.path / "nofit.ipynb")  # collected: no fit cell, no item
    result = pytester.runpytest_inprocess("-p", "jupyter_repro.pytest_plugin", "--repro", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    text = result.stdout.str()
    assert "Interrupted" not in text and "Traceback" not in text and "TypeError" not in text
    assert "not compared: " + str(pytester.path / "types.ipynb") + " is not a valid nbformat 4 notebook (data.cells must be array)" in text
    assert "not compared: " + str(pytester.path / "text.ipynb") + " is not a notebook: not JSON text" in text


def test_a_notebook_nbformat_reads_is_read_the_same(tmp_path):
    """Strict is not stricter than nbformat: a 4.5 notebook whose cells lack ids (nbformat
    warns and adds them), a source split in lines, an nbformat 3 notebook, all read."""
    notebook = json.loads(nbformat.writes(valid_notebook("%load_ext jupyter_repro", FIT)))
    for cell in notebook["cells"]:
        del cell["id"]
    notebook["cells"][1]["source"] = FIT.splitlines(keepends=True)
    (tmp_path / "noid.ipynb").write_text(json.dumps(notebook))
    cells = read_cells(read_notebook(tmp_path / "noid.ipynb"))
    assert [c.source for c in cells] == ["%load_ext jupyter_repro", FIT] and cells[1].is_fit
    old = nbformat.v3.new_notebook(worksheets=[nbformat.v3.new_worksheet(cells=[nbformat.v3.new_code_cell(FIT)])])
    (tmp_path / "v3.ipynb").write_text(nbformat.v3.writes_json(old))
    assert read_cells(read_notebook(tmp_path / "v3.ipynb"))[0].is_fit


def test_history_refuses_a_negative_last(ip):
    with pytest.raises(UsageError, match=r"^--last takes how many of the latest runs to show, at least 1; got -3$") as error:
        ip.run_line_magic("repro_history", "--last -3")
    assert type(error.value) is UsageError
    with pytest.raises(ReproError, match="at least 1; got 0"):
        history_frame([], last=0)


# -- notebooks -------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, prefix + (key,))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, prefix + (index,))


@st.composite
def malformed_notebooks(draw):
    """Bytes of a notebook: a valid one with a part replaced or removed, a version
    changed, arbitrary JSON, or arbitrary bytes."""
    kind = draw(st.sampled_from(["replace", "delete", "version", "json", "bytes", "truncate"]))
    notebook = json.loads(nbformat.writes(valid_notebook("%load_ext jupyter_repro", FIT, saved={
        "input_key": "k", "result": "r", "inputs": {"fit.x": "a"}, "env": {"keras": "3"}})))
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    if kind == "bytes":
        return draw(st.binary(max_size=64))
    if kind == "version":
        notebook["nbformat"], notebook["nbformat_minor"] = draw(json_values), draw(json_values)
    elif kind in ("replace", "delete"):
        paths = [p for p in _paths(notebook) if p]
        path = draw(st.sampled_from(paths))
        parent = notebook
        for part in path[:-1]:
            parent = parent[part]
        if kind == "delete":
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values)
    data = json.dumps(notebook).encode()
    if kind == "truncate":
        data = data[:draw(st.integers(0, len(data) - 1))]
    return data


@fast(150)
@given(data=malformed_notebooks())
def test_battery_notebooks(tmp_path_factory, data):
    EXAMPLES["notebooks"] += 1
    path = tmp_path_factory.mktemp("nb") / "fuzzed.ipynb"
    path.write_bytes(data)
    try:
        cells = read_cells(read_notebook(path), path.name)
    except BadNotebook as error:
        one_line(error)
        assert str(path.name) in str(error)
        REFUSED["notebooks"] += 1
        return
    check = Check(path, cells, runs=2, kernels=[KernelRun(), KernelRun()])
    for cell in cells:  # a readable notebook compares without surprises, saved fingerprints included
        fits = [{"input_key": "k", "result": "other", "inputs": {"fit.x": "b"}, "env": {"keras": "4"}}]
        check.kernels = [KernelRun(fits={cell.index: fits}), KernelRun(fits={cell.index: fits})]
        check.outcome(cell)
    check.table()


@fast(60)
@given(saved=json_values | st.fixed_dictionaries({"input_key": json_values, "result": json_values},
                                                  optional={"inputs": json_values, "env": json_values,
                                                            "reason": json_values}))
def test_battery_saved_fingerprints(tmp_path_factory, saved):
    EXAMPLES["saved fingerprints"] += 1
    path = tmp_path_factory.mktemp("nb") / "saved.ipynb"
    nbformat.write(valid_notebook("%load_ext jupyter_repro", FIT, saved=saved), path)
    try:
        cells = read_cells(read_notebook(path), path.name)
    except BadNotebook as error:
        assert "cell 2's output" in one_line(error)
        REFUSED["saved fingerprints"] += 1
        return
    fits = [{"input_key": "k", "result": "r", "inputs": {"fit.x": "a"}, "env": {"keras": "3"}}]
    check = Check(path, cells, runs=1, against="saved", kernels=[KernelRun(fits={1: fits})])
    check.outcome(cells[1])
    check.table()


# -- magics ----------------------------------------------------------------------

VALUES = st.one_of(st.integers(-3, 3), st.sampled_from(["2**40", "1,2", "1,1", "-1", "4294967296", "model",
                                                        "nope", "loss", "''", '"', "x=1", "--", "1.5"]),
                   st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=6))
OPTIONS = {
    "repro_seed": ["--no-deterministic", "-h"],
    "repro_snapshot": ["--name", "model", "X"],
    "repro_fit": ["--seed", "--trials", "--seeds", "--metric", "--cache", "--verify", "model", "m2"],
    "repro_history": ["--model", "--last", "--plot", "--metric"],
    "repro_env": ["--x"],
}


def option_lines(magic):
    token = st.sampled_from(OPTIONS[magic]) | VALUES.map(str)
    return st.lists(token, max_size=5).map(" ".join)


def state(shell):
    """The model's variables, its optimizer object, and the namespace's names and objects."""
    from jupyter_repro import model_fingerprint

    model = shell.user_ns["model"]
    names = {k: id(v) for k, v in shell.user_ns.items() if not k.startswith("_") and k not in ("history", "Out")}
    return model_fingerprint(model), id(model.optimizer), names


@pytest.fixture
def seeded(ip):
    ip.run_cell("%repro_seed 7")
    ip.run_cell(MODEL)
    ip.run_cell("%repro_snapshot model")
    ip.run_cell(FIT)  # one run in the ledger, so --plot and --last have something to show
    return ip


@fast(120)
@given(magic=st.sampled_from(sorted(OPTIONS)), data=st.data())
def test_battery_magic_options(seeded, magic, data):
    line = data.draw(option_lines(magic), label="line")
    EXAMPLES["magic options"] += 1
    before = state(seeded)
    try:
        if magic == "repro_fit":
            seeded.run_cell_magic(magic, line, "history = model.fit(X, y, epochs=1, verbose=0)")
        else:
            seeded.run_line_magic(magic, line)
    except UsageError as error:
        assert type(error) is UsageError
        one_line(error)
        assert state(seeded) == before, line
        REFUSED["magic options"] += 1
        return


# -- the command line --------------------------------------------------------------

class Ran(Exception):
    """The command reached the work it does with the options as given (stubbed here)."""


def ran(*args, **kwargs):
    raise Ran()


SUBCOMMANDS = {
    "check": ["--runs", "--kernel", "--timeout", "--against", "--set", "kernels", "saved", "both", "EPOCHS=2",
              "NB", "MISSING", "--CheckApp.runs", "--bogus"],
    "history": ["LEDGER", "MISSING", "--log-level", "--bogus"],
    "demo": ["--data", "--epochs", "--alphas", "--output", "--notebook", "--native", "NB", "1.0,0.4", "0", "--bogus"],
    "install-kernel": ["--name", "--seed", "--user", "--sys-prefix", "--prefix", "--backend", "--display-name",
                       "tensorflow", "--bogus"],
}


@pytest.fixture
def cli_files(tmp_path, monkeypatch):
    monkeypatch.setattr(check_module, "run_in_kernel", ran)
    monkeypatch.setattr("jupyter_repro.demo.run_demo", ran)
    monkeypatch.setattr("jupyter_repro.kernelspec.install_kernel", ran)
    nbformat.write(valid_notebook("%load_ext jupyter_repro\nEPOCHS = 3", FIT), tmp_path / "nb.ipynb")
    Ledger(tmp_path / "ledger").append({"model": "model", "input_key": "k", "result": "r", "time": "2026-01-01T00:00"})
    return {"NB": str(tmp_path / "nb.ipynb"), "LEDGER": str(tmp_path / "ledger"), "MISSING": str(tmp_path / "no")}


@fast(150)
@given(command=st.sampled_from(sorted(SUBCOMMANDS) + ["bogus"]), data=st.data())
def test_battery_command_line(cli_files, capsys, command, data):
    token = st.sampled_from(SUBCOMMANDS.get(command, ["x"])) | VALUES.map(str)
    argv = [cli_files.get(t, t) for t in data.draw(st.lists(token, max_size=5), label="argv")]
    if command == "install-kernel":
        assume("--prefix" in argv or "--help" in argv)  # never the user's own kernels, even stubbed
    EXAMPLES["command line"] += 1
    try:
        code, out, err = run_cli(capsys, command, *argv)
    except Ran:
        return
    if code == 0:  # a correct result: history's table, or --help
        return
    assert code == 2, (argv, code, err)
    one_line(err)
    REFUSED["command line"] += 1


PYTEST_OPTIONS = ["--repro", "--repro-runs", "--repro-kernel", "--repro-timeout", "--repro-set", "--repro-against",
                  "saved", "kernels", "EPOCHS=2", "EPOCHS", "x=two", "bad.ipynb"]


@fast(40)
@given(options=st.lists(st.sampled_from(PYTEST_OPTIONS) | VALUES.map(str), max_size=5))
def test_battery_pytest_options(pytester, monkeypatch, options):
    """The plugin's options, on an unreadable notebook (so nothing runs a kernel): a usage
    error saying which option, or a run whose notebook fails as one item."""
    EXAMPLES["pytest options"] += 1
    monkeypatch.setattr(check_module, "run_in_kernel", ran)
    (pytester.path / "bad.ipynb").write_text('{"cells": 5}')
    result = pytester.runpytest_inprocess("-p", "jupyter_repro.pytest_plugin", "-p", "no:cacheprovider", "--repro",
                                          *options, "bad.ipynb")
    text = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in text and "INTERNALERROR" not in text, text
    if result.ret == pytest.ExitCode.USAGE_ERROR:
        assert "error" in result.stderr.str().lower(), text
        REFUSED["pytest options"] += 1
    else:
        result.assert_outcomes(failed=1)
        assert "bad.ipynb is not a notebook: its JSON has no 'nbformat' version" in text


# -- stored files ----------------------------------------------------------------

ARRAYS = [np.arange(6, dtype="float32").reshape(2, 3), np.array([1, -2], "int64"), np.array(3.5, "float64")]
SPECS = [(f"layer/v{i}", a.shape, str(a.dtype)) for i, a in enumerate(ARRAYS)]


def damage(data: bytes, how: str, where: int, bit: int) -> bytes:
    if how == "truncate":
        return data[:where % len(data)]
    if how == "flip":
        at = where % len(data)
        return data[:at] + bytes([data[at] ^ (1 << bit)]) + data[at + 1:]
    if how == "header-length":
        return struct.pack("<Q", where) + data[8:]
    return data[:where % len(data)] + bytes([bit]) + data[where % len(data):]  # "insert"


hows = st.sampled_from(["truncate", "flip", "header-length", "insert"])


@fast(150)
@given(how=hows, where=st.integers(0, 2**16), bit=st.integers(0, 7))
def test_battery_tensor_files(tmp_path_factory, how, where, bit):
    EXAMPLES["tensor files"] += 1
    store = SnapshotStore(tmp_path_factory.mktemp("store"))
    manifest = store.save("model", "f" * 32, SPECS, ARRAYS)
    path = Path(manifest["manifest"])
    path.write_bytes(damage(path.read_bytes(), how, where, bit))
    refused = False
    for read in (lambda: store.find("model", "f" * 32), lambda: store.saved("model"), lambda: store.load(manifest),
                 lambda: store.verify(manifest)):
        try:
            found = read()
        except CorruptSnapshot as error:
            assert str(path) in one_line(error)
            refused = True
            continue
        if isinstance(found, list) and found and isinstance(found[0], np.ndarray):  # load: the very bytes, or refused
            assert all(a.dtype == b.dtype and a.tobytes() == b.tobytes() for a, b in zip(found, ARRAYS))
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # nothing half-written beside it
    REFUSED["tensor files"] += refused


@fast(60)
@given(legacy=st.dictionaries(st.sampled_from(["name", "fingerprint", "created", "format", "data", "nbytes",
                                               "checksum", "variables"]), json_values) | json_values)
def test_battery_legacy_manifests(tmp_path_factory, legacy):
    EXAMPLES["legacy manifests"] += 1
    store = SnapshotStore(tmp_path_factory.mktemp("store"))
    store.directory.mkdir(parents=True)
    if isinstance(legacy, dict):
        legacy.setdefault("name", "model")
    (store.directory / "model-ffff.json").write_text(json.dumps(legacy))
    store.saved("model")
    store.files()
    manifest = store.find("model", "ffff")
    if manifest is not None:
        try:
            store.load(manifest)
        except CorruptSnapshot as error:
            one_line(error)


LEDGER_RECORDS = [
    {"model": "model", "seed": 1, "input_key": "k1", "result": "r1", "inputs": {"fit.x": "a"}, "time": "2026-01-01T10:00",
     "metrics": {"loss": 0.5}, "history": {"loss": [0.9, 0.5]}, "seconds": 1.5, "verdict": "first",
     "same_inputs_as": None, "env": {"keras": "3.15.1"}},
    {"model": "model", "seed": 1, "input_key": "k1", "result": "r1", "inputs": {"fit.x": "a"}, "time": "2026-01-01T10:01",
     "metrics": {"loss": 0.5}, "history": {"loss": [0.9, 0.5]}, "seconds": 1.4, "verdict": "identical",
     "same_inputs_as": 1, "env": {"keras": "3.15.1"}},
]


@pytest.fixture(scope="module")
def written_ledger(tmp_path_factory):
    """A ledger of two runs, as ``Ledger.append`` writes it: (its bytes, {environment file: bytes})."""
    folder = tmp_path_factory.mktemp("ledger")
    for record in LEDGER_RECORDS:
        Ledger(folder).append(record)
    return (folder / "ledger.jsonl").read_bytes(), {p.name: p.read_bytes() for p in (folder / "environments").iterdir()}


@fast(150)
@given(how=hows | st.just("line"), where=st.integers(0, 2**12), bit=st.integers(0, 7), line=json_values)
def test_battery_ledger_lines(tmp_path_factory, capsys, written_ledger, how, where, bit, line):
    EXAMPLES["ledger lines"] += 1
    folder = tmp_path_factory.mktemp("ledger")
    data, environments = written_ledger
    data = data + json.dumps(line).encode() + b"\n" if how == "line" else damage(data, how, where, bit)
    (folder / "environments").mkdir()
    (folder / "ledger.jsonl").write_bytes(data)
    for name, env in environments.items():  # the stored environment too, now and then
        (folder / "environments" / name).write_bytes(damage(env, "flip", where, bit) if where % 5 == 0 else env)
    records = Ledger(folder).records()
    assert all(well_formed(dict(r, env={})) for r in records)
    history_frame(records).to_string()
    history_frame(records, model="model", last=1)
    if where % 10 == 0:  # a figure costs 100 ms
        from jupyter_repro.run.history import plot_runs

        try:
            plot_runs(records)
        except ReproError as error:
            one_line(error)
    decide(dict(LEDGER_RECORDS[0], run=len(records) + 1), records)
    code, out, err = run_cli(capsys, "history", str(folder))
    assert code == 0, err


# -- Session's public methods ----------------------------------------------------

anything = json_values | st.builds(object) | st.floats() | st.integers()


@fast(80)
@given(method=st.sampled_from(["seed", "snapshot", "snapshot_for", "cache_max_bytes", "fit"]), value=anything)
def test_battery_session_methods(tmp_path_factory, method, value):
    EXAMPLES["Session methods"] += 1
    session = Session(store=str(tmp_path_factory.mktemp("store") / ".repro"))
    try:
        if method == "cache_max_bytes":
            session.cache_max_bytes = value
        elif method == "fit":
            session.fit(value, lambda: None)
        elif method == "snapshot_for":
            session.snapshot_for(value if isinstance(value, str) else None)
        else:
            getattr(session, method)(value)
    except ReproError as error:
        one_line(error)
        REFUSED["Session methods"] += 1


@pytest.fixture(scope="module")
def keras_session(tmp_path_factory):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    session = Session(seed=3, store=str(tmp_path_factory.mktemp("store") / ".repro"))
    session.snapshot(model, "model")
    return session, model


@fast(20)
@given(method=st.sampled_from(["fit", "trials", "snapshot", "snapshot_for"]),
       options=st.fixed_dictionaries({}, optional={"seed": anything, "cache": anything, "verify": anything,
                                                   "label": anything, "seeds": anything, "name": anything}
                                     ).filter(bool))
def test_battery_session_with_a_model(keras_session, method, options):
    """``Session``'s methods with a model and odd arguments: a one-line ``ReproError``
    and the model as it was, or a fit."""
    from jupyter_repro import model_fingerprint

    EXAMPLES["Session with a model"] += 1
    session, model = keras_session
    X, y = np.ones((4, 3), "float32"), np.ones((4, 1), "float32")
    body = lambda: model.fit(X, y, epochs=1, verbose=0)  # noqa: E731
    before = model_fingerprint(model), id(model.optimizer)
    seeds = options.pop("seeds", [1])
    name = options.pop("name", None)
    try:
        if method == "fit":
            session.fit(model, body, **options)
        elif method == "trials":
            session.trials(model, body, seeds, progress=lambda text: None, label=options.get("label"))
        elif method == "snapshot":
            session.snapshot(model, name)
        else:
            session.snapshot_for(name)
    except ReproError as error:
        one_line(error)
        assert (model_fingerprint(model), id(model.optimizer)) == before
        REFUSED["Session with a model"] += 1


def test_battery_count(record_property):
    """How many examples each battery ran, for the run's summary (conftest.py prints it).
    Run with the module's other tests (as pytest does): alone, no battery has run."""
    if not EXAMPLES:
        pytest.skip("no battery ran in this process (run the whole module)")
    assert all(n >= 1 for n in EXAMPLES.values()) and set(REFUSED) <= set(EXAMPLES)
    record_property("battery", ", ".join(f"{n} {name}" + (f" ({REFUSED[name]} refused)" if name in REFUSED else "")
                                         for name, n in EXAMPLES.items())
                    + f"; {sum(EXAMPLES.values())} examples in all")


def test_saved_fingerprints_with_null_parts_compare_as_unknown(tmp_path):
    """Found by the battery (a random run): ``"env": null`` in saved fingerprints raised a
    TypeError in the comparison; a part saved as null is one the notebook does not know."""
    saved = {"input_key": "k", "inputs": None, "result": "r", "env": None}
    fit = {"input_key": "k", "inputs": {"fit.x": "a"}, "result": "other", "env": {"keras": "3.15.1"}}
    assert check_module.difference(saved, fit, saved=True) == (
        "result differs (r vs other) with the same inputs; the environment of one of them is not known")
    assert check_module.difference(saved, dict(fit, input_key="j"), saved=True) == (
        "inputs differ: x of model.fit; the environment of one of them is not known")


def test_an_old_notebook_its_converter_refuses_and_json_nested_too_deep_are_one_line(tmp_path):
    """Found in review: nbformat 3 with a cell lacking 'outputs' raised jsonschema's
    ValidationError from the converter; '[' * 100000 a RecursionError from json."""
    old = tmp_path / "v3.ipynb"
    old.write_text(json.dumps({"nbformat": 3, "nbformat_minor": 0, "metadata": {}, "worksheets": [
        {"cells": [{"cell_type": "code", "input": "x = 1", "language": "python", "metadata": {}}],
         "metadata": {}}]}))
    deep = tmp_path / "deep.ipynb"
    deep.write_text("[" * 100000)
    for path, words in ((old, "cannot be converted to version 4"), (deep, "nests deeper than Python reads")):
        with pytest.raises(BadNotebook, match=words) as refused:
            read_notebook(path)
        one_line(refused.value)


def test_check_with_a_kernel_that_does_not_exist_is_one_line_before_any_kernel(tmp_path, capsys):
    """Found in review: jupyter_client logged its own traceback before the one line."""
    path = tmp_path / "ok.ipynb"
    nbformat.write(valid_notebook("%load_ext jupyter_repro", "%%repro_fit model\nmodel.fit(X, y)"), path)
    code, out, err = run_cli(capsys, "check", str(path), "--kernel", "no-such-kernel")
    assert code == 2 and "Traceback" not in err and "ERROR" not in err
    assert err.strip().endswith("no such kernel: 'no-such-kernel' (see jupyter kernelspec list)")
    assert len(err.strip().splitlines()) == 1
