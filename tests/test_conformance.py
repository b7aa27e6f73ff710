"""The conformance notebooks (``tests/conformance/``, issue #29 item 2): each family the portable
mode claims, fitted a few steps in a portable kernel, checked with ``pytest --repro
--repro-against saved`` against the fingerprints saved on the machine that made them. On any
other CPU this is a cross-CPU proof of the claim; a family failing there is withdrawn from
``portable.COVERAGE`` (or fixed), never tolerated. Each run prints the saving CPU beside this one.

Both run in CI's second tier (``-m backends``; TensorFlow's took 87 s here, over the main tier's
budget); ``-m emulated`` runs both under
``qemu-x86_64 -cpu SandyBridge`` and ``-cpu Haswell``. The twin: the same notebook in a kernel
whose oneDNN settings are the user's own (the mode keeps them and says INCOMPLETE) gives other
bits on a CPU above the floor, so the check can fail.
"""
import shutil
import sys
from pathlib import Path

import numpy  # noqa: F401  (before pytester's inner runs, which drop what they import; and for "cpu isa")
import pytest

from jupyter_repro.run import arithmetic
from jupyter_repro.run.check import read_cells, read_notebook

from kernel import needs

sys.path.insert(0, str(Path(__file__).parent / "conformance"))
from notebooks import REPORT, kernelspec, saved_cpu  # noqa: E402

pytest_plugins = ["pytester"]
HERE = Path(__file__).parent / "conformance"
QEMU = shutil.which("qemu-x86_64")
#: the user's own oneDNN settings (this CPU's best ISA, TensorFlow's oneDNN ops on): the twin
NATIVE_ONEDNN = {"ONEDNN_MAX_CPU_ISA": "ALL", "TF_ENABLE_ONEDNN_OPTS": "1"}


def backend(name):
    """Each in CI's second tier (``-m backends``): TensorFlow's 20 fits took 87 s here (2 shared cores),
    over the main tier's budget of about 40 s."""
    return pytest.param(name, marks=[*needs(name), pytest.mark.backends], id=name)


@pytest.fixture
def share(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "share"))
    monkeypatch.setenv("PYTHONPATH", ":".join(p for p in sys.path if p))  # the kernels import this worktree
    return tmp_path / "share"


def check(pytester, share, name, cpu=None, env=None):
    """``pytest --repro --repro-against saved`` on ``name``'s notebook in a portable kernel (under
    ``qemu -cpu CPU`` when given); the result, the in-kernel report, and the CPU line printed."""
    kernelspec(share, f"conformance-{name}", name, cpu, extra=env)
    notebook = HERE / f"{name}.ipynb"
    shutil.copy(notebook, pytester.path / notebook.name)
    result = pytester.runpytest("-p", "jupyter_repro.pytest_plugin", "--repro", "--repro-against", "saved",
                                "--repro-runs", "1", "--repro-kernel", f"conformance-{name}", "--repro-timeout",
                                "1800", notebook.name)
    here = arithmetic.facts()
    cpu_line = (f"conformance {name}: saved on {' / '.join(saved_cpu(notebook))}; checked on {here['cpu']} / "
                + (f"qemu-x86_64 -cpu {cpu}" if cpu else here["cpu isa"]))
    print(cpu_line)
    return result, (pytester.path / REPORT).read_text()


@pytest.mark.parametrize("name", [backend("tensorflow"), backend("jax")])
def test_every_claimed_family_gives_the_saved_bits_on_this_cpu(pytester, share, name):
    result, report = check(pytester, share, name)
    fits = len(saved_fits(name))
    result.assert_outcomes(passed=fits)
    assert "every pin in force" in report.splitlines()[0], report


@pytest.mark.parametrize("name", [backend("tensorflow")])
def test_the_twin_with_the_users_own_onednn_settings_gives_other_bits(pytester, share, name):
    if "AVX2" not in arithmetic.facts()["cpu isa"].split():
        pytest.skip("this CPU is at the floor: without the pins it computes what the floor computes")
    result, report = check(pytester, share, name, env=NATIVE_ONEDNN)
    assert "INCOMPLETE" in report.splitlines()[0] and "kept the value already set: ONEDNN_MAX_CPU_ISA=ALL" in report
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) >= 1, outcomes                              # the check can fail
    result.stdout.fnmatch_lines(["*the machine's arithmetic changed*onednn isa*"])


@pytest.mark.emulated
@pytest.mark.skipif(QEMU is None, reason="qemu-x86_64 not installed (apt-get install qemu-user; .ci/run does)")
@pytest.mark.parametrize("cpu", ["SandyBridge", "Haswell"])
@pytest.mark.parametrize("name", [backend("tensorflow"), backend("jax")])
def test_under_an_emulated_cpu_every_claimed_family_gives_the_saved_bits(pytester, share, name, cpu):
    result, report = check(pytester, share, name, cpu)
    result.assert_outcomes(passed=len(saved_fits(name)))
    assert "every pin in force" in report.splitlines()[0], report


def saved_fits(name):
    path = HERE / f"{name}.ipynb"
    return [cell for cell in read_cells(read_notebook(path), path.name) if cell.is_fit]


def test_each_notebook_holds_exactly_the_claim_and_was_saved_with_its_cpu():
    from notebooks import cases

    from jupyter_repro.seeding.portable import COVERAGE

    for name in COVERAGE:
        fits = saved_fits(name)
        assert [cell.source.splitlines()[0] for cell in fits] == [f"%%repro_fit m_{case[0]}" for case in cases(name)]
        assert all(cell.saved for cell in fits), f"{name}: run tests/conformance/notebooks.py {name} to save it"
        cpu, isa = saved_cpu(HERE / f"{name}.ipynb")
        assert cpu and isa and "not recorded" not in (cpu, isa)
