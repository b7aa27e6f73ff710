"""The verdict under a fit cell, compared with the runs recorded before it.

Four honest answers, and a fifth for the cache:

* **first**: no earlier run had these inputs (and, when the model ran before, which
  inputs changed since its last run);
* **identical**: an earlier run had the same inputs, and the result has the same bytes;
* **differs**: same inputs, other bytes, naming what changed in the environment, or
  saying that the fit itself is not deterministic. Only said when every input was
  fingerprinted by content and all matched;
* **not compared**: an input could not be fingerprinted (which one, and why);
* **cached**: the result was restored from an earlier run instead of training.

An earlier run from another installation (a ledger line it did not sign) is compared
too, and said to be from elsewhere.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Tuple

from .inputs import changed
from .divergence import distance
from .environment import Environment, explain

#: how each verdict is shown: (mark, text colour, background), readable in light and dark themes
STYLES = {
    "identical": ("identical ✓", "#1a7f37", "#dafbe1"),
    "differs": ("differs ✗", "#cf222e", "#ffebe9"),
    "not compared": ("not compared", "#57606a", "#eaeef2"),
    "first": ("first", "#0969da", "#ddf4ff"),
    "cached": ("cached", "#8250df", "#fbefff"),
}


def badge(status: str) -> str:
    """The verdict's mark as a coloured HTML label."""
    from html import escape

    mark, colour, background = STYLES.get(status, (status, "inherit", "transparent"))
    return (f"<span class='repro-verdict-badge' style='color:{colour};background:{background};"
            f"border:1px solid {colour};border-radius:3px;padding:0 5px;font-weight:600;"
            f"white-space:nowrap'>{escape(mark)}</span>")


@dataclass
class Verdict:
    """One line under a fit cell."""

    status: str  # "first" | "identical" | "differs" | "not compared" | "cached"
    record: dict
    earlier: Optional[dict] = None
    env_changes: List[Tuple[str, str, str]] = field(default_factory=list)
    changed_inputs: List[str] = field(default_factory=list)  # "first": what changed since the model's last run
    elsewhere: bool = False  # the earlier run was not signed by this installation
    distance: Optional[object] = None  # "differs": divergence.Distance, how far and from which epoch

    def __str__(self) -> str:
        run = self.record.get("run")
        run = f"run #{run}" if run else "this run"
        if self.status == "not compared":
            return f"{run}: not compared: {self.record.get('reason')}"
        if self.status == "first":
            text = f"{run}: first run with these inputs"
            if self.changed_inputs:
                names, more = self.changed_inputs[:8], len(self.changed_inputs) - 8
                text += (f" (changed since run #{self.earlier['run']}: {', '.join(names)}"
                         + (f" and {more} more, all in the ledger" if more > 0 else "") + ")")
            return text
        if self.status == "cached" and self.earlier.get("team"):
            return f"{run}: replayed — {computed_by(self.earlier)} ✓"
        if self.status == "cached":
            return (f"{run}: result from run #{self.earlier['run']} ({_when(self.earlier)}), restored "
                    "from the cache; training skipped")
        head = f"{run}: same inputs as run #{self.earlier['run']} ({_when(self.earlier)}{self._whose()})"
        if self.status == "identical":
            return f"{head} → identical ✓"
        far = f"\n  {self.distance}" if self.distance else ""
        if self.env_changes:
            return f"⚠ {head} → result DIFFERS; {explain(self.env_changes)}{far}"
        return f"⚠ {head} → result DIFFERS; environment unchanged, so the fit itself is not deterministic{far}"

    def _whose(self) -> str:
        if not self.elsewhere:
            return ""
        by = self.earlier.get("by")
        return f", from elsewhere{': ' + by if by else ''}, not signed here"

    @property
    def summary(self) -> str:
        """A few words: "identical to run 2", "differs from run 2", "first"..."""
        earlier = self.earlier["run"] if self.earlier else None
        if self.status == "identical":
            return f"identical to run {earlier}"
        if self.status == "differs":
            return f"differs from run {earlier}"
        if self.status == "cached" and self.earlier.get("team"):
            return f"replayed, computed by {self.earlier.get('computed_by')}"
        if self.status == "cached":
            return f"cached from run {earlier}"
        return self.status

    def _repr_pretty_(self, printer, cycle):
        printer.text(str(self))

    def _repr_html_(self) -> str:
        from html import escape

        return (f"<div class='repro-verdict' data-repro-verdict='{escape(self.status)}'>{badge(self.status)} "
                f"{escape(str(self))}</div>")


def decide(record: dict, records: List[dict], signed_here: Callable[[dict], bool] = lambda r: True) -> Verdict:
    """The verdict for ``record`` (not appended yet, or appended: only runs before it count)."""
    if record.get("opaque"):
        return Verdict("not compared", record)
    before = record.get("run", len(records) + 1)
    key, model = record["input_key"], record.get("model")
    newest = mine = last = None
    for r in reversed(records):  # newest first, so the usual case stops early
        if r["run"] >= before:
            continue
        if r.get("input_key") == key and not r.get("opaque") and r.get("result"):
            newest = newest or r
            if signed_here(r):
                mine = r
                break
        elif newest is None and last is None and r.get("model") == model and isinstance(r.get("inputs"), dict):
            last = r  # the model's last run, should no run have had these inputs
    if newest is None:
        if last is None:
            return Verdict("first", record)
        return Verdict("first", record, last, changed_inputs=changed(record["inputs"], last["inputs"]))
    previous, elsewhere = mine or newest, mine is None
    if previous.get("result") == record.get("result"):
        return Verdict("identical", record, previous, elsewhere=elsewhere)

    changes = Environment(record.get("env", {})).diff(previous.get("env", {}))
    return Verdict("differs", record, previous, changes, elsewhere=elsewhere, distance=distance(previous, record))


def computed_by(source: dict) -> str:
    """"computed by ci on 2026-12-05 (portable, floor x86-64 with AVX)": a result from the team store."""
    day = str(source.get("time") or "?")[:10]
    mode = f" ({source['mode']})" if source.get("mode") else ""
    return f"computed by {source.get('computed_by', '?')} on {day}{mode}"


def _when(record: dict) -> str:
    try:
        moment = _dt.datetime.fromisoformat(record["time"])
    except (KeyError, ValueError):
        return "?"
    same_day = moment.date() == _dt.datetime.now(moment.tzinfo).date()
    return moment.strftime("%H:%M" if same_day else "%Y-%m-%d %H:%M")
