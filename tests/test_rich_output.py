"""Rich output: the HTML forms of the verdict, fit report, snapshot and seed report,
``%repro_history`` coloured by verdict, ``%repro_history --plot``; text forms unchanged."""
import pandas as pd
import pytest
from IPython.core.error import UsageError

from jupyter_repro.run.fit import FitReport
from jupyter_repro.run.history import HistoryFrame
from jupyter_repro.run.ledger import Ledger, history_frame
from jupyter_repro.run.verdict import STYLES, Verdict
from kernel import Kernel

MODEL = '''
import numpy as np, keras
rng = np.random.default_rng(0)
X = rng.normal(size=(32, 4)).astype("float32"); y = X.sum(1)
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4, activation="relu"),
                          keras.layers.Dropout(0.2), keras.layers.Dense(1)])
model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
'''
FIT = "%%repro_fit\nhistory = model.fit(X * SCALE, y, epochs=2, batch_size=8, verbose=0)"

EARLIER = {"run": 2, "time": "2026-01-02T12:04:00+00:00", "env": {}}


def verdicts():
    record = {"run": 5, "reason": "x is a <generator> & cannot be read"}
    return {"identical": Verdict("identical", record, EARLIER), "differs": Verdict("differs", record, EARLIER),
            "not compared": Verdict("not compared", record), "first": Verdict("first", record),
            "cached": Verdict("cached", record, EARLIER)}


@pytest.mark.parametrize("status", list(STYLES))
def test_verdict_html_shows_its_state_visibly(status):
    verdict = verdicts()[status]
    html = verdict._repr_html_()
    mark, colour, background = STYLES[status]
    assert f"data-repro-verdict='{status}'" in html
    assert f">{mark}</span>" in html and f"color:{colour}" in html and f"background:{background}" in html
    assert "run #5" in str(verdict) and "<" not in str(verdict)[:1]       # the text form stays
    others = [STYLES[s][1] for s in STYLES if s != status and STYLES[s][1] != colour]
    assert not any(f"color:{c}" in html for c in others)                  # one state, one colour


def test_verdict_marks_and_summary():
    found = verdicts()
    assert [STYLES[s][0] for s in ("identical", "differs")] == ["identical ✓", "differs ✗"]
    assert found["identical"].summary == "identical to run 2"
    assert found["differs"].summary == "differs from run 2"
    assert found["cached"].summary == "cached from run 2" and found["first"].summary == "first"


def test_html_escapes_what_it_shows():
    html = verdicts()["not compared"]._repr_html_()
    assert "x is a &lt;generator&gt; &amp; cannot be read" in html and "<generator>" not in html
    report = FitReport("<img src=x onerror=alert(1)>", 42, "snap<1>", "ab<cd" * 8, fingerprint="ef&gh" * 8,
                       seconds=1.5, success=True, verdict=verdicts()["identical"], notes=["note <b>bold</b>"])
    html = report._repr_html_()
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "snap&lt;1&gt;" in html and "note &lt;b&gt;bold&lt;/b&gt;" in html and "<b>bold" not in html
    assert "data-repro-verdict='identical'" in html
    assert str(report).startswith("repro_fit done: <img")                 # text stays text


@pytest.fixture
def seeded(ip):
    ip.run_cell("%repro_seed 42")
    ip.run_cell(MODEL)
    return ip


def test_snapshot_and_seed_report_html(seeded):
    snapshot = seeded.run_cell("%repro_snapshot model --name <model&1>").result
    html = snapshot._repr_html_()
    assert "&lt;model&amp;1&gt;" in html and "<model&1>" not in html
    assert snapshot.fingerprint in html and "5 (27 values, 116 bytes, in memory)" in html and "Adam" in html
    assert "saved to" in html
    seed_html = seeded.run_cell("%repro_seed 7").result._repr_html_()
    assert "<th style='text-align:left'>seed</th><td style='text-align:left'>7</td>" in seed_html


def test_fit_report_html_after_a_repeat(seeded):
    seeded.run_cell("%repro_snapshot model")
    seeded.run_cell("SCALE = 1.0")
    first = seeded.run_cell(FIT).result
    again = seeded.run_cell(FIT).result
    assert "data-repro-verdict='first'" in first._repr_html_()
    html = again._repr_html_()
    assert "data-repro-verdict='identical'" in html and "identical ✓" in html
    assert again.fingerprint[:12] in html and "loss <code>" in html


def ledger_with_every_verdict(tmp_path):
    ledger = Ledger(tmp_path)
    for verdict, same in (("first", None), ("identical", 1), ("differs", 1), ("not compared", None),
                          ("cached", 1)):
        ledger.append({"model": "m<1>", "input_key": "k", "result": "r", "verdict": verdict,
                       "same_inputs_as": same, "metrics": {"loss": 0.5}})
    return ledger


