"""``jupyter-repro check``: run a notebook in fresh kernels and compare their ledgers.

Each kernel gets its own ledger (``--ReproMagics.store`` on its command line); the
k-th fit of every kernel must have the same input key and the same result as the k-th
fit of the first. A difference is named: which input (x, y, callbacks, the seed, the
snapshot, the cell text...) or the result.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

import nbformat

from .ledger import Ledger


@dataclass
class Divergence:
    fit: int          # 1-based position of the fit in each kernel
    model: str
    kernel: int       # 1-based kernel that differs from kernel 1
    what: str


@dataclass
class CheckResult:
    notebook: Path
    runs: int
    fits: List[int] = field(default_factory=list)  # fits recorded per kernel
    divergences: List[Divergence] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.divergences and len(set(self.fits)) == 1 and self.fits[0] > 0

    def table(self) -> str:
        if not self.divergences:
            return f"{self.fits[0]} fit(s) × {self.runs} kernels: all identical ✓" if self.ok else \
                f"fits recorded per kernel: {self.fits}"
        lines = [f"{'fit':>3}  {'model':<12} {'kernel':>6}  differs from kernel 1 in"]
        lines += [f"{d.fit:>3}  {d.model:<12} {d.kernel:>6}  {d.what}" for d in self.divergences]
        return "\n".join(lines)


def _difference(first: dict, other: dict) -> Optional[str]:
    from .inputs import changed

    if first.get("input_key") != other.get("input_key"):
        return "inputs: " + ", ".join(changed(other.get("inputs", {}), first.get("inputs", {})))
    if first.get("result") != other.get("result"):
        unknown = first.get("reason") or other.get("reason")
        if unknown:
            return (f"result ({first['result'][:12]} vs {other['result'][:12]}); inputs not all known: {unknown}")
        return f"result ({first['result'][:12]} vs {other['result'][:12]}) with the same inputs"
    return None


def compare(ledgers: List[List[dict]]) -> List[Divergence]:
    divergences = []
    first = ledgers[0]
    for kernel, records in enumerate(ledgers[1:], start=2):
        for fit in range(max(len(first), len(records))):
            if fit >= len(first) or fit >= len(records):
                divergences.append(Divergence(fit + 1, "?", kernel, "fit missing in one kernel"))
                continue
            what = _difference(first[fit], records[fit])
            if what:
                divergences.append(Divergence(fit + 1, first[fit].get("model", "?"), kernel, what))
    return divergences


def check_notebook(path: Path, runs: int = 2, kernel: str = "python3", timeout: int = 600,
                   progress: Callable[[str], None] = print) -> CheckResult:
    """Execute ``path`` in ``runs`` fresh kernels; compare fit by fit."""
    from nbclient import NotebookClient

    path = Path(path)
    result = CheckResult(path, runs)
    ledgers = []
    with tempfile.TemporaryDirectory(prefix="repro-check-") as scratch:
        for run in range(1, runs + 1):
            store = Path(scratch) / f"kernel-{run}"
            progress(f"kernel {run}/{runs}: executing {path.name} ...")
            notebook = nbformat.read(path, as_version=4)
            client = NotebookClient(notebook, kernel_name=kernel, timeout=timeout,
                                    extra_arguments=[f"--ReproMagics.store={store}",
                                                     "--IPKernelApp.log_level=ERROR"],
                                    resources={"metadata": {"path": str(path.parent.resolve())}})
            client.execute()
            ledgers.append(Ledger(store).records())
            result.fits.append(len(ledgers[-1]))
    result.divergences = compare(ledgers)
    return result
