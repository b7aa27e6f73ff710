"""Issue #20 in-process: the model's state that is the notebook's (model/model_state.py),
callbacks by their configuration, "changed since" naming only changed values, and a
store shared by two installations (the real-kernel cases: test_kernel_model_state.py)."""
import os

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from jupyter_repro import Session  # noqa: E402
from jupyter_repro.values.fingerprint import fingerprint_value  # noqa: E402
from jupyter_repro.run.inputs import changed  # noqa: E402
from jupyter_repro.model.model_state import preprocessing_fingerprint, preprocessing_variables  # noqa: E402
from jupyter_repro.store.quota import DiskQuota  # noqa: E402
from jupyter_repro.store.signing import Signer  # noqa: E402

X = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
Y = X.sum(1)


def normalized():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Normalization(), keras.layers.Dense(3),
                              keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.layers[0].adapt(X)
    return model


def test_a_re_adapt_is_an_input_and_never_reverted(tmp_path):
    model = normalized()
    session = Session(seed=42, store=str(tmp_path / "store"), signer=Signer(tmp_path / "key"))
    session.snapshot(model)
    first = session.fit(model, lambda: model.fit(X, Y, epochs=1, verbose=0))
    model.layers[0].adapt(X * 3 + 1)
    adapted = [v.numpy().copy() for v in model.layers[0].variables]
    second = session.fit(model, lambda: model.fit(X, Y, epochs=1, verbose=0))
    assert second.inputs.parts["preprocessing"] != first.inputs.parts["preprocessing"]
    assert second.verdict.status == "first" and "preprocessing" in second.verdict.changed_inputs
    norm = model.layers[0]
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(adapted, norm.variables))   # not reverted
    assert np.array_equal(np.ravel(norm.mean), np.ravel(norm.adapt_mean.numpy()))       # computes with them


def test_preprocessing_state_is_known_by_content():
    lookup = keras.Sequential([keras.Input((1,), dtype="string"), keras.layers.StringLookup()])
    lookup.layers[0].adapt(["red", "green", "red"])
    before = preprocessing_fingerprint(lookup)
    lookup.layers[0].adapt(["cyan", "pink", "cyan"])            # the same vocabulary size
    assert preprocessing_fingerprint(lookup) != before
    lookup.layers[0].adapt(["red", "green", "red"])
    assert preprocessing_fingerprint(lookup) == before
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    assert preprocessing_fingerprint(plain) is None and not preprocessing_variables(plain)


def test_callbacks_count_by_their_configuration():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    callbacks = [keras.callbacks.EarlyStopping(monitor="loss", patience=1, min_delta=0.01,
                                               restore_best_weights=True),
                 keras.callbacks.ReduceLROnPlateau(monitor="loss", patience=1)]
    before = fingerprint_value(callbacks)
    for _ in range(2):
        model.fit(X, Y, epochs=2, verbose=0, callbacks=callbacks)
        assert fingerprint_value(callbacks) == before                 # what Keras writes while fitting
    callbacks[0].patience = 3
    assert fingerprint_value(callbacks) != before                     # what the user gave still counts


def test_changed_since_names_only_values_that_differ():
    earlier = {"cell": "a", "global X": "1", "global epochs": "5", "fit.x": "1"}
    now = {"cell": "b", "global X": "2", "global lr": "3", "fit.x": "2", "preprocessing": "p"}
    assert changed(now, earlier) == ["cell", "fit.x", "X", "preprocessing"]   # not epochs, not lr


def test_two_installations_share_a_store_and_keep_their_own_results(tmp_path):
    store = str(tmp_path / "store")
    sessions = [Session(seed=42, store=store, signer=Signer(tmp_path / name / "key")) for name in ("ours", "theirs")]
    models = [keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(1)]) for _ in sessions]
    for session, model in zip(sessions, models):  # each installation its own kernel: the same model in each
        model.set_weights(models[0].get_weights())
        model.compile(optimizer="adam", loss="mse")
        session.snapshot(model)
    verdicts = []
    for session, model in list(zip(sessions, models)) * 2:
        report = session.fit(model, lambda: model.fit(X, Y, epochs=1, verbose=0), cache=True)
        verdicts.append(report.verdict.status)
    assert verdicts == ["first", "identical", "cached", "cached"]   # each replays its own at its second visit
    states = sorted(p.name for p in (tmp_path / "store" / "states").iterdir())
    owners = {name.split("-")[2] for name in states}
    assert owners == {s.signer.owner for s in sessions}


