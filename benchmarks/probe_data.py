"""The probes' data (``probe_jax_bits.py``, ``probe_torch_bits.py``): made once, natively, into
``PROBE_DATA`` (or this folder), so every setting and every emulated CPU reads the same bytes."""
import os

import numpy as np


def probe_data():
    """``X``, ``y``, ``W`` as the first native run saved them."""
    here = os.environ.get("PROBE_DATA") or os.path.dirname(os.path.abspath(__file__))
    if not os.path.exists(os.path.join(here, "X.npy")):
        rng = np.random.default_rng(0)
        X = rng.normal(size=(256, 16)).astype("float32")
        W = rng.normal(size=(16, 32)).astype("float32")
        np.save(os.path.join(here, "X.npy"), X)
        np.save(os.path.join(here, "W.npy"), W)
        np.save(os.path.join(here, "y.npy"), np.tanh(X @ W[:, :1].astype("float64")).astype("float32"))
    return tuple(np.load(os.path.join(here, name)) for name in ("X.npy", "y.npy", "W.npy"))
