"""The proof for big and pretrained models, in real kernels: every dtype, KerasHub in bfloat16
and with LoRA, snapshots memory-mapped from their safetensors file.

Each case goes there and back (setting 1.0 -> 0.4 -> 1.0) with ``%%repro_fit``; the two
1.0 fits must leave every variable and the loss history byte-identical (SHA-256 computed
in the kernel). The twin runs the usual recipe in a kernel without the extension (seed
once, ``get_weights`` after compile, recompile and ``set_weights`` before each fit) and
shows it differs, so the identity can fail. ``snapshot_memory_max_bytes = 0`` makes every
snapshot the large-model kind: not copied in memory, restored from its mapped file.

bfloat16 models train with SGD: Keras 3.15's Adam leaves bfloat16 variables unchanged (it
casts beta_2 = 0.999 to bfloat16, which rounds it to 1, so every step is scaled by 0).
"""
import pytest

from kernel import BACKENDS, STATE_HASH, Kernel

SETUP = STATE_HASH + '''
import numpy as np, keras
raw_rng = np.random.default_rng(0)
X_raw = raw_rng.normal(size=(96, 6)).astype("float32")
y_raw = (X_raw @ raw_rng.normal(size=(6, 1))).astype("float32")
'''
DATA = '''
alpha = {alpha}
order = np.random.permutation(len(X_raw))       # a shuffle drawn in the data cell, as real ones do
X, y = (X_raw * alpha)[order], y_raw[order]
'''
DENSE = ('keras.Sequential([keras.Input((6,)), keras.layers.Dense(12, activation="relu"{dtype}), '
         'keras.layers.Dropout(0.3), keras.layers.Dense(1)])')
MODELS = {
    "bfloat16": (DENSE.format(dtype=', dtype="bfloat16"'), "", "keras.optimizers.SGD(0.05)"),
    "float16": (DENSE.format(dtype=', dtype="float16"'), "", "keras.optimizers.Adam(0.01)"),
    "int8": (DENSE.format(dtype=""), 'model.quantize("int8")', "keras.optimizers.Adam(0.01)"),
    "int4": (DENSE.format(dtype=""), 'model.quantize("int4")', "keras.optimizers.Adam(0.01)"),
    "float8": (DENSE.format(dtype=""), 'model.quantize("float8")', "keras.optimizers.Adam(0.01)"),
}
FIT = "history = model.fit(X, y, epochs=2, batch_size=16, verbose=0)"
SETTINGS = (1.0, 0.4, 1.0)

HUB_SETUP = STATE_HASH + '''
import numpy as np, keras, keras_hub
tokens = np.random.default_rng(0).integers(1, 100, size=(32, 16)).astype("int32")
x = {"token_ids": tokens, "segment_ids": np.zeros_like(tokens), "padding_mask": np.ones_like(tokens, dtype=bool)}
'''
HUB_DATA = '''
flip = {alpha} != 1.0
order = np.random.permutation(len(tokens))
x_fit = {{k: v[order] for k, v in x.items()}}
y_fit = ((tokens[order, 0] > 50) != flip).astype("int32")
'''
HUB_MODELS = {  # a tiny backbone from a config: random weights, nothing downloaded
    "bfloat16": ('dtype="bfloat16"', "", "keras.optimizers.SGD(0.1)"),
    "lora": ("", "backbone.enable_lora(rank=4)", "keras.optimizers.Adam(0.01)"),
}
HUB_MODEL = '''
backbone = keras_hub.models.BertBackbone(vocabulary_size=100, num_layers=1, num_heads=2, hidden_dim=16,
                                         intermediate_dim=32, max_sequence_length=16, {dtype})
{prepare}
model = keras_hub.models.BertTextClassifier(backbone=backbone, num_classes=2, preprocessor=None, dropout=0.1)
model.compile(optimizer={optimizer}, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              jit_compile=False)
'''
HUB_FIT = "history = model.fit(x_fit, y_fit, epochs=1, batch_size=16, verbose=0)"