def test_eviction_never_removes_another_installations_state(tmp_path):
    states = tmp_path / "states"
    states.mkdir()
    ours, theirs = (states / "state-0123456789abcdef-aaaaaaaaaaaa-fedcba9876543210.safetensors",
                    states / "state-0123456789abcdef-bbbbbbbbbbbb-fedcba9876543210.safetensors")
    for path in (ours, theirs):
        path.write_bytes(b"x" * 100)
    DiskQuota(tmp_path, 1, owner="aaaaaaaaaaaa").evict(room=1)
    assert not ours.exists() and theirs.exists()


@pytest.mark.skipif(os.name != "posix", reason="the filter works on POSIX descriptors only")
def test_tf_messages_removes_exactly_the_use_unbounded_threadpool_line(tmp_path):
    from jupyter_repro.seeding.tf_messages import DescriptorFilter

    noise = (b"E0000 00:00:1796300000.1 27372 node_def_util.cc:682] NodeDef mentions attribute "
             b"use_unbounded_threadpool which is not in the op definition: Op<name=MapDataset; signature=x> "
             b"This may be expected. NodeDef: {{node ParallelMapDatasetV2/_15}}\n")
    others = [b"E0000 00:00:1796300000.2 27372 cuda_platform.cc:52] failed call to cuInit\n",
              b"E0000 00:00:1796300000.3 27372 node_def_util.cc:682] NodeDef mentions attribute other_attr "
              b"which is not in the op definition: Op<name=MapDataset; x>\n",
              b"W0000 a warning\n", b"a line without its end"]
    path = tmp_path / "stderr"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    quiet = DescriptorFilter(fd)
    quiet.start()
    for data in [others[0], noise, others[1], noise, others[2], others[3]]:
        os.write(fd, data)
    quiet.stop()
    os.close(fd)
    assert path.read_bytes() == b"".join(others) and quiet.removed == 2


@pytest.mark.skipif(os.name != "posix", reason="the filter works on POSIX descriptors only")
def test_tf_messages_leaves_a_descriptor_someone_else_took_over(tmp_path):
    from jupyter_repro.seeding.tf_messages import DescriptorFilter

    fd = os.open(tmp_path / "first", os.O_WRONLY | os.O_CREAT)
    quiet = DescriptorFilter(fd)
    quiet.start()
    other = os.open(tmp_path / "second", os.O_WRONLY | os.O_CREAT)
    os.dup2(other, fd)                                # as pytest's capture does between tests
    assert not quiet.active
    quiet.stop()
    os.write(fd, b"still to the second file\n")
    assert (tmp_path / "second").read_bytes() == b"still to the second file\n"
    for descriptor in (fd, other):
        os.close(descriptor)


