"""Trials report structured progress (``run/trial_progress.py``); the magics draw it as a bar
updated in place in Jupyter (``progress_bar.py``) and as lines elsewhere.

In-process: the events' counts for real in-kernel trials, and their two renderings. In a
real kernel: the display_data message carries the bar (an HTML ``<progress>`` with a
text/plain fallback) and each update_display_data, on the same display id, the counts as
trials finish.
"""
import re

import pytest

from jupyter_repro.progress_bar import ProgressBar, TrialsView
from jupyter_repro.run.trial_progress import TrialProgress, Tracker
from kernel import Kernel

SETUP = '''
%load_ext jupyter_repro
%repro_seed 42
import numpy as np, keras
rng = np.random.default_rng(0)
X = rng.normal(size=(64, 4)).astype("float32"); y = X.sum(1)
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
model.compile(optimizer="adam", loss="mse")
%repro_snapshot model
'''
FIT = "%%repro_fit model --trials 3\nmodel.fit(X, y, epochs=1, batch_size=32, verbose=0)"


def test_the_tracker_counts_and_says_each_line():
    heard = []
    tracker = Tracker(heard.append, 3)
    tracker.started("3 trials on 2 workers", running=2)
    tracker.finished({"seed": 42, "loss": 0.5}, "trial seed 42: loss 0.5", running=2)
    tracker.failed_one("trial failed")
    tracker.stopped("stopped: 1 trials cancelled, 1 recorded")
    assert [(e.kind, e.done, e.running, e.failed) for e in heard] == [
        ("started", 0, 2, 0), ("finished", 1, 2, 0), ("failed", 1, 1, 1), ("stopped", 1, 0, 1)]
    assert str(heard[1]) == "trial seed 42: loss 0.5\n    done 1/3, running 2, failed 0"
    assert heard[-1].rows == [{"seed": 42, "loss": 0.5}] and str(heard[0]) == "3 trials on 2 workers"
    with pytest.raises(ValueError, match="kind 'begun'"):
        TrialProgress("begun", 3)


def test_in_kernel_trials_report_each_trial_started_and_finished(ip):
    ip.run_cell(SETUP.replace("%load_ext jupyter_repro\n", ""))
    heard = []
    session, model = ip.magics_manager.registry["ReproMagics"].session, ip.user_ns["model"]
    session.trials(model, lambda: model.fit(ip.user_ns["X"], ip.user_ns["y"], epochs=1, verbose=0),
                   [42, 43, 44], progress=heard.append)
    assert [(e.kind, e.done, e.running) for e in heard] == [
        ("started", 0, 1), ("finished", 1, 0), ("started", 1, 1), ("finished", 2, 0), ("started", 2, 1),
        ("finished", 3, 0)]
    assert [row["seed"] for row in heard[-1].rows] == [42, 43, 44]


def test_a_plain_shell_prints_lines_and_a_view_draws_the_bar(capsys):
    event = TrialProgress("finished", 4, done=1, running=2, text="trial seed 42: loss 0.5",
                          rows=[{"seed": 42, "loss": 0.5}])
    ProgressBar(shell=object())(event)  # no kernel: lines, as a script prints them
    assert capsys.readouterr().out == "trial seed 42: loss 0.5\n    done 1/4, running 2, failed 0\n"
    view = TrialsView(event)
    assert repr(view) == "trials [######..................] done 1/4, running 2, failed 0"
    assert '<progress value="1" max="4"></progress>' in view._repr_html_()
    assert "<td>42</td><td>0.5</td>" in view._repr_html_()
    assert "<td>&lt;b&gt;</td>" in TrialsView(TrialProgress("finished", 1, 1, rows=[{"seed": "<b>"}]))._repr_html_()


def bars(displays):
    """(value, max, text/plain) of each bar the kernel sent, and the display ids they used."""
    found, ids = [], set()
    for _, content in displays:
        page = content["data"].get("text/html", "")
        match = re.search(r'<progress value="(\d+)" max="(\d+)">', page)
        if match:
            found.append((int(match[1]), int(match[2]), content["data"]["text/plain"]))
            ids.add(content["transient"]["display_id"])
    return found, ids


def test_a_kernel_shows_one_bar_updated_in_place_as_trials_finish():
    with Kernel() as kernel:
        kernel.run(SETUP)
        printed = kernel.run(FIT)
        kinds = [kind for kind, _ in kernel.displays]
        found, ids = bars(kernel.displays)
    assert kinds[0] == "display_data" and set(kinds[1:]) == {"update_display_data"} and len(ids) == 1
    assert [(value, top) for value, top, _ in found] == [(0, 3), (1, 3), (1, 3), (2, 3), (2, 3), (3, 3)]
    assert found[-1][2] == "trials [########################] done 3/3, running 0, failed 0"
    assert "trial 3/3: seed 44" in printed and "done 3/3" not in printed  # the counts are the bar's