#: Every dtype on the default backend; on the others the two a fine-tune meets most (bfloat16,
#: int8-quantized): each case is a kernel's worth of fits, and the suite runs on 2 cores.
DENSE_CASES = [pytest.param(param.values[0], kind, marks=param.marks, id=f"{param.values[0]}-{kind}")
               for param in BACKENDS for kind in sorted(MODELS)
               if param.values[0] == "tensorflow" or kind in ("bfloat16", "int8")]


class Kernels:
    """One pair of kernels (with the extension, and without) per backend and setup, started
    when a case first needs it and kept for the module's other cases: pytest's own module
    scope would start a pair per (backend, kind) parameter, ~8 s each on 2 cores."""

    def __init__(self):
        self.pairs = {}

    def __call__(self, backend, setup):
        if (backend, setup) not in self.pairs:
            self.pairs[backend, setup] = repro(backend, setup), plain(backend, setup)
        return self.pairs[backend, setup]

    def close(self):
        for pair in self.pairs.values():
            for kernel in pair:
                kernel.close()


@pytest.fixture(scope="module")
def kernels():
    pairs = Kernels()
    yield pairs
    pairs.close()


def repro(backend, setup):
    kernel = Kernel(env={"KERAS_BACKEND": backend})
    kernel.run("%load_ext jupyter_repro\n%repro_seed 42\n%config ReproMagics.snapshot_memory_max_bytes = 0")
    kernel.run(setup)
    return kernel


def plain(backend, setup):
    kernel = Kernel(env={"KERAS_BACKEND": backend})
    kernel.run(setup + "\nkeras.utils.set_random_seed(42)")
    return kernel


def back_and_forth(kernel, build, data, fit):
    kernel.run(build)
    info = kernel.run("%repro_snapshot model")
    assert "memory-mapped from its file" in info and ".safetensors" in info
    results, reports = [], []
    for alpha in SETTINGS:
        kernel.run(data.format(alpha=alpha))
        kernel.run(f"%%repro_fit model\n{fit}")
        results.append(kernel.value("[state_hash(model), history_hash(history)]"))
        reports.append(kernel.value("[_.verdict.status, _.restored.assigned, _.restored.unchanged]"))
    return results, reports


def identical_on_return(kernel, build, data, fit):
    """``back_and_forth``, checked: the revisit's bytes are the first visit's, the other
    setting's differ, the verdict says identical. The restore reports, for more checks."""
    (first, other, again), reports = back_and_forth(kernel, build, data, fit)
    assert first == again != other
    assert reports[2][0] == "identical"
    return reports


def usual_recipe(kernel, build, data, fit):
    kernel.run(build)
    kernel.run("initial = model.get_weights()\nrecipe = model._compile_config.config  # the optimizer instance too")
    results = []
    for alpha in SETTINGS:
        kernel.run(data.format(alpha=alpha))
        kernel.run(f"model.compile(**recipe)\nmodel.set_weights(initial)\n{fit}")
        results.append(kernel.value("[state_hash(model), history_hash(history)]"))
    return results


def dense_build(kind):
    model, prepare, optimizer = MODELS[kind]
    return f"model = {model}\n{prepare}\nmodel.compile(optimizer={optimizer}, loss='mse')"


def hub_build(kind):
    dtype, prepare, optimizer = HUB_MODELS[kind]
    return HUB_MODEL.format(dtype=dtype, prepare=prepare, optimizer=optimizer)


