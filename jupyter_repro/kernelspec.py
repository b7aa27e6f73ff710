"""A Jupyter kernelspec that is reproducible from its first instruction.

``PYTHONHASHSEED`` must be in the environment before Python starts (``hash()`` of
strings, and so set iteration order, is fixed then), which only a kernelspec's
``env`` can do for a Jupyter kernel. The argv loads the extension and sets the seed
with IPython's own flags (``--ext``, ``--ReproMagics.seed``), so seeding happens at
kernel start, before the first cell and before any import. ``--backend`` adds
``KERAS_BACKEND`` for JAX or PyTorch kernels.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Optional

from .errors import ReproError
from .seeding.seeder import validate_seed
from .seeding.frameworks import CUBLAS_WORKSPACE, XLA_DETERMINISM
from .seeding.portable import DEFAULT_FLOOR, backend_env, floor

BACKENDS = ("tensorflow", "jax", "torch")


def kernel_spec(seed: int, display_name: str, backend: Optional[str] = None, portable=False) -> dict:
    """The kernel.json: seed flags in argv; in env, what must be set before Python,
    JAX (``XLA_FLAGS``) or CUDA (``CUBLAS_WORKSPACE_CONFIG``) start. ``portable``: True
    (the AVX floor) or a floor's name (``"avx2"``)."""
    seed = validate_seed(seed)
    env = {"PYTHONHASHSEED": str(seed), "XLA_FLAGS": XLA_DETERMINISM,
           "CUBLAS_WORKSPACE_CONFIG": CUBLAS_WORKSPACE}
    if backend:
        if backend not in BACKENDS:
            raise ReproError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        env["KERAS_BACKEND"] = backend
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}",
            "--ext=jupyter_repro", f"--ReproMagics.seed={seed}"]
    if portable:  # in env: glibc reads its pin when the process starts, NumPy and oneDNN theirs when they load
        chosen = floor(None if portable is True else portable)
        env.update(backend_env(backend, env, chosen.name))
        argv.append("--ReproMagics.portable=True")
        if chosen.name != DEFAULT_FLOOR:
            argv.append(f"--ReproMagics.portable_floor={chosen.name}")
    return {
        "argv": argv,
        "display_name": display_name,
        "language": "python",
        "env": env,
        "metadata": {"debugger": True, "jupyter_repro": {"seed": seed}},
    }


def install_kernel(name: str = "python3-repro", display_name: Optional[str] = None, seed: int = 42,
                   user: bool = False, prefix: Optional[str] = None, backend: Optional[str] = None,
                   portable=False) -> str:
    """Install the kernelspec; returns the folder it went to."""
    from jupyter_client.kernelspec import KernelSpecManager

    label = f"seed {seed}" + (f", {backend}" if backend else "") + (", portable" if portable is True else
                                                                     f", portable {portable}" if portable else "")
    spec = kernel_spec(seed, display_name or f"Python 3 (reproducible, {label})", backend, portable)
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "kernel.json").write_text(json.dumps(spec, indent=1))
        return KernelSpecManager().install_kernel_spec(folder, name, user=user, prefix=prefix, replace=True)
