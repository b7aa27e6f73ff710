"""Issue #31 in real kernels: Keras code as keras.io's examples write it.

Five patterns that broke on official examples, each in the README's three edits, visited
in one kernel and then in a second kernel of another process working in the same folder
(so the ledger and the ``--cache`` states are shared): a GAN with its own
``compile(d_optimizer, g_optimizer, loss_fn)``; a subclassed model snapshotted right after
compile, unbuilt; a FeatureSpace applied in a ``tf.data`` map, rebuilt for every fit; a
model reloaded with ``load_model`` after each fit; weights loaded from a checkpoint
between fits. Every "identical" is checked on a SHA-256 of every variable's bytes
(``STATE_HASH``, independent of the package's own hash), and every identity has a twin:
a real change (one of the GAN's learning rates, the FeatureSpace's normalization, a
reloaded model's dropout rate, the data) gives other bytes and is named; the plain recipe
(``set_weights`` and refit with the same optimizer objects) gives other bytes too.
One pair of kernels for the module, tiny models, one or two epochs.
"""
import json
import os
import tempfile

import pytest

from kernel import STATE_HASH, Kernel

SETUP = STATE_HASH + '''
import numpy as np, pandas as pd, keras, tensorflow as tf
X = np.random.default_rng(0).normal(size=(128, 8)).astype("float32")
Y = X.sum(1, keepdims=True).astype("float32")

def last(model):
    """The last ledger line's verdict, and a SHA-256 of every variable of ``model``."""
    session = get_ipython().magics_manager.registry["ReproMagics"].session
    record = session.ledger.records()[-1]
    return {"verdict": record["verdict"], "same": record.get("same_inputs_as"), "run": record["run"],
            "changed": (record.get("changed_since") or {}).get("inputs"), "state": state_hash(model)}

class GAN(keras.Model):
    """keras.io examples/generative/dcgan_overriding_train_step.py, in small."""
    def __init__(self, discriminator, generator, latent_dim):
        super().__init__()
        self.discriminator, self.generator, self.latent_dim = discriminator, generator, latent_dim
        self.seed_generator = keras.random.SeedGenerator(1337)

    def compile(self, d_optimizer, g_optimizer, loss_fn):
        super().compile()
        self.d_optimizer, self.g_optimizer, self.loss_fn = d_optimizer, g_optimizer, loss_fn
        self.d_loss_metric = keras.metrics.Mean(name="d_loss")
        self.g_loss_metric = keras.metrics.Mean(name="g_loss")

    @property
    def metrics(self):
        return [self.d_loss_metric, self.g_loss_metric]

    def train_step(self, real):
        batch = tf.shape(real)[0]
        z = keras.random.normal((batch, self.latent_dim), seed=self.seed_generator)
        combined = tf.concat([self.generator(z), real], axis=0)
        labels = tf.concat([tf.ones((batch, 1)), tf.zeros((batch, 1))], axis=0)
        with tf.GradientTape() as tape:
            d_loss = self.loss_fn(labels, self.discriminator(combined))
        grads = tape.gradient(d_loss, self.discriminator.trainable_weights)
        self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_weights))
        z = keras.random.normal((batch, self.latent_dim), seed=self.seed_generator)
        with tf.GradientTape() as tape:
            g_loss = self.loss_fn(tf.zeros((batch, 1)), self.discriminator(self.generator(z)))
        grads = tape.gradient(g_loss, self.generator.trainable_weights)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_weights))
        self.d_loss_metric.update_state(d_loss)
        self.g_loss_metric.update_state(g_loss)
        return {"d_loss": self.d_loss_metric.result(), "g_loss": self.g_loss_metric.result()}

def make_gan():
    d = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
    g = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8)])
    return GAN(d, g, 4)

class Recommender(keras.Model):
    """keras.io examples/structured_data/collaborative_filtering_movielens.py, in small."""
    def __init__(self, users, items, size):
        super().__init__()
        self.users = keras.layers.Embedding(users, size)
        self.items = keras.layers.Embedding(items, size)
        self.dropout = keras.layers.Dropout(0.2)

    def call(self, inputs, training=False):
        u, i = self.users(inputs[:, 0]), self.dropout(self.items(inputs[:, 1]), training=training)
        return keras.ops.sigmoid(keras.ops.sum(u * i, axis=1, keepdims=True))

PAIRS = np.random.default_rng(1).integers(0, 10, size=(128, 2))
RATINGS = np.random.default_rng(2).uniform(size=(128, 1)).astype("float32")

FRAME = pd.DataFrame({"a": np.random.default_rng(3).normal(size=128).astype("float32"),
                      "b": np.random.default_rng(4).integers(0, 4, 128)})
TARGET = (FRAME.a > 0).astype("float32").values

def make_ds(kind):
    """keras.io examples/structured_data/structured_data_classification_with_feature_space.py"""
    space = keras.utils.FeatureSpace(features={"a": getattr(keras.utils.FeatureSpace, kind)(),
                                               "b": keras.utils.FeatureSpace.integer_categorical(num_oov_indices=0)},
                                     output_mode="concat")
    raw = tf.data.Dataset.from_tensor_slices((dict(FRAME), TARGET)).batch(32)
    space.adapt(raw.map(lambda x, _: x))
    return raw.map(lambda x, y: (space(x), y))
'''

