"""Used for docs/reproducing-across-machines.md (natively and under ``qemu-x86_64 -cpu X``;
``PROBE_DATA``: a folder for the .npy data; ``PROBE_MKLDNN=0``: mkldnn off). PyTorch: hashes of elementary ops and a seeded Keras MLP (torch backend) at each stage."""
import hashlib, os, sys, time
t0 = time.time()
sys.modules["tensorflow"] = None
os.environ["KERAS_BACKEND"] = "torch"
import numpy as np
import torch
import keras
from probe_data import probe_data, probe_training

X, y, W = probe_data()
def h(*arrays):
    s = hashlib.sha256()
    for a in arrays:
        a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
        s.update(np.ascontiguousarray(a).tobytes())
    return s.hexdigest()[:12]
if os.environ.get("PROBE_MKLDNN") == "0":
    torch.backends.mkldnn.enabled = False
torch.use_deterministic_algorithms(True)
out = {"import_s": round(time.time() - t0, 1), "cap": torch.backends.cpu.get_cpu_capability()}
xt = torch.from_numpy(X)
g = torch.Generator().manual_seed(0)
out["rng"] = h(torch.randn(64, 64, generator=g), torch.rand(64, 64, generator=g))
out["matmul"] = h(xt @ torch.from_numpy(W))
out["tanh"] = h(torch.tanh(xt))
out["exp"] = h(torch.exp(xt / 4))
v = torch.abs(xt) * 7.3
out["sqrt"] = h(torch.sqrt(v))
out["sqrt_ok"] = int((torch.sqrt(v) != torch.sqrt(v.double()).float()).sum())
out["div"] = h(xt / (v + 1))
keras.utils.set_random_seed(42)
model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(32, activation="tanh"), keras.layers.Dense(1)])
model.compile(keras.optimizers.Adam(), "mse")
out["init"] = h(*model.get_weights())
out["forward"] = h(model(X[:64]))
xb, yb = torch.from_numpy(X[:32]), torch.from_numpy(y[:32])
loss = torch.mean((model(xb) - yb) ** 2)
grads = torch.autograd.grad(loss, [v.value for v in model.trainable_variables])
out["grad"] = h(*grads)
probe_training(model, X, y, h, out, t0)
