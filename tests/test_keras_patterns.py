"""Issue #31 in-process: the refusals and the canonical forms behind the real-kernel proof
(tests/test_kernel_keras_patterns.py). Each refusal is one line naming what to do and
leaves the model as it was; each canonical form has its twin (a real change still counts)."""
import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from jupyter_repro import Session  # noqa: E402
from jupyter_repro.errors import ModelError, ReproError  # noqa: E402
from jupyter_repro.model.compile_call import WATCH, watch_compile  # noqa: E402
from jupyter_repro.run.inputs import architecture  # noqa: E402
from jupyter_repro.store.signing import Signer  # noqa: E402
from jupyter_repro.values.tf_data import dataset_graph_bytes  # noqa: E402

from conftest import make_shell  # noqa: E402

X = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
Y = X.sum(1, keepdims=True)


def _pair_model(base):
    class Pair(base):
        def __init__(self):
            super().__init__()
            self.net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])

        def compile(self, first, second, loss_fn):
            super().compile()
            self.first, self.second, self.loss_fn = first, second, loss_fn

        def train_step(self, data):
            x, y = data
            with tf.GradientTape() as tape:
                loss = self.loss_fn(y, self.net(x))
            grads = tape.gradient(loss, self.net.trainable_weights)
            self.first.apply_gradients(zip(grads, self.net.trainable_weights))
            return {"loss": loss}

    return Pair()


@pytest.fixture
def session(tmp_path):
    watch_compile()
    yield Session(seed=42, store=str(tmp_path / "store"), signer=Signer(tmp_path / "key"))
    WATCH.remove()


def test_an_own_compile_unseen_is_refused_in_one_line(tmp_path):
    """A class compiled before the watch was installed: its call cannot be replayed."""
    WATCH.remove()
    model = _pair_model(keras.Model)
    model.compile(keras.optimizers.Adam(), keras.optimizers.SGD(), keras.losses.MeanSquaredError())
    session = Session(seed=42, store=str(tmp_path / "store"), signer=Signer(tmp_path / "key"))
    with pytest.raises(ModelError, match="defines its own compile\\(\\).*run the cell that calls compile again"):
        session.snapshot(model)
    assert not session.snapshots


def test_an_own_compile_is_replayed_with_fresh_optimizers(session):
    model = _pair_model(keras.Model)
    first, second = keras.optimizers.Adam(0.01), keras.optimizers.SGD(0.1)
    model.compile(first, second, keras.losses.MeanSquaredError())
    session.snapshot(model)
    one = session.fit(model, lambda: model.fit(X, Y, epochs=1, verbose=0))
    assert model.first is not first and int(model.first.iterations.numpy()) > 0
    two = session.fit(model, lambda: model.fit(X, Y, epochs=1, verbose=0))
    assert two.verdict.status == "identical" and two.fingerprint == one.fingerprint
    assert two.parameters["compile.first"] == "Adam" and two.parameters["compile.first.learning_rate"] == pytest.approx(0.01)
    # the twin: the same optimizer objects reused (the plain recipe) carry their moments on
    start = [v.numpy() for v in model.variables]
    kept = model.first
    for v, value in zip(model.variables, start):
        v.assign(value)
    model.fit(X, Y, epochs=1, verbose=0)
    assert model.first is kept and int(kept.iterations.numpy()) > 2


def test_an_own_compile_keeping_a_trained_optimizer_is_refused(session):
    model = _pair_model(keras.Model)
    shared = keras.optimizers.Adam()
    model.compile(shared, keras.optimizers.SGD(), keras.losses.MeanSquaredError())
    model.extra = shared  # held outside the call's arguments: compile does not replace it
    session.snapshot(model)
    session.fit(model, lambda: model.fit(X, Y, epochs=1, verbose=0))
    model.extra = model.first  # now an optimizer that has trained, kept across the replay
    weights = [v.numpy().copy() for v in model.variables]
    with pytest.raises(ModelError, match="keeps an optimizer that has trained: extra"):
        session.fit(model, lambda: model.fit(X, Y, epochs=1, verbose=0))
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(weights, model.variables))  # no variable written


