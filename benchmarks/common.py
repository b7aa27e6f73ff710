"""Timing helpers: every figure is a ratio to a plain alternative timed in the same run.

The machine is shared and noisy, so absolute seconds mean little; runs of the two
sides are interleaved with alternating order (A B, B A, A B ...: measured, whichever ran
first in a pair of 20-epoch fits was about 4% slower) and the median of the per-pair
ratios is reported with its spread (min-max over the pairs).
"""
from __future__ import annotations

import gc
import os
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, List

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
CMAPSS_DIR = os.environ.get("CMAPSS_DIR") or os.path.join(os.path.dirname(__file__), "..", "..", "shared",
                                                           "data", "cmapss")


@dataclass
class Comparison:
    name: str
    subject: List[float]     # seconds, one per repetition
    baseline: List[float]
    goal: str = ""
    note: str = ""
    subject_cpu: List[float] = field(default_factory=list)   # process CPU seconds, all threads
    baseline_cpu: List[float] = field(default_factory=list)

    def cpu(self, name: str, goal: str = "") -> "Comparison":
        """The same pairs measured in process CPU time: a stall of the machine (the process
        not running) shows in wall time only."""
        return Comparison(name, self.subject_cpu, self.baseline_cpu, goal)

    @property
    def ratios(self) -> List[float]:
        return [s / b for s, b in zip(self.subject, self.baseline)]

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)

    def row(self) -> str:
        med = statistics.median
        return (f"| {self.name} | {med(self.subject) * 1e3:,.1f} ms (min {min(self.subject) * 1e3:,.1f}, "
                f"max {max(self.subject) * 1e3:,.1f}) | {med(self.baseline) * 1e3:,.1f} ms "
                f"(min {min(self.baseline) * 1e3:,.1f}, max {max(self.baseline) * 1e3:,.1f}) | "
                f"**{self.ratio:.3g}** ({min(self.ratios):.3g}–{max(self.ratios):.3g}) | {self.goal} |")

    def __str__(self) -> str:
        return (f"{self.name}: ratio {self.ratio:.3g} (pairs {min(self.ratios):.3g}–{max(self.ratios):.3g}); "
                f"median {statistics.median(self.subject):.4f} s vs {statistics.median(self.baseline):.4f} s; "
                f"goal {self.goal}")


def timed(fn: Callable[[], object]) -> float:
    return timed_both(fn)[0]


def timed_both(fn: Callable[[], object]) -> tuple:
    """(wall seconds, process CPU seconds) of one call."""
    gc.collect()
    started, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - started, time.process_time() - cpu


def interleaved(name: str, subject: Callable, baseline: Callable, repeat: int = 5, warmup: int = 1,
                goal: str = "") -> Comparison:
    for _ in range(warmup):
        baseline()
        subject()
    pairs = []
    for i in range(repeat):  # A B, B A, A B ...: whichever runs first in a pair is not favoured
        if i % 2:
            base = timed_both(baseline)
            pairs.append((timed_both(subject), base))
        else:
            pairs.append((timed_both(subject), timed_both(baseline)))
    result = Comparison(name, [p[0][0] for p in pairs], [p[1][0] for p in pairs], goal,
                        subject_cpu=[p[0][1] for p in pairs], baseline_cpu=[p[1][1] for p in pairs])
    print(result, flush=True)
    return result
