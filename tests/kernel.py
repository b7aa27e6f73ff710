"""Drive a real IPython kernel of the current environment through jupyter_client."""
from __future__ import annotations

import importlib.util
import json
import os
import sys
import tempfile

import pytest
from jupyter_client.manager import KernelManager

QUIET_TF = {"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"}


class KernelError(RuntimeError):
    def __init__(self, ename, evalue, output):
        super().__init__(f"{ename}: {evalue}\n{output}")
        self.ename, self.evalue, self.output = ename, evalue, output


class Kernel:
    """A fresh ``python3`` kernel (jupyter_client maps ``python`` to this interpreter)."""

    def __init__(self, env=None, extra_arguments=(), cwd=None, kernel_name="python3", spec_manager=None):
        self.cwd = cwd or tempfile.mkdtemp(prefix="repro-kernel-")  # its .repro/ goes here
        self.manager = KernelManager(kernel_name=kernel_name,
                                     **({"kernel_spec_manager": spec_manager} if spec_manager else {}))
        # env overrides QUIET_TF; a name given None is left out (PYTEST_CURRENT_TEST: ipykernel then
        # forwards what C++ writes to descriptor 2 as the notebook shows it, not to this terminal)
        kernel_env = {k: v for k, v in {**os.environ, **QUIET_TF, **(env or {})}.items() if v is not None}
        self.manager.start_kernel(env=kernel_env, extra_arguments=list(extra_arguments), cwd=self.cwd)
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=120)
        self.stderr = []  # every stderr stream message, C++ logs included (fd 2 is forwarded by ipykernel)
        self.displays = []  # the last run's display_data and update_display_data messages: (msg_type, content)

    def run(self, code: str, timeout: float = 300) -> str:
        """Execute ``code`` as one cell; stdout text, or ``KernelError`` on error."""
        out, errors = [], []
        self.displays = []

        def hook(msg):
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream" and content["name"] == "stdout":
                out.append(content["text"])
            elif kind == "stream" and content["name"] == "stderr":
                self.stderr.append(content["text"])
            elif kind == "execute_result":
                out.append(content["data"].get("text/plain", "") + "\n")
            elif kind == "error":
                errors.append(content)
            elif kind in ("display_data", "update_display_data"):
                self.displays.append((kind, content))

        reply = self.client.execute_interactive(code, output_hook=hook, timeout=timeout)
        text = "".join(out)
        if reply["content"]["status"] != "ok":
            first = errors[0] if errors else reply["content"]
            raise KernelError(first.get("ename"), first.get("evalue"), text)
        return text

    def value(self, expression: str):
        """The JSON value of ``expression`` evaluated in the kernel."""
        text = self.run(f"import json as _json\nprint('@@' + _json.dumps({expression}))")
        return json.loads(text.rsplit("@@", 1)[1])

    def interrupt(self):
        self.manager.interrupt_kernel()

    def close(self):
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


STATE_HASH = '''
import hashlib as _hashlib
import numpy as _np

def state_hash(model):
    """SHA-256 over every byte of every variable: independent of the package's own hash."""
    digest = _hashlib.sha256()
    for v in model.variables:
        digest.update(_np.ascontiguousarray(_np.asarray(v.numpy())).tobytes())
    return digest.hexdigest()

def history_hash(history):
    digest = _hashlib.sha256()
    for key in sorted(history.history):
        digest.update(key.encode() + _np.asarray(history.history[key], dtype=_np.float64).tobytes())
    return digest.hexdigest()
'''

PYTHON = sys.executable

#: The extra that installs each Keras backend's framework (see pyproject.toml).
BACKEND_EXTRAS = {"tensorflow": "cpu", "jax": "jax", "torch": "torch"}


def missing(name: str) -> str:
    """Why a test that needs backend ``name`` skips here ("" where it is installed)."""
    if importlib.util.find_spec(name):
        return ""
    return (f"KERAS_BACKEND={name}: {name} is not installed "
            f"(pip install -e \".[{BACKEND_EXTRAS[name]}]\" runs these tests on it; CI's second tier does)")


def needs(name: str):
    """Marks for a test (or module) that runs on backend ``name`` only: CI's ``-m backends``
    tier selects it, and it skips with the extra to install where ``name`` is missing."""
    marks = [pytest.mark.skipif(bool(missing(name)), reason=missing(name) or "installed")]
    return marks + ([pytest.mark.backends] if name != "tensorflow" else [])


def requires(name: str):
    """``needs`` as one decorator, for a single test."""
    def mark(test):
        for one in needs(name):
            test = one(test)
        return test
    return mark


def _backend(name: str):
    """``name`` as a test parameter, with the marks of ``needs``."""
    return pytest.param(name, id=name, marks=needs(name))


#: Every Keras backend: real-kernel tests are parametrised over all three, and a backend
#: whose framework is not installed shows as skipped with its reason, not silently dropped.
BACKENDS = [_backend(name) for name in BACKEND_EXTRAS]
#: The names of the backends installed here (``BACKENDS`` holds test parameters, not names).
INSTALLED = [name for name in BACKEND_EXTRAS if importlib.util.find_spec(name)]
