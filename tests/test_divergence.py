"""How far apart two runs are: ulp and relative size, metrics, the first differing epoch,
and the tolerance a CI passes them within (in-process)."""
import numpy as np
import pytest

from jupyter_repro.run.check import difference, within
from jupyter_repro.run.divergence import Distance, Tolerance, distance, first_difference, sketch, ulps
from jupyter_repro.errors import ReproError


def test_ulps_count_representable_floats_between_across_zero_and_dtypes():
    one = np.float32(1.0)
    assert ulps(np.array([one]), np.array([np.nextafter(one, np.float32(2))])) == [1]
    assert ulps(np.array([0.0], "f4"), np.array([-0.0], "f4")) == [0]                # +0 and -0: the same value
    tiny = np.array([np.float32(1e-45)])                                               # the smallest subnormal
    assert ulps(tiny, -tiny) == [2]                                                    # across zero
    assert ulps(np.array([1.0]), np.array([np.nextafter(1.0, 2.0)])) == [1]           # float64
    assert ulps(np.array([5], "i4"), np.array([2], "i4")) == [3]


def test_sketch_keeps_eight_values_per_variable_and_the_distance_is_computed_from_it():
    weights = [np.linspace(-1, 1, 1000, dtype="f4").reshape(10, 100), np.ones(3, "f4"), np.zeros(0, "f4")]
    saved = sketch(weights)
    assert len(saved) == 3 and len(saved[0]) == len("float32:") + 8 * 8 and saved[2] == "float32:"
    moved = [w.copy() for w in weights]
    moved[0].reshape(-1)[999] = np.nextafter(np.float32(1), np.float32(2)) * 1  # a sampled position, 1 ulp up
    moved[0].reshape(-1)[998] += 1.0                                              # not sampled: not seen
    found = distance({"sketch": saved, "metrics": {"loss": 0.5}}, {"sketch": sketch(moved), "metrics": {"loss": 0.5}})
    assert (found.max_ulp, found.sampled) == (1, 11)
    assert found.max_relative == pytest.approx(2 ** -23, rel=1e-3)
    assert str(found) == ("largest weight difference 1 ulp (relative 1.2e-07) among 11 sampled values, "
                          "a lower bound; metrics equal")
    assert distance({}, {}) is None


def test_first_differing_epoch_is_named():
    assert first_difference(["a", "b", "c"], ["a", "b", "x"]) == 2
    found = distance({"epochs": ["a", "b", "c"]}, {"epochs": ["a", "b", "x"]})
    assert str(found) == "identical through epoch 2; first differs at epoch 3"
    assert str(distance({"epochs": ["a"]}, {"epochs": ["x"]})) == "differs from the first epoch"
    assert str(distance({"epochs": ["a", "b"]}, {"epochs": ["a"]})) == "1 epoch(s) against 2"


def test_tolerance_parses_and_admits_only_what_it_can_check():
    assert Tolerance.parse("1e-5") == Tolerance(1e-5, 1e-5)
    assert Tolerance.parse("metrics=1e-6, weights=64ulp") == Tolerance(1e-6, 64.0, True)
    assert str(Tolerance.parse("metrics=1e-6,weights=64ulp")) == "metrics=1e-06,weights=64ulp"
    for bad in ("abc", "loss=1", "weights=-1", "metrics=inf"):
        with pytest.raises(ReproError, match="tolerance"):
            Tolerance.parse(bad)
    near = Distance(max_ulp=3, max_relative=2e-7, sampled=8, metrics={"loss": (0.5, 0.5000001)})
    assert Tolerance.parse("1e-6").admits(near)
    assert not Tolerance.parse("1e-8").admits(near)
    assert Tolerance.parse("weights=3ulp").admits(near) and not Tolerance.parse("weights=2ulp").admits(near)
    assert not Tolerance.parse("1e-3").admits(Distance(metrics={"loss": (0.5, 0.5)}))  # weights not known
    assert not Tolerance.parse("1e-3").admits(None)


def fit(result, loss, weights, inputs=None, epochs=("e1", "e2", "e3")):
    inputs = inputs or {"seed": "1", "fit.y": "y1", "cell": "c"}
    return {"input_key": str(sorted(inputs.items())), "inputs": inputs, "result": result,
            "metrics": {"loss": loss}, "sketch": sketch([np.asarray(weights, "f4")]), "epochs": list(epochs),
            "env": {"keras": "3.15.1"}}


