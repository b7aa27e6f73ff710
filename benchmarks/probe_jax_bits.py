"""Used for docs/reproducing-across-machines.md (run natively and under ``qemu-x86_64 -cpu X``,
with the settings as environment variables; ``PROBE_DATA``: a folder for the .npy data). One setting, one process: SHA-256 (12 hex) of elementary JAX ops and of a seeded Keras MLP's
weights at each stage (initial, forward, gradient, one Adam step, after 2 epochs)."""
import hashlib, os, sys, time
t0 = time.time()
if os.environ.get("PROBE_NO_TF") == "1":
    sys.modules["tensorflow"] = None   # keras then skips its TF helpers: faster import under qemu
os.environ["KERAS_BACKEND"] = "jax"
import numpy as np
import jax, jax.numpy as jnp
import keras

from probe_data import probe_data, probe_training

X, y, W = probe_data()
def h(*arrays):
    s = hashlib.sha256()
    for a in arrays:
        s.update(np.ascontiguousarray(np.asarray(a)).tobytes())
    return s.hexdigest()[:12]
out = {"import_s": round(time.time() - t0, 1)}
xj = jnp.asarray(X)
out["rng"] = h(jax.random.normal(jax.random.key(0), (64, 64)), jax.random.uniform(jax.random.key(1), (64, 64)))
out["matmul"] = h(xj @ jnp.asarray(W))
out["jit_matmul"] = h(jax.jit(lambda a, b: jnp.tanh(a @ b))(xj, jnp.asarray(W)))
out["tanh"] = h(jnp.tanh(xj))
out["exp"] = h(jnp.exp(xj / 4))
out["sqrt"] = h(jnp.sqrt(jnp.abs(xj) * 7.3))
out["rsqrt"] = h(jax.lax.rsqrt(jnp.abs(xj) * 7.3 + 0.1))
keras.utils.set_random_seed(42)
model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(32, activation="tanh"), keras.layers.Dense(1)])
model.compile(keras.optimizers.Adam(), "mse")
out["init"] = h(*model.get_weights())
out["forward"] = h(model(X[:64]))
tv = [v.value for v in model.trainable_variables]
def loss(tvals, x, t):
    pred, _ = model.stateless_call(tvals, [], x)
    return jnp.mean((pred - t) ** 2)
out["grad"] = h(*jax.grad(loss)(tv, X[:32], y[:32]))
probe_training(model, X, y, h, out, t0)