GAN_COMPILE = ("gan.compile(d_optimizer=keras.optimizers.Adam(1e-3), g_optimizer=keras.optimizers.Adam({g_lr}), "
               "loss_fn=keras.losses.BinaryCrossentropy(from_logits=True))")
GAN_FIT = "%%repro_fit gan {cache}\nhistory = gan.fit(X, epochs=1, batch_size=32, verbose=0)"


@pytest.fixture(scope="module")
def folder():
    return tempfile.mkdtemp(prefix="repro-patterns-")


def _kernel(folder):
    kernel = Kernel(cwd=folder, env={"KERAS_BACKEND": "tensorflow"})
    kernel.run("%load_ext jupyter_repro\n%repro_seed 42")
    kernel.run(SETUP)
    return kernel


@pytest.fixture(scope="module")
def kernels(folder):
    """Two kernels of two processes in one folder: ``first`` is used first in each test,
    ``second`` then revisits the same settings (shared ledger and cache)."""
    first, second = _kernel(folder), _kernel(folder)
    yield first, second
    first.close()
    second.close()


def last(kernel, model):
    return kernel.value(f"last({model})")


def test_a_gan_with_its_own_compile(kernels):
    first, second = kernels
    first.run("gan = make_gan()\n" + GAN_COMPILE.format(g_lr="1e-3"))
    shown = first.run("%repro_snapshot gan")
    assert "d_optimizer Adam" in shown and "g_optimizer Adam" in shown
    first.run(GAN_FIT.format(cache=""))
    one = last(first, "gan")
    first.run(GAN_FIT.format(cache=""))
    again = last(first, "gan")
    assert one["verdict"] == "first" and again["verdict"] == "identical" and again["state"] == one["state"]
    # the twin: one of the two optimizers' learning rates changed is another run, and is named
    first.run(GAN_COMPILE.format(g_lr="2e-3"))
    report = first.run(GAN_FIT.format(cache=""))
    changed = last(first, "gan")
    assert changed["verdict"] == "first" and changed["state"] != one["state"]
    assert "g_optimizer.learning_rate 0.001 → 0.002" in report
    first.run(GAN_COMPILE.format(g_lr="1e-3"))
    first.run(GAN_FIT.format(cache="--cache"))
    back = last(first, "gan")
    assert back["verdict"] == "identical" and back["same"] in (one["run"], again["run"]) and back["state"] == one["state"]
    # the plain recipe: weights put back, the same optimizer objects (their steps and moments kept)
    first.run("_w = [v.numpy() for v in gan.variables]\n"
              "_plain = []\n"
              "for _ in range(2):\n"
              "    [v.assign(w) for v, w in zip(gan.variables, _w)]\n"
              "    gan.fit(X, epochs=1, batch_size=32, verbose=0)\n"
              "    _plain.append(state_hash(gan))")
    plain = first.value("_plain")
    assert plain[0] != plain[1]
    # another process replays the stored state: the same bytes
    second.run("gan = make_gan()\n" + GAN_COMPILE.format(g_lr="1e-3"))  # the same cells: each draws from its code
    second.run("%repro_snapshot gan")
    second.run(GAN_FIT.format(cache="--cache"))
    replayed = last(second, "gan")
    assert replayed["verdict"] == "cached" and replayed["state"] == one["state"]


def test_an_unbuilt_subclassed_model_snapshotted_after_compile(kernels):
    first, second = kernels
    build = ("rec = Recommender(10, 10, 4)\nrec.compile(optimizer=keras.optimizers.Adam(1e-2), "
             "loss='binary_crossentropy')")
    fit = "%%repro_fit rec {cache}\nrec.fit(PAIRS, {y}, epochs=2, batch_size=32, verbose=0)"
    first.run(build)
    assert "not built yet" in first.run("%repro_snapshot rec")
    report = first.run(fit.format(cache="", y="RATINGS"))
    assert "taken at the model's build in this fit" in report and "%repro_snapshot" not in report.split("taken")[0]
    one = last(first, "rec")
    first.run(fit.format(cache="--cache", y="RATINGS"))
    again = last(first, "rec")
    assert one["verdict"] == "first" and again["verdict"] == "identical" and again["state"] == one["state"]
    first.run(fit.format(cache="", y="1 - RATINGS"))  # the twin: other data, other bytes
    other = last(first, "rec")
    assert other["verdict"] == "first" and other["state"] != one["state"]
    second.run(build)
    second.run("%repro_snapshot rec")
    second.run(fit.format(cache="", y="RATINGS"))  # builds, and takes the same snapshot, in this process too
    there = last(second, "rec")
    assert there["verdict"] == "identical" and there["state"] == one["state"]
    second.run(fit.format(cache="--cache", y="RATINGS"))
    assert last(second, "rec")["verdict"] == "cached" and last(second, "rec")["state"] == one["state"]


