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


def probe_training(model, X, y, h, out, started):
    """The stages every probe ends with: one Adam step, two epochs; then the line it prints."""
    import json
    import time

    model.train_on_batch(X[:32], y[:32])
    out["step1"] = h(*model.get_weights())
    model.fit(X, y, epochs=2, batch_size=32, verbose=0)
    out["final"] = h(*model.get_weights())
    out["total_s"] = round(time.time() - started, 1)
    print("PROBE " + json.dumps(out))