@pytest.mark.parametrize("backend, kind", DENSE_CASES)
def test_every_dtype_goes_back_and_forth_bit_identically(kernels, backend, kind):
    with_magics, without = kernels(backend, SETUP)
    identical_on_return(with_magics, dense_build(kind), DATA, FIT)
    dtypes = set(with_magics.value("sorted({str(v.dtype) for v in model.variables})"))
    assert {"bfloat16": "bfloat16", "float16": "float16", "int8": "int8", "int4": "int8"}.get(kind, "float32") in dtypes
    plain_first, _, plain_again = usual_recipe(without, dense_build(kind), DATA, FIT)
    assert plain_first != plain_again                  # the twin: the usual recipe does not come back


#: LoRA on JAX and PyTorch, bfloat16 on PyTorch: what fits the suite's time on 2 cores. Not here:
#: TensorFlow (it retraces the backbone at every compile: minutes a case; LoRA on TensorFlow is
#: tested on a Dense model in test_bigmodels.py) and JAX in bfloat16 (op by op on a CPU, 3.5 min;
#: shown on a GPU, docs/gpu.md).
HUB_CASES = [pytest.param(param.values[0], kind, marks=param.marks, id=f"{kind}-{param.values[0]}")
             for param in BACKENDS for kind in sorted(HUB_MODELS)
             if param.values[0] == "torch" or (param.values[0] == "jax" and kind == "lora")]


@pytest.mark.parametrize("backend, kind", HUB_CASES)
def test_kerashub_backbone_goes_back_and_forth_bit_identically(kernels, backend, kind):
    pytest.importorskip("keras_hub")
    with_magics, without = kernels(backend, HUB_SETUP)
    reports = identical_on_return(with_magics, hub_build(kind), HUB_DATA, HUB_FIT)
    if kind == "lora":  # the frozen backbone is verified, not rewritten: restore follows what training changes
        frozen = with_magics.value("len(model.non_trainable_variables)")
        seeds = with_magics.value("sum('seed_generator_state' in v.path for v in model.non_trainable_variables)")
        assert all(unchanged >= frozen - seeds for _, _, unchanged in reports)   # all but Dropout's seed states
        assert with_magics.value("len(model.trainable_variables)") < frozen
    else:
        assert "bfloat16" in with_magics.value("sorted({str(v.dtype) for v in model.variables})")
    plain_first, _, plain_again = usual_recipe(without, hub_build(kind), HUB_DATA, HUB_FIT)
    assert plain_first != plain_again


def test_repro_snapshot_output_pins_no_weights(kernels):
    """``Out`` keeps what ``%repro_snapshot`` returns: a description, not the weights. (In the
    module's TensorFlow kernel, with small snapshots kept in memory again for this case.)"""
    kernel, _ = kernels("tensorflow", SETUP)                     # the default backend, always installed
    kernel.run("%config ReproMagics.snapshot_memory_max_bytes = 64 * 2**20")
    try:
        kernel.run(dense_build("bfloat16"))
        kernel.run("%repro_snapshot model")                      # a small model: kept in memory too
        kernel.run("import gc, types, weakref\n"
                   "snapshots = get_ipython().magics_manager.registry['ReproMagics'].snapshots\n"
                   "kept = weakref.ref(snapshots['model'].kept[0])\n"
                   "info = Out[max(Out)]")
        kernel.run("%repro_snapshot model")                      # registered again: the first is let go
        assert kernel.value("gc.collect() >= 0 and kept() is None")
        assert kernel.value("len(Out) >= 2 and type(info).__name__") == "SnapshotInfo"
        kernel.run('''
def holds(root, kinds):
    seen, stack = set(), [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (type, types.ModuleType, types.FunctionType)):
            continue
        seen.add(id(obj))
        if isinstance(obj, kinds):
            return True
        stack.extend(gc.get_referents(obj))
    return False
''')
        held = kernel.value("[holds(value, (np.ndarray, keras.Variable)) for value in Out.values() "
                            "if type(value).__name__ == 'SnapshotInfo']")
        assert len(held) >= 2 and not any(held)                 # these two, and any other case's
    finally:
        kernel.run("%config ReproMagics.snapshot_memory_max_bytes = 0")