def test_check_gives_the_size_and_a_tolerance_passes_data_differences_only():
    saved = fit("aaaa", 0.25, [1.0, 2.0])
    here = fit("bbbb", 0.2500001, [1.0, np.nextafter(np.float32(2), np.float32(3))], epochs=("e1", "e2", "x"))
    text = difference(saved, here, saved=True)
    assert text == ("result differs (aaaa vs bbbb) with the same inputs; environment unchanged as far as the summary "
                    "saved with it tells; identical through epoch 2; first differs at epoch 3; largest weight "
                    "difference 1 ulp (relative 1.2e-07) among 2 sampled values, a lower bound; "
                    "loss 0.25 → 0.2500001 (relative 4e-07)")
    assert within(saved, here, Tolerance.parse("1e-6")) and not within(saved, here, Tolerance.parse("1e-7"))
    data = fit("bbbb", 0.25, [1.0, 2.0], inputs={"seed": "1", "fit.y": "y2", "cell": "c"})
    assert within(saved, data, Tolerance.parse("1e-6"))                    # NumPy's tanh on another CPU
    code = fit("bbbb", 0.25, [1.0, 2.0], inputs={"seed": "1", "fit.y": "y1", "cell": "other"})
    assert not within(saved, code, Tolerance.parse("1"))                    # other code: never "within"


def test_another_initial_state_is_tolerated_only_where_what_computes_it_changed():
    """JAX's initializers give other bits on an AVX-only CPU: with the CPU's instruction sets
    changed, a tolerance covers the initial state; the same environment with another initial
    state is the notebook's doing (other weights loaded), never "within"."""
    saved = fit("aaaa", 0.25, [1.0, 2.0], inputs={"seed": "1", "snapshot": "s1", "cell": "c"})
    saved["env"] = {"keras": "3.15.1", "cpu isa": "AVX AVX2 AVX512F", "xla cpu isa": "AVX"}
    other_cpu = fit("bbbb", 0.2500001, [1.0, 2.0], inputs={"seed": "1", "snapshot": "s2", "cell": "c"})
    other_cpu["env"] = {"keras": "3.15.1", "cpu isa": "AVX", "xla cpu isa": "AVX"}
    assert within(saved, other_cpu, Tolerance.parse("1e-6"))
    assert not within(saved, other_cpu, Tolerance.parse("1e-8"))             # still as close as it asks
    same_env = fit("bbbb", 0.2500001, [1.0, 2.0], inputs={"seed": "1", "snapshot": "s2", "cell": "c"})
    same_env["env"] = dict(saved["env"])
    assert not within(saved, same_env, Tolerance.parse("1"))                # the twin: the notebook's weights
    unknown = dict(other_cpu, env={})
    assert not within(saved, unknown, Tolerance.parse("1"))                 # an environment not known: not guessed


EPOCH_3 = r'''
import sys
from jupyter_repro import Session
import numpy as np, keras
session = Session(seed=42, store=sys.argv[1])
X = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(1)])
model.compile(optimizer="adam", loss="mse")
session.snapshot(model)

class NoiseFromEpoch3(keras.callbacks.Callback):   # unseeded: each run draws other noise, from epoch 3 batch 3 on
    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self.epoch == 2 and batch == 2:
            kernel = self.model.layers[0].kernel
            kernel.assign(kernel + np.random.default_rng().normal(0, 1e-3, kernel.shape).astype("float32"))

def train():
    model.fit(X, X.sum(1), epochs=4, batch_size=16, verbose=0, callbacks=[NoiseFromEpoch3()])

def plain():
    model.fit(X, X.sum(1), epochs=4, batch_size=16, verbose=0)

for body, batches in ((train, False), (train, False), (plain, False), (plain, False), (train, True), (train, True)):
    report = session.fit(model, body, batches=batches)
    print("@@", len(report.epochs), len(report.sketch), [len(b) for b in report.batches], report.verdict)
'''


def test_a_run_that_differs_from_epoch_3_on_is_reported_as_such(tmp_path):
    import os
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", EPOCH_3, str(tmp_path / ".repro")], capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert done.returncode == 0, done.stderr[-2000:]
    runs = done.stdout.split("@@ ")[1:]
    assert all(run.startswith("4 4 ") for run in runs)     # 4 epoch fingerprints, 4 variables sketched
    assert runs[0].startswith("4 4 [] ") and runs[5].startswith("4 4 [4, 4, 4, 4] ")  # per batch: on demand
    assert "result DIFFERS; environment unchanged, so the fit itself is not deterministic" in runs[1]
    assert "identical through epoch 2; first differs at epoch 3; largest weight difference " in runs[1]
    assert "ulp (relative " in runs[1] and "loss " in runs[1]
    assert "→ identical ✓" in runs[3]                        # the twin without noise: identical, every epoch
    assert "first differs at epoch 3; in epoch 3, identical through batch 2; first differs at batch 3" in runs[5]
    assert "batch" not in runs[1]                             # without --batches, placed to the epoch only
