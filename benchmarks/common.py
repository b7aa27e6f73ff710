"""Timing helpers: every figure is a ratio to a plain alternative timed in the same run.

The machine is shared and noisy, so absolute seconds mean little; runs of the two
sides are interleaved with alternating order (A B, B A, A B ...: measured, whichever ran
first in a pair of 20-epoch fits was about 4% slower) and the median of the per-pair
ratios is reported with its spread (min-max over the pairs). Where a goal sits near 1, an
A/A control (the baseline timed against itself in the same rounds) and a bootstrap interval
of the median show how far from 1 noise alone takes the ratio in that run.
"""
from __future__ import annotations

import gc
import itertools
import os
import random
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, List

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
CMAPSS_DIR = os.environ.get("CMAPSS_DIR") or os.path.join(os.path.dirname(__file__), "..", "..", "shared",
                                                           "data", "cmapss")


def data_dir():
    """CMAPSS_DIR if it holds NASA's FD001 files, else None (a synthetic fleet is used)."""
    return CMAPSS_DIR if os.path.isfile(os.path.join(CMAPSS_DIR, "train_FD001.txt")) else None


@dataclass
class Comparison:
    name: str
    subject: List[float]     # seconds, one per repetition
    baseline: List[float]
    goal: str = ""
    note: str = ""
    subject_cpu: List[float] = field(default_factory=list)   # process CPU seconds, all threads
    baseline_cpu: List[float] = field(default_factory=list)
    control: List[float] = field(default_factory=list)       # the baseline again, same rounds
    control_cpu: List[float] = field(default_factory=list)
    unit: str = "s"  # what subject and baseline hold: "s" (seconds) or "bytes" (e.g. peak resident memory)

    def cpu(self, name: str, goal: str = "") -> "Comparison":
        """The same pairs measured in process CPU time: a stall of the machine (the process
        not running) shows in wall time only."""
        return Comparison(name, self.subject_cpu, self.baseline_cpu, goal,
                          control=self.control_cpu)

    def aa(self, name: str) -> "Comparison":
        """The A/A control as a row of its own: the baseline against itself."""
        return Comparison(name, self.control, self.baseline, "≈ 1: the noise floor",
                          subject_cpu=self.control_cpu, baseline_cpu=self.baseline_cpu)

    def interval(self, level: float = 0.95) -> tuple:
        """Bootstrap interval of the median per-pair ratio (pairs resampled, fixed seed)."""
        return median_interval(self.ratios, level)

    @property
    def ratios(self) -> List[float]:
        return [s / b for s, b in zip(self.subject, self.baseline)]

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)

    @staticmethod
    def _ratio(value: float) -> str:
        """Three decimals near 1, where a goal such as 1.02 is judged; else 3 significant digits."""
        return f"{value:.3f}" if 0.5 <= value < 10 else f"{value:.3g}"

    def _side(self, values: List[float]) -> str:
        med = statistics.median
        if self.unit == "bytes":
            gib = [v / 2**30 for v in values]
            return f"{med(gib):,.2f} GiB peak" + (f" (min {min(gib):,.2f}, max {max(gib):,.2f})" if len(gib) > 1 else "")
        return f"{med(values) * 1e3:,.1f} ms (min {min(values) * 1e3:,.1f}, max {max(values) * 1e3:,.1f})"

    def row(self, *cells: str) -> str:
        """The table row; ``cells`` go between the name and the subject (e.g. when it was measured)."""
        return (f"| {' | '.join((self.name,) + cells)} | {self._side(self.subject)} | {self._side(self.baseline)} | "
                f"**{self._ratio(self.ratio)}** ({self._ratio(min(self.ratios))}–{self._ratio(max(self.ratios))}) | {self.goal} |")

    def __str__(self) -> str:
        return (f"{self.name}: ratio {self._ratio(self.ratio)} (pairs {self._ratio(min(self.ratios))}–{self._ratio(max(self.ratios))}); "
                f"median {statistics.median(self.subject):.4f} s vs {statistics.median(self.baseline):.4f} s; "
                f"goal {self.goal}")


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; the platform's word elsewhere): figures from
    two CPUs are never compared, so every row says which one measured it."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def verdict(low: float, high: float, limit: float, at_most: bool = True) -> str:
    """Whether an interval [low, high] of a measured figure meets a goal ``≤ limit``
    (``≥ limit`` with ``at_most=False``): met, not met, or not resolved by this run."""
    if not at_most:
        low, high, limit = -high, -low, -limit
    if high <= limit:
        return "goal met"
    if low > limit:
        return "goal not met"
    return "not resolved: the interval spans the goal"


def median_interval(ratios: List[float], level: float = 0.95, draws: int = 10_000) -> tuple:
    """Percentile bootstrap of the median: the range the median of this many pairs lands in
    when the pairs are drawn again from the same machine."""
    rng = random.Random(0)
    medians = sorted(statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(draws))
    tail = (1 - level) / 2
    return medians[int(tail * draws)], medians[int((1 - tail) * draws) - 1]


def user_shell(store: str, **options):
    """An in-process IPython shell with the extension loaded and its store in ``store``."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    config.ReproMagics.store = store
    for name, value in options.items():
        setattr(config.ReproMagics, name, value)
    ip = InteractiveShell.instance(config=config)
    ip.run_line_magic("load_ext", "jupyter_repro")
    return ip


def run_cell(ip, source: str, cpu: bool = False):
    """Run ``source`` as a user's notebook cell (``store_history=True, silent=False``: the
    ``pre_run_cell`` event, so the per-cell reseed, and the display of its value); its wall
    seconds (and process CPU seconds). Output goes to a buffer, as a kernel sends it away."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        started, cpu_started = time.perf_counter(), time.process_time()
        result = ip.run_cell(source, store_history=True, silent=False)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    result.raise_error()
    return (seconds, cpu_seconds) if cpu else seconds


def timed(fn: Callable[[], object]) -> float:
    return timed_both(fn)[0]


def timed_both(fn: Callable[[], object]) -> tuple:
    """(wall seconds, process CPU seconds) of one call."""
    gc.collect()
    started, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - started, time.process_time() - cpu


def interleaved(name: str, subject: Callable, baseline: Callable, repeat: int = 5, warmup: int = 1,
                goal: str = "", control: Callable | None = None) -> Comparison:
    """Time ``subject`` and ``baseline`` ``repeat`` times each, in rounds whose order cycles
    through every permutation (A B, B A, ...), so that no side always runs first. With
    ``control`` (the baseline once more) each round times all three: an A/A test."""
    sides = [subject, baseline] + ([control] if control else [])
    for _ in range(warmup):
        for side in reversed(sides):
            side()
    orders = list(itertools.permutations(range(len(sides))))
    rounds = []
    for i in range(repeat):
        times = {k: None for k in range(len(sides))}
        for k in orders[i % len(orders)]:
            times[k] = timed_both(sides[k])
        rounds.append(times)
    column = lambda k, j: [r[k][j] for r in rounds] if k < len(sides) else []  # noqa: E731
    result = Comparison(name, column(0, 0), column(1, 0), goal, subject_cpu=column(0, 1),
                        baseline_cpu=column(1, 1), control=column(2, 0), control_cpu=column(2, 1))
    print(result, flush=True)
    return result