def test_a_feature_space_rebuilt_for_every_fit(kernels):
    first, second = kernels
    model = ("fs_model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation='relu'), "
             "keras.layers.Dropout(0.1), keras.layers.Dense(1, activation='sigmoid')])\n"
             "fs_model.compile(optimizer='adam', loss='binary_crossentropy')\n%repro_snapshot fs_model")
    fit = "%%repro_fit fs_model {cache}\nfs_model.fit(train_ds, epochs=2, verbose=0)"
    first.run(model)
    first.run("train_ds = make_ds('float_normalized')")
    first.run(fit.format(cache="--cache"))
    one = last(first, "fs_model")
    first.run("train_ds = make_ds('float_normalized')")  # rebuilt: Keras numbers its layers anew
    first.run(fit.format(cache=""))
    again = last(first, "fs_model")
    assert one["verdict"] == "first" and again["verdict"] == "identical" and again["state"] == one["state"]
    first.run("train_ds = make_ds('float_rescaled')")  # the twin: another FeatureSpace setting
    first.run(fit.format(cache="--cache"))
    other = last(first, "fs_model")
    assert other["verdict"] == "first" and "fit.x" in other["changed"] and other["state"] != one["state"]
    first.run("train_ds = make_ds('float_normalized')")
    first.run(fit.format(cache="--cache"))
    back = last(first, "fs_model")
    assert back["verdict"] == "cached" and back["state"] == one["state"]
    second.run(model)
    second.run("train_ds = make_ds('float_normalized')")
    second.run(fit.format(cache="--cache"))
    there = last(second, "fs_model")
    assert there["verdict"] == "cached" and there["state"] == one["state"]


def test_a_model_reloaded_with_load_model_after_each_fit(kernels, folder):
    first, second = kernels
    best = os.path.join(folder, "best.keras")
    build = ("net = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8, activation='relu'), "
             "keras.layers.Dropout(0.2), keras.layers.Dense(1)])\nnet.compile(optimizer='adam', loss='mse')\n"
             "%repro_snapshot net")
    fit = (f"%%repro_fit net\nnet.fit(X, Y, epochs=2, batch_size=32, verbose=0, callbacks=["
           f"keras.callbacks.ModelCheckpoint({best!r}, save_best_only=True, monitor='loss')])")
    reload = f"net = keras.models.load_model({best!r})"
    first.run(build)
    first.run(fit)
    one = last(first, "net")
    first.run(reload)
    first.run(fit)
    again = last(first, "net")
    assert one["verdict"] == "first" and again["verdict"] == "identical" and again["state"] == one["state"]
    first.run(reload + "\nnet.layers[1].rate = 0.5")  # the twin: another architecture after the reload
    first.run(fit)
    other = last(first, "net")
    assert other["verdict"] == "first" and "fit.architecture" in other["changed"] and other["state"] != one["state"]
    second.run(build)
    second.run(fit)
    there = last(second, "net")
    assert there["verdict"] == "identical" and there["state"] == one["state"]


def test_weights_loaded_from_a_checkpoint_between_fits(kernels, folder):
    first, second = kernels
    checkpoint = os.path.join(folder, "best.weights.h5")
    build = ("lw = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8, activation='relu'), "
             "keras.layers.Dense(1)])\nlw.compile(optimizer='adam', loss='mse')\n%repro_snapshot lw")
    # mode="max" on the loss keeps the first epoch's weights: a checkpoint other than the end
    fit = (f"%%repro_fit lw\nstart = state_hash(lw)\nlw.fit(X, Y, epochs=3, batch_size=32, verbose=0, callbacks=["
           f"keras.callbacks.ModelCheckpoint({checkpoint!r}, save_weights_only=True, save_best_only=True, "
           f"monitor='loss', mode='max')])")
    kept = os.path.join(folder, "kept.weights.h5")  # each fit writes the checkpoint anew: load a copy of the first's
    load = f"lw.load_weights({kept!r})\nloaded = state_hash(lw)"
    first.run(build)
    first.run(fit)
    one = last(first, "lw")
    first.run(f"import shutil\nshutil.copy({checkpoint!r}, {kept!r})")
    first.run(load)
    report = first.run(fit)
    assert "weights loaded from kept.weights.h5 after the last run" in report and "trained outside" not in report
    from_file = last(first, "lw")
    assert from_file["verdict"] == "first" and "user changes" in from_file["changed"]
    assert first.value("start == loaded") and from_file["state"] != one["state"]  # the loaded weights were its start
    first.run(load)
    first.run(fit)
    again = last(first, "lw")
    assert again["verdict"] == "identical" and again["same"] == from_file["run"] and again["state"] == from_file["state"]
    # a real fit outside %%repro_fit still counts as training: everything restored from the snapshot
    first.run("lw.fit(X, Y, epochs=1, verbose=0)")
    report = first.run(fit)
    assert "trained outside %%repro_fit" in report
    outside = last(first, "lw")
    assert outside["verdict"] == "identical" and outside["state"] == one["state"]
    second.run(build)
    second.run(load)
    second.run(fit)
    there = last(second, "lw")
    assert there["verdict"] == "identical" and there["state"] == from_file["state"]
