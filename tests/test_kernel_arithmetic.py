"""A fit rerun in the same folder on other arithmetic is not called "not deterministic".

Two TensorFlow kernels share a folder (and so a ledger); the second caps oneDNN at AVX
(``ONEDNN_MAX_CPU_ISA=AVX``), which on a CPU with AVX2 or AVX-512 picks other sgemm
kernels and so gives other bits (measured: three weight hashes for AVX, AVX2 and the
default AVX-512 on this project's machines). The twin reruns a fit that draws unseeded
noise, in one kernel on one CPU: that one still is "not deterministic".
"""
import re

import pytest

from kernel import INSTALLED, Kernel

SETUP = '''
%load_ext jupyter_repro
%repro_seed 42
import numpy as np, keras
rng = np.random.default_rng(0)
X = rng.normal(size=(256, 16)).astype("float32")
y = (X @ rng.normal(size=(16, 1))).astype("float32")
model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(64, activation="relu"),
                          keras.layers.Dense(64, activation="tanh"), keras.layers.Dense(1)])
model.compile("adam", "mse")
'''
FIT = "%%repro_fit model\nhistory = model.fit(X, y, epochs=2, batch_size=32, verbose=0)"
NOISE = ("%%repro_fit model\nclass Noise(keras.callbacks.Callback):\n"
         "    def on_epoch_end(self, epoch, logs=None):\n"
         "        kernel = self.model.layers[0].kernel\n"
         "        kernel.assign(kernel + np.random.default_rng().normal(0, 1e-3, kernel.shape).astype('float32'))\n"
         "history = model.fit(X, y, epochs=2, batch_size=32, verbose=0, callbacks=[Noise()])")

pytestmark = pytest.mark.skipif("tensorflow" not in INSTALLED, reason="ONEDNN_MAX_CPU_ISA is TensorFlow's lever; "
                                "TensorFlow is not installed")


def test_a_rerun_under_another_isa_names_it_and_the_noisy_twin_is_not_deterministic(tmp_path):
    with Kernel(env={"KERAS_BACKEND": "tensorflow"}, cwd=str(tmp_path)) as native:
        native.run(SETUP + "\n%repro_snapshot model")
        isa = native.value("__import__('jupyter_repro.run.environment').run.environment.collect()['cpu isa']")
        if "AVX2" not in isa.split():
            pytest.skip(f"the AVX cap changes nothing on a CPU without AVX2 (this one: {isa})")
        first = native.run(FIT)
        assert "first run with these inputs" in first
        native.run("%repro_snapshot model")
        native.run(NOISE)
        twin = native.run(NOISE)
    assert "result DIFFERS; environment unchanged, so the fit itself is not deterministic" in twin
    with Kernel(env={"KERAS_BACKEND": "tensorflow", "ONEDNN_MAX_CPU_ISA": "AVX"}, cwd=str(tmp_path)) as capped:
        capped.run(SETUP + "\n%repro_snapshot model")
        rerun = capped.run(FIT)
    assert "same inputs as run #1" in rerun and "result DIFFERS" in rerun, rerun
    assert "not deterministic" not in rerun
    assert "the machine's arithmetic changed (the likely cause): " in rerun
    # the pin is new on the rerun's side ("pins none → ...", or other pins first where JAX is installed)
    assert re.search(r"pins (?:(?!ONEDNN)[^;→])+ → [^;]*ONEDNN_MAX_CPU_ISA=AVX", rerun), rerun
    assert "→ AVX (capped; CPU allows AVX" in rerun
