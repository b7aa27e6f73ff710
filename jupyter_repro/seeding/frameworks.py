"""Per-library seeding and determinism switches: NumPy, TensorFlow, Keras, JAX, PyTorch.

Each ``seed_*`` function takes the imported module, the seed and whether determinism
was asked for, and returns one line for the seed report. ``before_import`` sets the
environment variables that only work if they are there before a library initialises
(JAX reads ``XLA_FLAGS`` when it creates its backend; cuBLAS reads
``CUBLAS_WORKSPACE_CONFIG`` when CUDA starts), and says so when it is too late.
"""
from __future__ import annotations

import os
import random
import sys
from typing import Dict

XLA_DETERMINISM = "--xla_gpu_deterministic_ops=true"
CUBLAS_WORKSPACE = ":4096:8"


def seed_numpy(np, seed: int, deterministic: bool) -> str:
    np.random.seed(seed)
    return "global RNG seeded"


def seed_tensorflow(tf, seed: int, deterministic: bool) -> str:
    from . import tf_messages

    tf.random.set_seed(seed)
    if not deterministic:
        # TensorFlow exports only enable_op_determinism; its counterpart lives beside it.
        from tensorflow.python.framework import config as tf_config

        tf_config.disable_op_determinism()
        tf_messages.restore()
        return "seeded; op determinism off"
    tf.config.experimental.enable_op_determinism()
    tf_messages.quiet()  # the use_unbounded_threadpool line op determinism makes TensorFlow log
    return "seeded; op determinism on"


def seed_keras(keras, seed: int, deterministic: bool) -> str:
    # keras.utils.set_random_seed also reseeds Python and NumPy; keep their streams
    # where they are, so a cell draws the same numbers whether or not it is the one
    # that first imports Keras.
    np = sys.modules["numpy"]  # Keras imports it
    py_state, np_state = random.getstate(), np.random.get_state()
    keras.utils.set_random_seed(seed)
    random.setstate(py_state)
    np.random.set_state(np_state)
    return f"seeded (backend {keras.backend.backend()})"


def jax_initialised(modules=None) -> bool:
    """Whether JAX has created its backends (and so read ``XLA_FLAGS``); ``modules``: ``sys.modules``."""
    bridge = (sys.modules if modules is None else modules).get("jax._src.xla_bridge")
    return bool(bridge is not None and getattr(bridge, "_backends", None))


def seed_jax(jax, seed: int, deterministic: bool) -> str:
    # JAX has no global RNG: Keras' SeedGenerators (seeded with Keras) are its state.
    if not deterministic:
        if XLA_DETERMINISM in os.environ.get("XLA_FLAGS", ""):
            return (f"no global RNG; ⚠ XLA_FLAGS keeps {XLA_DETERMINISM}: JAX read it when it started, "
                    "so deterministic ops stay on until the kernel restarts")
        return "no global RNG; deterministic ops off"
    if XLA_DETERMINISM in os.environ.get("XLA_FLAGS", ""):
        return f"no global RNG; XLA_FLAGS has {XLA_DETERMINISM}"
    return (f"⚠ XLA_FLAGS lacks {XLA_DETERMINISM} and JAX is already initialised, so it cannot "
            "take effect: restart the kernel (`jupyter-repro install-kernel` sets it at start)")


def seed_torch(torch, seed: int, deterministic: bool) -> str:
    torch.manual_seed(seed)
    if not deterministic:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic = False
        return "seeded; deterministic algorithms off"
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    late = (os.environ.get("CUBLAS_WORKSPACE_CONFIG") != CUBLAS_WORKSPACE
            and torch.cuda.is_available() and torch.cuda.is_initialized())
    if late:
        return (f"seeded; deterministic algorithms on; ⚠ CUBLAS_WORKSPACE_CONFIG={CUBLAS_WORKSPACE} was not "
                "set before CUDA started, so cuBLAS may not be deterministic: restart the kernel")
    return "seeded; deterministic algorithms on; cuDNN benchmark off"


#: (module name, seed function), in the order they are applied
SEEDERS = (("numpy", seed_numpy), ("tensorflow", seed_tensorflow), ("jax", seed_jax),
           ("torch", seed_torch), ("keras", seed_keras))


def before_import(deterministic: bool, installed) -> Dict[str, str]:
    """Put the start-up determinism variables in the environment while it still counts
    (and take JAX's out again, while that still counts, when determinism is turned off)."""
    if not deterministic:
        flags = os.environ.get("XLA_FLAGS", "")
        if XLA_DETERMINISM in flags and not jax_initialised():
            os.environ["XLA_FLAGS"] = flags.replace(XLA_DETERMINISM, "").strip()
            return {"XLA_FLAGS": f"{XLA_DETERMINISM} removed (JAX not initialised yet)"}
        return {}
    notes = {}
    if installed("jax") and not jax_initialised() and XLA_DETERMINISM not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {XLA_DETERMINISM}".strip()
        notes["XLA_FLAGS"] = f"{XLA_DETERMINISM} added (JAX not initialised yet)"
    torch = sys.modules.get("torch")
    cuda_started = torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized()
    if installed("torch") and not cuda_started and "CUBLAS_WORKSPACE_CONFIG" not in os.environ:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACE
        notes["CUBLAS_WORKSPACE_CONFIG"] = f"{CUBLAS_WORKSPACE} (CUDA not started yet)"
    return notes
