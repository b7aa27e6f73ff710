"""One MultiWorkerMirroredStrategy worker: seed, build under the strategy, snapshot,
then the back-and-forth with ``reproducible_fit`` (or the plain recipe with --plain),
training with a custom loop under ``strategy.run``.

    python distributed_worker.py INDEX PORT0,PORT1 [--plain]

Prints one JSON line: the fingerprint of every fit and whether all replicas agree. With
--plain it then also tries Keras' own ``model.fit`` once and says how that ended
(keras-team/keras#20585: it fails under this strategy), so one cluster serves both. Each
worker exits by itself; the test kills it after a deadline anyway.
"""
import json
import os
import sys

index, ports = int(sys.argv[1]), sys.argv[2].split(",")
plain = "--plain" in sys.argv
os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                                      "task": {"type": "worker", "index": index}})
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from jupyter_repro import Seeder, Snapshot, model_fingerprint, reproducible_fit  # noqa: E402

seeder = Seeder()
seeder.seed_everything(42)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

strategy = tf.distribute.MultiWorkerMirroredStrategy()
with strategy.scope():
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(12, activation="relu"),
                              keras.layers.Dropout(0.3), keras.layers.Dense(1)])
    optimizer = keras.optimizers.Adam(0.01)
    model.compile(optimizer, "mse")
snapshot, initial = Snapshot.capture(model, "model"), model.get_weights()
X = np.random.default_rng(0).normal(size=(128, 6)).astype("float32")
y = X.sum(1, keepdims=True)


def train(alpha):
    """A custom loop: Keras 3's model.fit fails under MultiWorkerMirroredStrategy
    (keras-team/keras#20585), with or without this package."""
    dataset = tf.data.Dataset.from_tensor_slices((X * alpha, y)).shuffle(64).batch(16)
    dataset = strategy.experimental_distribute_dataset(dataset)

    @tf.function
    def step(batch):
        def replica_step(inputs, targets):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean((model(inputs, training=True) - targets) ** 2) / strategy.num_replicas_in_sync
            gradients = tape.gradient(loss, model.trainable_variables)
            model.optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        strategy.run(replica_step, args=batch)

    for _ in range(2):
        for batch in dataset:
            step(batch)


def keras_fit():
    """How Keras' own model.fit ends under this strategy."""
    try:
        model.fit(tf.data.Dataset.from_tensor_slices((X, y)).batch(16), epochs=1, verbose=0)
        return "trained"
    except ValueError as error:
        return f"{type(error).__name__}: {str(error).splitlines()[0]}"


fits = []
for alpha in (1.0, 0.4, 0.2, 0.4):
    if plain:
        with strategy.scope():
            model.compile(optimizer, "mse")
        model.set_weights(initial)
        train(alpha)
        fits.append(model_fingerprint(model))
    else:
        with reproducible_fit(model, snapshot, 42, seeder) as run:
            train(alpha)
        fits.append(run.fingerprint)
replicas_agree = all(len({np.asarray(c.numpy()).tobytes() for c in getattr(v.value, "values", [v.value])}) == 1
                     for v in model.variables)
result = {"worker": index, "fits": fits, "replicas_agree": replicas_agree,
          "strategy": type(model._distribute_strategy).__name__}
if plain:
    result["keras_fit"] = keras_fit()
print("@@" + json.dumps(result), flush=True)
