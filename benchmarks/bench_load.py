"""``%load_ext jupyter_repro`` + ``%repro_seed 42`` in this tree against another revision of
the package (the layout change of #22 must not make the extension's load slower).

Each side runs in a fresh Python process (the package and what it imports are loaded
anew), IPython's shell created before the clock starts; the two sides alternate, and an
A/A control times the other revision against itself in the same rounds. One round first,
not counted, writes each tree's bytecode caches. Usage::

    python benchmarks/bench_load.py --against bd455b6 --repeat 30
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

from common import Comparison, median_interval, verdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROBE = """
import json, sys, time
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
started, cpu = time.perf_counter(), time.process_time()
shell.run_line_magic("load_ext", "jupyter_repro")
shell.run_line_magic("repro_seed", "42")
print(json.dumps([time.perf_counter() - started, time.process_time() - cpu,
                  sorted(m for m in ("numpy", "tensorflow") if m in sys.modules),
                  sys.modules["jupyter_repro"].__file__]))
"""


def load(tree: str):
    """Seconds (wall, CPU) of the two magics in a fresh process importing the package from ``tree``."""
    env = dict(os.environ, PYTHONPATH=tree)
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, cwd=tempfile.gettempdir(), capture_output=True,
                         text=True, check=True).stdout
    wall, cpu, heavy, where = json.loads(out.strip().splitlines()[-1])
    assert where.startswith(tree), f"imported {where}, not the tree under test {tree}"
    return wall, cpu, heavy


def main(against: str = "bd455b6", repeat: int = 30) -> list:
    with tempfile.TemporaryDirectory() as folder:
        before = os.path.join(folder, "before")
        subprocess.run(["git", "worktree", "add", "--detach", before, against], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            subject, baseline, control, heavy = [], [], [], set()
            cpu_subject, cpu_baseline = [], []
            for tree in (ROOT, before):
                load(tree)  # bytecode caches written: not timed
            for round_ in range(repeat):
                order = [("after", ROOT), ("before", before), ("control", before)]
                for name, tree in (order if round_ % 2 else order[::-1]):
                    wall, cpu, imported = load(tree)
                    heavy.update(imported)
                    {"after": subject, "before": baseline, "control": control}[name].append(wall)
                    if name == "after":
                        cpu_subject.append(cpu)
                    elif name == "before":
                        cpu_baseline.append(cpu)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", before], cwd=ROOT, capture_output=True)
    result = Comparison(f"`%load_ext jupyter_repro` + `%repro_seed 42`: this tree vs {against} (fresh processes)",
                        subject, baseline, goal="≤ 1 (no slower)", control=control,
                        subject_cpu=cpu_subject, baseline_cpu=cpu_baseline)
    low, high = result.interval()
    aa = result.aa(f"A/A control: {against} vs itself")
    cpu = result.cpu("the same, process CPU time", "≤ 1 (no slower)")
    cpu_low, cpu_high = cpu.interval()
    result.note = (f"median ratio {result.ratio:.3f} (95% bootstrap {low:.3f}–{high:.3f}; "
                   f"{verdict(low, high, 1.0)} at the A/A noise floor {aa.ratio:.3f}); "
                   f"CPU time {cpu.ratio:.3f} ({cpu_low:.3f}–{cpu_high:.3f}: {verdict(cpu_low, cpu_high, 1.0)}); "
                   f"NumPy or TensorFlow imported by it: {sorted(heavy) or 'neither'}")
    print(result.row(), aa.row(), cpu.row(), result.note, sep="\n")
    return [result, aa, cpu]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default="bd455b6", help="the revision to compare with")
    parser.add_argument("--repeat", type=int, default=30)
    options = parser.parse_args()
    main(options.against, options.repeat)