def test_history_is_a_dataframe_shown_by_verdict(tmp_path):
    frame = history_frame(ledger_with_every_verdict(tmp_path).records())
    assert isinstance(frame, HistoryFrame) and isinstance(frame, pd.DataFrame)
    assert list(frame["verdict"]) == ["first", "identical", "differs", "not compared", "cached"]
    assert list(frame["repeat of"].astype(object).where(frame["repeat of"].notna(), None)) == [None, 1, 1, None, 1]
    assert type(frame.tail(2)) is pd.DataFrame and type(frame[frame["loss"] > 0]) is pd.DataFrame
    html = frame._repr_html_()
    for run, status in enumerate(frame["verdict"], 1):
        assert f"data-repro-verdict='{status}'" in html and f">{STYLES[status][0]}</span>" in html
    differs_row = html.split("data-repro-verdict='differs'")[1].split("</tr>")[0]
    assert f"background:{STYLES['differs'][2]}" in differs_row
    assert "m&lt;1&gt;" in html and "m<1>" not in html
    assert "identical" in frame.to_string()                      # the text form: a plain table


def test_history_html_shows_the_last_rows_of_a_long_ledger(tmp_path):
    ledger = Ledger(tmp_path)
    for _ in range(5):
        ledger.append({"model": "m", "input_key": "k", "result": "r", "verdict": "first"})
    with pd.option_context("display.max_rows", 3):
        html = history_frame(ledger.records())._repr_html_()
    assert html.count("<tr data-repro-verdict") == 3 and "2 earlier runs not shown" in html


def test_history_plot_draws_a_repeat_over_its_earlier_run(seeded):
    seeded.run_cell("%repro_snapshot model")
    for scale in (1.0, 2.0, 1.0):
        seeded.run_cell(f"SCALE = {scale}")
        seeded.run_cell(FIT)
    figure = seeded.run_cell("%repro_history --plot").result
    (axes,) = figure.axes
    first, other, again = axes.get_lines()       # one line per run
    assert first.get_linestyle() == "-" and other.get_linestyle() == "-"
    assert again.get_linestyle() == "None" and again.get_marker() == "x"
    assert again.get_color() == first.get_color() != other.get_color()
    assert list(again.get_ydata()) == list(first.get_ydata()) != list(other.get_ydata())  # the twin
    assert list(first.get_xdata()) == [1, 2]
    assert [t.get_text() for t in axes.get_legend().get_texts()][2] == "run 3: same inputs as run 1 (identical)"
    records = seeded.magics_manager.registry["ReproMagics"].session.ledger.records()
    assert list(first.get_ydata()) == records[0]["history"]["loss"]   # the ledger's per-epoch values
    assert len(seeded.run_cell("%repro_history --plot --last 2").result.axes[0].get_lines()) == 2
    with pytest.raises(UsageError, match="no run recorded 'val_loss' per epoch"):
        seeded.run_cell("%repro_history --plot --metric val_loss")


def test_rich_output_reaches_a_real_kernel(tmp_path):
    """What a notebook receives: the verdict as HTML, the plot as a PNG, shown once."""
    with Kernel(env={"KERAS_BACKEND": "tensorflow"}, cwd=str(tmp_path)) as kernel:
        kernel.run("%load_ext jupyter_repro\n%repro_seed 42")
        kernel.run(MODEL + "\n%repro_snapshot model\nSCALE = 1.0")
        kernel.run(FIT)
        outputs = displayed(kernel, FIT)
        (html,) = [o["data"]["text/html"] for o in outputs if "text/html" in o["data"]]
        assert "data-repro-verdict='identical'" in html and "identical ✓" in html
        assert "→ identical ✓" in outputs[-1]["data"]["text/plain"]
        plots = displayed(kernel, "%repro_history --plot")
        assert [sorted(o["data"]) for o in plots] == [["image/png", "text/plain"]]   # once, as an image
        table = displayed(kernel, "%repro_history")
        assert "data-repro-verdict='identical'" in table[0]["data"]["text/html"]


def displayed(kernel, code):
    """The display data and execute results ``code`` sends, in order."""
    outputs = []

    def hook(msg):
        if msg["msg_type"] in ("display_data", "execute_result"):
            outputs.append(msg["content"])
        elif msg["msg_type"] == "error":
            raise AssertionError(f"{msg['content']['ename']}: {msg['content']['evalue']}")

    kernel.client.execute_interactive(code, output_hook=hook, timeout=300)
    return outputs
