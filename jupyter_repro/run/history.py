"""The recorded runs, shown: a table coloured by verdict, and their loss curves.

``ledger.history_frame`` gives the runs as a pandas DataFrame. ``HistoryFrame`` is that
DataFrame with an HTML form that marks each verdict (identical ✓, differs ✗...); its
text form and everything pandas derives from it stay those of a plain DataFrame, so
code that reads the table is unchanged. ``plot_runs`` draws each run's metric per epoch
(recorded in the ledger line), a repeat drawn over its earlier run in the same colour,
as the demo's figure: a repeat that reproduced sits exactly on its line.
"""
from __future__ import annotations

from html import escape
from typing import List

import pandas as pd

from ..errors import ReproError
from .verdict import STYLES, badge

#: verdicts whose run had the same inputs as an earlier one (``same_inputs_as``)
REPEATS = ("identical", "differs", "cached")


class HistoryFrame(pd.DataFrame):
    """The run ledger as a DataFrame that shows its verdicts in colour in a notebook."""

    @property
    def _constructor(self):
        return pd.DataFrame  # a slice, a filter, a copy: plain frames

    def _repr_html_(self) -> str:
        limit = pd.get_option("display.max_rows") or len(self)
        shown = self.tail(limit)
        columns = list(shown.columns)
        head = "".join(f"<th>{escape(str(name))}</th>" for name in [shown.index.name or ""] + columns)
        rows = []
        for run, row in shown.iterrows():
            status = str(row.get("verdict", "") or "")
            cells = "".join(f"<td>{badge(status) if name == 'verdict' and status else escape(_text(row[name]))}</td>"
                            for name in columns)
            tint = f" style='background:{STYLES['differs'][2]}'" if status == "differs" else ""
            rows.append(f"<tr data-repro-verdict='{escape(status)}'{tint}><th>{escape(str(run))}</th>{cells}</tr>")
        more = (f"<p>… {len(self) - len(shown)} earlier runs not shown (%repro_history --last N)</p>"
                if len(shown) < len(self) else "")
        return (f"<table class='dataframe repro-history'><thead><tr>{head}</tr></thead>"
                f"<tbody>{''.join(rows)}</tbody></table>{more}")


def _text(value) -> str:
    if value is None or (isinstance(value, float) and value != value) or value is pd.NA:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def plot_runs(records: List[dict], metric: str = "loss"):
    """A matplotlib Figure: ``metric`` per epoch for each run that recorded it, one line
    per run; a repeat (same inputs as an earlier run) is drawn as crosses over its
    earlier run's line, in its colour."""
    import matplotlib.pyplot as plt

    curves = [r for r in records if (r.get("history") or {}).get(metric)]
    if not curves:
        raise ReproError(f"no run recorded '{metric}' per epoch (runs recorded before jupyter-repro "
                         "kept the last epoch only); pick another with --metric NAME")
    figure, axes = plt.subplots(figsize=(7, 4.2), dpi=100)
    plt.close(figure)  # returned and shown once, not a second time by the inline backend
    colours = {}
    for record in curves:
        run, values = record["run"], record["history"][metric]
        epochs = range(1, len(values) + 1)
        earlier = record.get("same_inputs_as") if record.get("verdict") in REPEATS else None
        if earlier in colours:
            colours[run] = colours[earlier]
            word = {"identical": "identical", "differs": "DIFFERS", "cached": "cached"}[record["verdict"]]
            axes.plot(epochs, values, ls="none", marker="x", ms=7, color=colours[run],
                      label=f"run {run}: same inputs as run {earlier} ({word})")
        else:
            (line,) = axes.plot(epochs, values, lw=2.5, alpha=0.75,
                                label=f"run {run}: {record.get('model', '?')}, seed {record.get('seed', '?')}")
            colours[run] = line.get_color()
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.set(xlabel="epoch", ylabel=metric, title=f"{metric} per run; a repeat is drawn over its earlier run")
    if all(v > 0 for r in curves for v in r["history"][metric]):
        axes.set_yscale("log")
    axes.legend(fontsize=8)
    figure.tight_layout()
    return figure
