"""The small models of each layer family the portable mode's claim is about (issue #29): used by
``probe_families.py`` and, inlined, by the conformance notebooks (tests/conformance/), so the
probe's evidence and CI's check are about the same models. Plain Python on Keras only."""
import numpy as np

ROWS, BATCH = 64, 16
#: the input each family reads (the rest read "flat")
INPUT = {"conv1d": "seq", "lstm": "seq", "gru": "seq", "attention": "seq", "conv2d": "img", "embedding": "tokens"}


def make_data():
    """Integer-derived normals from NumPy's generator: the same bytes on every CPU (the probe
    hashes them on each)."""
    rng = np.random.default_rng(0)
    return rng, {"flat": rng.standard_normal((ROWS, 16), dtype=np.float32),
                 "seq": rng.standard_normal((ROWS, 12, 4), dtype=np.float32),
                 "img": rng.standard_normal((ROWS, 8, 8, 2), dtype=np.float32),
                 "tokens": rng.integers(0, 50, (ROWS, 10)).astype("int32"),
                 "y": rng.standard_normal((ROWS, 1), dtype=np.float32)}


def build(keras, family, data):
    """``family``'s model (not compiled) and its input array."""
    layers = keras.layers
    x = INPUT.get(family, "flat")
    inputs = keras.Input(data[x].shape[1:], dtype="int32" if x == "tokens" else "float32")
    if family == "dense":
        z = layers.Dense(16, activation="tanh")(inputs)
    elif family == "conv1d":
        z = layers.Flatten()(layers.Conv1D(8, 3, activation="relu")(inputs))
    elif family == "conv2d":
        z = layers.Flatten()(layers.Conv2D(4, 3, activation="relu")(inputs))
    elif family == "pooling":
        z = layers.Reshape((8, 4))(layers.Dense(32)(inputs))
        z = layers.GlobalAveragePooling1D()(layers.AveragePooling1D(2)(layers.MaxPooling1D(2)(z)))
    elif family == "batchnorm":
        z = layers.Activation("tanh")(layers.BatchNormalization()(layers.Dense(16)(inputs)))
    elif family == "layernorm":
        z = layers.LayerNormalization()(layers.Dense(16)(inputs))
    elif family == "embedding":
        z = layers.GlobalAveragePooling1D()(layers.Embedding(50, 8)(inputs))
    elif family == "lstm":
        z = layers.LSTM(8)(inputs)
    elif family == "gru":
        z = layers.GRU(8)(inputs)
    elif family == "attention":
        z = layers.GlobalAveragePooling1D()(layers.MultiHeadAttention(2, 4)(inputs, inputs))
    elif family == "dropout":
        z = layers.Dropout(0.3)(layers.Dense(16, activation="tanh")(inputs))
    elif family == "preprocessing":
        norm = layers.Normalization()
        norm.adapt(data["flat"])
        z = layers.Dense(8, activation="tanh")(layers.Rescaling(0.5, offset=0.1)(norm(inputs)))
    else:
        raise ValueError(f"no family {family!r}")
    return keras.Model(inputs, layers.Dense(1, dtype="float32")(z)), data[x]


def optimizer(keras, name):
    """Adam, AdamW, SGD with momentum 0.9 or RMSprop, learning rate 1e-2."""
    return {"adam": lambda: keras.optimizers.Adam(1e-2), "adamw": lambda: keras.optimizers.AdamW(1e-2),
            "sgd_momentum": lambda: keras.optimizers.SGD(1e-2, momentum=0.9),
            "rmsprop": lambda: keras.optimizers.RMSprop(1e-2)}[name]()
