"""FD001 MLP fits: %%repro_fit overhead, cost of op determinism, cached revisits,
and input fingerprinting as a share of the fit."""
from __future__ import annotations

import statistics
import tempfile

from common import CMAPSS_DIR, Comparison, interleaved, timed

PREPARE = '''
import numpy as np, keras
from sklearn.model_selection import GroupShuffleSplit
from sklearn.preprocessing import MinMaxScaler
from jupyter_repro.datasets import SENSORS, load_or_synthesize
data = load_or_synthesize({data_dir!r})
train = data.train.copy()
train["rul"] = (train.groupby("unit").cycle.transform("max") - train.cycle).clip(upper=125)
train[SENSORS] = MinMaxScaler().fit_transform(train[SENSORS])
fit_rows, val_rows = next(GroupShuffleSplit(n_splits=1, test_size=0.2, random_state=42).split(train, groups=train.unit))
smoothed = train.copy()
smoothed[SENSORS] = train.groupby("unit")[SENSORS].ewm(alpha=0.4).mean().reset_index(level=0, drop=True)
X_fit, y_fit = smoothed[SENSORS].iloc[fit_rows].to_numpy("float32"), smoothed.rul.iloc[fit_rows].to_numpy("float32")
X_val, y_val = smoothed[SENSORS].iloc[val_rows].to_numpy("float32"), smoothed.rul.iloc[val_rows].to_numpy("float32")
model = keras.Sequential([keras.Input((21,)), keras.layers.Dense(16, activation="relu"),
    keras.layers.Dense(32, activation="relu"), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(1)])
model.compile(optimizer=keras.optimizers.Adam(), loss="mse")
initial = model.get_weights()
'''
FIT = "history = model.fit(X_fit, y_fit, validation_data=(X_val, y_val), epochs={epochs}, batch_size=32, verbose=0)"
# The plain recipe, reseeded like %%repro_fit, so both sides compute the same bits.
PLAIN = ("keras.utils.set_random_seed(42)\nmodel.compile(optimizer=keras.optimizers.Adam(), loss='mse')\n"
         "model.set_weights(initial)\n" + FIT)


def shell():
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    config.ReproMagics.store = tempfile.mkdtemp(prefix="repro-bench-")
    ip = InteractiveShell.instance(config=config)
    ip.run_line_magic("load_ext", "jupyter_repro")
    return ip


def run(ip, source):
    result = ip.run_cell(source, silent=True)
    result.raise_error()
    return result.result


def main(epochs: int = 20, repeat: int = 5) -> list[Comparison]:
    import os

    ip = shell()
    run(ip, "%repro_seed 42")
    data_dir = CMAPSS_DIR if os.path.isfile(os.path.join(CMAPSS_DIR, "train_FD001.txt")) else None
    run(ip, PREPARE.format(data_dir=data_dir))
    run(ip, "%repro_snapshot model")
    fit = FIT.format(epochs=epochs)
    results = [interleaved(f"`%%repro_fit` vs plain compile + fit (FD001 MLP, {epochs} epochs)",
                           lambda: run(ip, "%%repro_fit model\n" + fit),
                           lambda: run(ip, PLAIN.format(epochs=epochs)), repeat, goal="≤ 1.02")]

    fingerprints = []
    for cell in ("%%repro_fit model\n" + fit, PLAIN.format(epochs=epochs)):
        run(ip, cell)
        run(ip, "from jupyter_repro import model_fingerprint\nbench_fingerprint = model_fingerprint(model)")
        fingerprints.append(ip.user_ns["bench_fingerprint"])
    results[0].note = f"both sides compute the same bits: {fingerprints[0] == fingerprints[1]}"

    def nested(line, cell):
        ip.run_cell(cell)

    ip.register_magic_function(nested, "cell", "nested_control")
    results.append(interleaved(f"control, no package: plain fit in a nested `run_cell` vs direct ({epochs} epochs)",
                               lambda: run(ip, "%%nested_control\n" + PLAIN.format(epochs=epochs)),
                               lambda: run(ip, PLAIN.format(epochs=epochs)), repeat))
    fixed = interleaved("fixed cost of `%%repro_fit` (no-op body) vs plain compile + set_weights",
                        lambda: run(ip, "%%repro_fit model\npass"),
                        lambda: run(ip, "model.compile(optimizer=keras.optimizers.Adam(), loss='mse')\n"
                                        "model.set_weights(initial)"), repeat)
    fixed.note = (f"{(statistics.median(fixed.subject) - statistics.median(fixed.baseline)) * 1e3:.1f} ms more per fit "
                  f"= {(statistics.median(fixed.subject) - statistics.median(fixed.baseline)) / statistics.median(results[0].baseline):.2%} "
                  f"of the {epochs}-epoch fit: the package's own cost outside model.fit; the rest of the first row's difference is inside model.fit (see Findings)")
    print(fixed.note)
    results.append(fixed)

    from tensorflow.python.framework import config as tf_config

    def fit_with(determinism):
        (tf_config.enable_op_determinism if determinism else tf_config.disable_op_determinism)()
        run(ip, "%%repro_fit model\n" + fit)

    results.append(interleaved(f"op determinism on vs off (FD001 MLP, {epochs} epochs)",
                               lambda: fit_with(True), lambda: fit_with(False), repeat, goal="≤ 1.05"))
    tf_config.enable_op_determinism()

    run(ip, "%%repro_fit model --cache\n" + fit)  # trains and stores the final state
    results.append(interleaved(f"cached revisit (`--cache`) vs the fit it replaces ({epochs} epochs)",
                               lambda: run(ip, "%%repro_fit model --cache\n" + fit),
                               lambda: run(ip, "%%repro_fit model --cache --verify\n" + fit), repeat,
                               warmup=0, goal="≤ 0.01 (≥ 100× faster)"))

    from jupyter_repro.fit import fit_arguments

    run(ip, "bench_arguments = dict(x=X_fit, y=y_fit, validation_data=(X_val, y_val), epochs=%d, batch_size=32, "
            "callbacks=None, sample_weight=None, class_weight=None)" % epochs)
    arguments = ip.user_ns["bench_arguments"]
    fit_seconds = results[0].subject
    hashing = [timed(lambda: fit_arguments(arguments)) for _ in range(repeat)]
    share = Comparison(f"fingerprinting the fit's inputs vs the fit ({epochs} epochs)", hashing, fit_seconds,
                       goal="≤ 0.01")
    print(share)
    results.append(share)
    return results


if __name__ == "__main__":
    main()