def test_unload_takes_the_watch_away():
    shell = make_shell()
    shell.run_cell("%load_ext jupyter_repro")
    assert "__init_subclass__" in keras.Model.__dict__
    shell.run_cell("import keras\nclass Mine(keras.Model):\n    def compile(self, a):\n        super().compile()")
    assert type(shell.user_ns["Mine"].__dict__["compile"]).__name__ == "_Recorded"
    shell.run_cell("%unload_ext jupyter_repro")
    assert "__init_subclass__" not in keras.Model.__dict__
    assert type(shell.user_ns["Mine"].__dict__["compile"]).__name__ == "function"


class Unbuilt(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(1)

    def call(self, x):
        return self.dense(x)


def test_an_unbuilt_model_fed_by_a_generator_is_not_snapshotted_trained(session):
    """A generator cannot be looked at before it trains: the snapshot is not taken, the run
    is not compared, and the next fit refuses (the model is trained now) naming what to do."""
    model = Unbuilt()
    model.compile(optimizer="adam", loss="mse")
    session.snapshot(model)

    def batches():
        for i in range(0, 64, 16):
            yield X[i:i + 16], Y[i:i + 16]

    report = session.fit(model, lambda: model.fit(batches(), epochs=1, verbose=0))
    assert report.verdict.status == "not compared" and "its initial state was not taken" in report.inputs.reason
    with pytest.raises(ReproError, match="create the model again, call it on one batch"):
        session.fit(model, lambda: model.fit(X, Y, epochs=1, verbose=0))


def test_an_unbuilt_model_built_by_the_notebook_is_snapshotted_then(session):
    model = Unbuilt()
    model.compile(optimizer="adam", loss="mse")
    session.snapshot(model)
    model(X[:1])  # built by the notebook before the first fit: that is the state taken
    built = [v.numpy().copy() for v in model.variables]
    one = session.fit(model, lambda: model.fit(X, Y, epochs=1, verbose=0))
    assert session.snapshots["model"].fingerprint == one.snapshot_fingerprint
    assert all(np.array_equal(a, b) for a, b in zip(built, session.snapshots["model"].values))
    two = session.fit(model, lambda: model.fit(X, Y, epochs=1, verbose=0))
    assert two.verdict.status == "identical" and two.fingerprint == one.fingerprint


def test_trials_of_an_unbuilt_model_wait_for_its_first_fit(session):
    model = Unbuilt()
    model.compile(optimizer="adam", loss="mse")
    session.snapshot(model)
    with pytest.raises(ReproError, match="run one %%repro_fit first"):
        session.trials(model, lambda: model.fit(X, Y, epochs=1, verbose=0), seeds=[1, 2], progress=lambda _: None)
    assert not model.built


def _dataset(kind):
    frame = {"a": X[:, 0], "b": (X[:, 1] > 0).astype("int64")}
    space = keras.utils.FeatureSpace(features={"a": getattr(keras.utils.FeatureSpace, kind)(),
                                               "b": keras.utils.FeatureSpace.integer_categorical(num_oov_indices=0)},
                                     output_mode="concat")
    raw = tf.data.Dataset.from_tensor_slices((frame, Y)).batch(16)
    space.adapt(raw.map(lambda x, _: x))
    return raw.map(lambda x, y: (space(x), y))


def test_a_feature_space_graph_is_canonical():
    """Built twice (Keras numbers the layers anew: ``preprocessor_1`` then ``1_preprocessor_1``),
    the same bytes; another normalization or other adapted statistics, other bytes."""
    once, twice = dataset_graph_bytes(_dataset("float_normalized")), dataset_graph_bytes(_dataset("float_normalized"))
    assert once == twice
    assert dataset_graph_bytes(_dataset("float_rescaled")) != once


def test_a_config_after_a_keras_round_trip_is_the_same_architecture(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dropout(0.2), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(X, Y, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    assert architecture(reloaded) == architecture(model)
    reloaded.layers[1].rate = 0.5
    assert architecture(reloaded) != architecture(model)


def _two_losses(base):
    class TwoLosses(base):
        def __init__(self):
            super().__init__()
            self.net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])

        def compile(self, optimizer, first_loss, second_loss):
            super().compile()
            self.opt, self.first_loss, self.second_loss = optimizer, first_loss, second_loss

        def train_step(self, data):
            x, y = data
            with tf.GradientTape() as tape:
                loss = self.first_loss(y, self.net(x)) + 0.5 * self.second_loss(y, self.net(x))
            grads = tape.gradient(loss, self.net.trainable_weights)
            self.opt.apply_gradients(zip(grads, self.net.trainable_weights))
            return {"loss": loss}

    return TwoLosses()


def test_keywords_in_another_order_are_named_by_parameter(session):
    """``compile(first_loss=a, second_loss=b)`` and ``compile(second_loss=a, first_loss=b)`` are
    two settings; the same keywords in another order are one."""
    from jupyter_repro.model.snapshot import CompileRecipe
    from jupyter_repro.values.fingerprint import fingerprint_value

    model = _two_losses(keras.Model)
    mse, mae = keras.losses.MeanSquaredError(), keras.losses.MeanAbsoluteError()
    settings = []
    for call in (dict(optimizer=keras.optimizers.Adam(), first_loss=mse, second_loss=mae),
                 dict(second_loss=mae, optimizer=keras.optimizers.Adam(), first_loss=mse),
                 dict(optimizer=keras.optimizers.Adam(), second_loss=mse, first_loss=mae)):
        model.compile(**call)
        settings.append(fingerprint_value(CompileRecipe.of(model).settings()))
    assert settings[0] == settings[1] and settings[2] != settings[0]


def test_a_train_steps_own_optimizer_is_made_anew_and_counts(session):
    """An optimizer a custom train_step keeps beside model.optimizer (Keras's compile): a new
    one each fit (else its moments carry over: a false "differs"), and its settings count."""
    class Aux(keras.Model):
        def __init__(self):
            super().__init__()
            self.net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
            self.aux = keras.optimizers.Adam(0.01)

        def train_step(self, data):
            x, y = data
            with tf.GradientTape() as tape:
                loss = keras.ops.mean((y - self.net(x)) ** 2)
            grads = tape.gradient(loss, self.net.trainable_weights)
            self.aux.apply_gradients(zip(grads, self.net.trainable_weights))
            return {"loss": loss}

    model = Aux()
    model.compile(optimizer="sgd", loss="mse")
    session.snapshot(model)
    one = session.fit(model, lambda: model.fit(X, Y, epochs=1, verbose=0))
    two = session.fit(model, lambda: model.fit(X, Y, epochs=1, verbose=0))
    assert two.verdict.status == "identical" and two.fingerprint == one.fingerprint
    model.aux = keras.optimizers.Adam(0.9)  # the twin: another learning rate is another run
    three = session.fit(model, lambda: model.fit(X, Y, epochs=1, verbose=0))
    assert three.verdict.status == "first" and three.fingerprint != one.fingerprint


def test_an_unseen_compile_after_unload_is_not_replayed_from_before(session):
    model = _pair_model(keras.Model)
    model.compile(keras.optimizers.Adam(1e-3), keras.optimizers.SGD(), keras.losses.MeanSquaredError())
    WATCH.remove()
    model.compile(keras.optimizers.Adam(0.5), keras.optimizers.SGD(), keras.losses.MeanSquaredError())
    watch_compile()
    with pytest.raises(ModelError, match="did not see the call"):
        session.snapshot(model)


def test_a_custom_layers_automatic_name_does_not_count():
    """keras.io's custom layers (``TransformerBlock(layers.Layer)``) take no ``name``: Keras
    numbers it per process (``transformer_block_2``), held only by the layer entry."""
    @keras.saving.register_keras_serializable(package="tests")
    class Block(keras.layers.Layer):
        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units, self.dense = units, keras.layers.Dense(units)

        def call(self, x):
            return self.dense(x)

        def get_config(self):
            return {**super().get_config(), "units": self.units}

    def build(units):
        inputs = keras.Input((4,))
        return keras.Model(inputs, keras.layers.Dense(1)(Block(units)(inputs)))

    assert architecture(build(3)) == architecture(build(3))
    assert architecture(build(3)) != architecture(build(5))
