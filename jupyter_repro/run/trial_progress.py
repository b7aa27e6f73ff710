"""Where a cell's seed trials stand, as events a caller can draw however it likes.

The trials (in the kernel, ``Session.trials``, or on a cluster, ``run/cluster_trials.py``)
know nothing of IPython: they hand each change to a ``progress`` callback as a
``TrialProgress``. Its ``str`` is the line a script prints (``progress=print``, the
default); the magics draw the same events as a bar updated in place in Jupyter
(``magics_progress.py``). Counts are the trials' own: done, running, failed, of ``total``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

#: what happened: the trials began, one finished (``row`` holds it), one failed, they were
#: stopped (an interrupt, a failure), or a note that changes no count (a warning, a replay)
KINDS = ("started", "finished", "failed", "stopped", "note")


@dataclass
class TrialProgress:
    """One change in a cell's trials; ``str()`` is its line for a plain terminal."""

    kind: str
    total: int
    done: int = 0
    running: int = 0
    failed: int = 0
    text: str = ""                                   # the line a script prints for it
    row: Optional[Dict[str, object]] = None          # a finished trial's table row
    rows: List[Dict[str, object]] = field(default_factory=list)  # every row finished so far, in finishing order

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind {self.kind!r} is not one of {KINDS}")

    def __str__(self) -> str:
        """The event's line; after a trial finished or failed, the counts on a line of their own."""
        if self.kind in ("finished", "failed"):
            return f"{self.text}\n    {self.counts}"
        return self.text

    @property
    def counts(self) -> str:
        return f"done {self.done}/{self.total}, running {self.running}, failed {self.failed}"

    @property
    def waiting(self) -> int:
        """Trials not yet started."""
        return self.total - self.done - self.running - self.failed


class Tracker:
    """Counts trials as they start and finish, and tells ``progress`` each change."""

    def __init__(self, progress, total: int):
        self.progress, self.total = progress, total
        self.done = self.running = self.failed = 0
        self.rows: List[Dict[str, object]] = []

    def _tell(self, kind: str, text: str, row=None) -> None:
        self.progress(TrialProgress(kind, self.total, self.done, self.running, self.failed, text, row,
                                    list(self.rows)))

    def started(self, text: str, running: int) -> None:
        self.running = running
        self._tell("started", text)

    def finished(self, row: Optional[Dict[str, object]], text: str, running: int) -> None:
        """One trial done; ``row`` None for one the kernel replays from its store afterwards."""
        self.done += 1
        self.running = running
        if row is not None:
            self.rows.append(row)
        self._tell("finished", text, row)

    def failed_one(self, text: str) -> None:
        self.failed += 1
        self.running = max(0, self.running - 1)
        self._tell("failed", text)

    def stopped(self, text: str) -> None:
        self.running = 0
        self._tell("stopped", text)

    def note(self, text: str) -> None:
        self._tell("note", text)