def test_weights_set_after_a_run_are_kept_and_a_plain_fit_is_reverted(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    session = Session(seed=42, store=str(tmp_path / "store"), signer=Signer(tmp_path / "key"))
    session.snapshot(model)
    first = session.fit(model, lambda: model.fit(X, Y, epochs=1, verbose=0))
    loaded = [w * 2 for w in model.layers[0].get_weights()]
    model.layers[0].set_weights(loaded)
    kept = session.fit(model, lambda: None)                          # no fit: the model as it starts
    assert all(np.array_equal(a, b) for a, b in zip(loaded, model.layers[0].get_weights()))
    assert "user changes" in kept.inputs.parts and any("kept as the notebook set them" in n for n in kept.notes)
    model.fit(X, Y, epochs=1, verbose=0)                             # trained outside the tool
    reverted = session.fit(model, lambda: model.fit(X, Y, epochs=1, verbose=0))
    assert "user changes" not in reverted.inputs.parts and reverted.fingerprint == first.fingerprint
    assert any("trained outside %%repro_fit" in n for n in reverted.notes)


# -- found in review: each fails without its fix ------------------------------------------


def plain_model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    return model


def test_weights_set_before_a_cell_that_raises_before_training_stay_the_notebooks(tmp_path):
    model = plain_model()
    session = Session(seed=42, store=str(tmp_path / "store"), signer=Signer(tmp_path / "key"))
    session.snapshot(model)
    session.fit(model, lambda: model.fit(X, Y, epochs=1, verbose=0))
    loaded = np.full((4, 3), 0.5, "float32")
    model.layers[0].kernel.assign(loaded)

    def typo():
        raise NameError("a typo before model.fit")

    with pytest.raises(NameError):
        session.fit(model, typo)
    report = session.fit(model, lambda: model.fit(X, Y, epochs=0, verbose=0))
    assert "user changes" in report.inputs.parts and any("kept as the notebook set them" in n for n in report.notes)
    assert np.array_equal(model.layers[0].kernel.numpy(), loaded)      # not reverted, silently or otherwise


class Scaled(keras.layers.Layer):
    """A layer with adapt and a trainable weight: the weight is the fit's, the adapt state the notebook's."""

    def build(self, shape):
        self.w = self.add_weight(shape=(shape[-1],), initializer="ones")
        self.offset = self.add_weight(shape=(shape[-1],), initializer="zeros", trainable=False)

    def adapt(self, data):
        self.offset.assign(np.mean(data, axis=0))

    def call(self, x):
        return (x - self.offset) * self.w


def test_a_trainable_weight_of_a_layer_with_adapt_is_restored(tmp_path):
    model = keras.Sequential([keras.Input((4,)), Scaled(), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.layers[0].adapt(X)
    assert preprocessing_variables(model) == frozenset({id(model.layers[0].offset)})
    session = Session(seed=42, store=str(tmp_path / "store"), signer=Signer(tmp_path / "key"))
    session.snapshot(model)
    fits = [session.fit(model, lambda: model.fit(X, Y, epochs=1, verbose=0)) for _ in range(3)]
    assert fits[0].fingerprint == fits[1].fingerprint == fits[2].fingerprint   # w restored: no training on
    assert fits[2].verdict.status == "identical"


def test_a_min_delta_set_against_keras_sign_after_a_fit_is_another_configuration():
    """Keras negates min_delta at the first fit for a 'min' monitor; a user who then writes
    a positive one trains otherwise, so it must not share the fingerprint (a stale replay)."""
    model = plain_model()
    stopping = keras.callbacks.EarlyStopping(monitor="loss", min_delta=0.05, patience=1)
    before = fingerprint_value([stopping])
    model.fit(X, Y, epochs=1, verbose=0, callbacks=[stopping])
    assert stopping.min_delta == -0.05 and fingerprint_value([stopping]) == before   # reused as Keras left it
    stopping.min_delta = 0.05
    assert fingerprint_value([stopping]) != before


def test_a_users_subclass_of_a_keras_callback_counts_whole():
    class Patient(keras.callbacks.EarlyStopping):
        pass

    model = plain_model()
    mine = Patient(monitor="loss", patience=3)
    before = fingerprint_value([mine])
    model.fit(X, Y, epochs=1, verbose=0, callbacks=[mine])
    assert fingerprint_value([mine]) != before    # what it keeps between fits may change the next one


def test_an_unreadable_signing_key_costs_the_record_not_the_fit(tmp_path):
    key = tmp_path / "short.key"
    key.write_bytes(b"abc")
    model = plain_model()
    session = Session(seed=42, store=str(tmp_path / "store"), signer=Signer(key))
    session.snapshot(model)
    report = session.fit(model, lambda: model.fit(X, Y, epochs=1, verbose=0), cache=True)
    assert report.success and any("not recorded" in note and "signing key" in note for note in report.notes)


def test_tf_messages_forwards_a_child_that_outlives_the_filter(tmp_path):
    """A process started while the filter is on inherits the pipe: stopping the filter
    must neither cut it off (SIGPIPE) nor drop what it writes afterwards."""
    import subprocess
    import sys

    from jupyter_repro.seeding.tf_messages import DescriptorFilter

    out = tmp_path / "stderr.txt"
    script = ("import os, subprocess, sys, time\nfrom jupyter_repro.seeding.tf_messages import DescriptorFilter\n"
              "f = DescriptorFilter(2); f.start()\n"
              "child = subprocess.Popen([sys.executable, '-c', "
              "'import sys, time; time.sleep(0.5); sys.stderr.write(\"from-child\\\\n\")'])\n"
              "f.stop()\nprint(child.wait())")
    with open(out, "wb") as err:
        done = subprocess.run([sys.executable, "-c", script], stderr=err, stdout=subprocess.PIPE, text=True,
                              timeout=60, env=dict(os.environ, PYTHONPATH=os.getcwd()))
    assert done.stdout.strip() == "0" and "from-child" in out.read_text()
