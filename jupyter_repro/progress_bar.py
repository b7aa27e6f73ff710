"""Seed trials' progress in the notebook: one bar updated in place, the rows as they finish.

The core hands ``TrialProgress`` events to a callback (``run/trial_progress.py``) and knows
nothing of IPython. In a Jupyter kernel ``ProgressBar`` shows them as one display, an HTML
``<progress>`` with the counts and a table of the finished trials (and a text/plain
fallback for front ends without HTML), sent once with a ``display_id`` and then updated in
place; no widget library is needed. Each event's line still goes to stdout there: it
carries what a bar cannot (the result's fingerprint, the verdict, an arithmetic
difference). In a terminal IPython, where an update would print the whole bar again, it
prints each event's line with its counts, as a script does.
"""
from __future__ import annotations

import html

from .run.trial_progress import TrialProgress

#: cells of the text bar
WIDTH = 24


class ProgressBar:
    """A ``progress`` callback for ``Session.trials`` that draws its events for ``shell``."""

    def __init__(self, shell):
        self.in_kernel = getattr(shell, "kernel", None) is not None  # ipykernel's shell has its kernel
        self.handle = None

    def __call__(self, event) -> None:
        if not isinstance(event, TrialProgress):  # a plain line from elsewhere
            print(event, flush=True)
            return
        if not self.in_kernel:
            print(event, flush=True)
            return
        if event.text:
            print(event.text, flush=True)
        view = TrialsView(event)
        if self.handle is None:
            from IPython.display import display

            self.handle = display(view, display_id=True)
        else:
            self.handle.update(view)


class TrialsView:
    """One state of the trials: the bar, the counts and the finished rows."""

    def __init__(self, event: TrialProgress):
        self.event = event

    def __repr__(self) -> str:
        event = self.event
        filled = round(WIDTH * event.done / event.total) if event.total else WIDTH
        return f"trials [{'#' * filled}{'.' * (WIDTH - filled)}] {event.counts}" + _stopped(event)

    def _repr_html_(self) -> str:
        event = self.event
        columns = list(dict.fromkeys(key for row in event.rows for key in row))
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(row.get(c)))}</td>" for c in columns) + "</tr>"
                       for row in event.rows)
        table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>" if event.rows else ""
        return (f'<div class="repro-trials"><progress value="{event.done}" max="{event.total}"></progress> '
                f"<span>{html.escape(event.counts + _stopped(event))}</span>{table}</div>")


def _stopped(event: TrialProgress) -> str:
    return f" ({event.text})" if event.kind == "stopped" else ""


def _cell(value) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)
