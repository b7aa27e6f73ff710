"""The conformance notebooks (issue #29): one per backend, a ``%%repro_fit`` cell per family,
optimizer and precision the portable mode claims there (``portable.COVERAGE``), each a few steps
of the probe's small model (``benchmarks/families.py``, inlined so the notebook stands alone).

Saved, with their fingerprints, by running them in a portable kernel of this machine::

    python tests/conformance/notebooks.py tensorflow jax

``tests/test_conformance.py`` checks them with ``pytest --repro --repro-against saved`` on
whatever CPU runs it: every run on another CPU is a cross-CPU proof of the claim.
"""
import json
import sys
import tempfile
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
FAMILIES = ROOT / "benchmarks" / "families.py"
REPORT = "portable-report.txt"  # the in-kernel %repro_seed --portable report, beside the notebook


def cases(backend):
    """(name, family, optimizer, policy) the claim covers on ``backend``: each covered family with
    Adam in float32, each covered optimizer on the MLP, each covered family in each other policy."""
    sys.path.insert(0, str(ROOT))
    from jupyter_repro.seeding.portable import COVERAGE

    claim = COVERAGE[backend]
    found = [(family, family, "adam", "float32") for family in claim.families]
    found += [(f"dense_{opt}", "dense", opt, "float32") for opt in claim.optimizers if opt != "adam"]
    found += [(f"{family}_{policy}", family, "adam", policy) for policy in claim.policies if policy != "float32"
              for family in claim.families]
    return found


def notebook(backend):
    """The notebook for ``backend`` (not executed)."""
    source = FAMILIES.read_text().split('"""', 2)[2].strip()  # without its docstring
    cells = ["%load_ext jupyter_repro", "%%capture seeded\n%repro_seed 42 --portable",
             f"open({REPORT!r}, 'w').write(seeded.stdout)",
             "import keras\n" + source + "\n\nrng, data = make_data()"]
    for name, family, opt, policy in cases(backend):
        cells.append(f"keras.mixed_precision.set_global_policy({policy!r})\n"
                     f"m_{name}, x_{name} = build(keras, {family!r}, data)\n"
                     f"m_{name}.compile(optimizer(keras, {opt!r}), 'mse')\n"
                     f"%repro_snapshot m_{name}")
        cells.append(f"%%repro_fit m_{name}\n"
                     f"m_{name}.fit(x_{name}, data['y'], epochs=2, batch_size=BATCH, verbose=0, shuffle=False)")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["jupyter_repro"] = {"backend": backend, "portable": True,
                                    "made_by": "tests/conformance/notebooks.py"}
    return nb


def kernelspec(folder, name, backend, cpu=None, extra=None):
    """A kernelspec running this Python with the environment ``install-kernel --portable``
    writes (under ``qemu-x86_64 -cpu CPU`` when given), plus ``extra`` (a user's own settings)."""
    import shutil

    from jupyter_repro.kernelspec import kernel_spec

    argv = ([shutil.which("qemu-x86_64"), "-cpu", cpu] if cpu else []) + [
        sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    env = dict(kernel_spec(42, name, backend, True)["env"], TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")
    env.update(extra or {})
    where = Path(folder) / "kernels" / name
    where.mkdir(parents=True, exist_ok=True)
    (where / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": name, "language": "python",
                                                   "env": env}))


def save(backend):
    """Run the notebook in a native portable kernel and save it, fingerprints included."""
    import os

    from nbclient import NotebookClient

    nb = notebook(backend)
    with tempfile.TemporaryDirectory() as share, tempfile.TemporaryDirectory() as scratch:
        kernelspec(share, f"conformance-{backend}", backend)
        os.environ["JUPYTER_PATH"] = share
        os.environ["PYTHONPATH"] = str(ROOT)
        NotebookClient(nb, kernel_name=f"conformance-{backend}", resources={"metadata": {"path": scratch}},
                       timeout=900).execute()
        report = (Path(scratch) / REPORT).read_text()
        if "every pin in force" not in report.splitlines()[0]:
            raise SystemExit(f"not saved: the kernel's portable mode is incomplete:\n{report}")
    nb.metadata.pop("kernelspec", None)  # the test names the kernel
    nbformat.write(nb, HERE / f"{backend}.ipynb")
    return HERE / f"{backend}.ipynb"


def saved_cpu(path):
    """The CPU (``cpu``, ``cpu isa``) the notebook's fingerprints were saved on."""
    from jupyter_repro.run.check import read_cells, read_notebook

    for cell in read_cells(read_notebook(path), path.name):
        for fit in cell.saved:
            return fit["env"].get("cpu", "not recorded"), fit["env"].get("cpu isa", "not recorded")
    return "no fingerprints saved", ""


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(save(name), saved_cpu(HERE / f"{name}.ipynb"))
