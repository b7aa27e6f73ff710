"""FD001 MLP fits: %%repro_fit overhead, cost of op determinism, cached revisits,
and input fingerprinting as a share of the fit."""
from __future__ import annotations

import statistics
import tempfile

from common import Comparison, data_dir, interleaved, timed

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
CLOCK = '''
import time as _bench_time
class EpochClock(keras.callbacks.Callback):
    """Wall and process CPU time when training starts and at the end of each epoch."""
    def on_train_begin(self, logs=None):
        self.marks = [(_bench_time.perf_counter(), _bench_time.process_time())]
    def on_epoch_end(self, epoch, logs=None):
        self.marks.append((_bench_time.perf_counter(), _bench_time.process_time()))
'''
# The fit with a clock in it (both sides get the same callback): splits a fit into its
# first epoch (tracing) and the rest, and shows stalls: epochs whose wall time doubles
# while their CPU time does not, i.e. the process was not running.
CLOCKED = "bench_clock = EpochClock()\n" + FIT.replace("verbose=0)", "verbose=0, callbacks=[bench_clock])")
COUNTED = ("import sys\nsys.setprofile(bench_profile)\ntry:\n    " + FIT + "\nfinally:\n    sys.setprofile(None)")
STALL = 1.6  # an epoch this many times the run's median wall time, with CPU time near its median
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


def epoch_times(marks):
    """Per-epoch (wall, CPU) seconds from an EpochClock's marks."""
    return [(b[0] - a[0], b[1] - a[1]) for a, b in zip(marks, marks[1:])]


def stalls(marks) -> list[float]:
    """Wall seconds lost in epochs where the process stood still: wall ≥ STALL × the run's
    median epoch while CPU stayed under 1.25 × its median (work unchanged)."""
    times = epoch_times(marks)[1:]
    wall, cpu = statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)
    return [t[0] - wall for t in times if t[0] >= STALL * wall and t[1] < 1.25 * cpu]


def epochs_note(subject_marks, baseline_marks) -> str:
    """Where the difference between two sides of a fit comparison lies, epoch by epoch."""
    med = statistics.median

    def figures(marks):  # first epoch, median later epoch (wall, CPU), stalls, fit wall
        times = epoch_times(marks)
        return (times[0][0], med(t[0] for t in times[1:]), med(t[1] for t in times[1:]), stalls(marks),
                marks[-1][0] - marks[0][0])

    subject, baseline = [figures(m) for m in subject_marks], [figures(m) for m in baseline_marks]
    first = med(f[0] for f in subject) - med(f[0] for f in baseline)
    later = [s[1] / b[1] for s, b in zip(subject, baseline)]
    later_cpu = [s[2] / b[2] for s, b in zip(subject, baseline)]
    steady = [(s[4] - sum(s[3])) / (b[4] - sum(b[3])) for s, b in zip(subject, baseline)]
    return (f"first epoch (tracing) {med(f[0] for f in subject):.3f} s vs {med(f[0] for f in baseline):.3f} s "
            f"({first * 1e3:+.0f} ms = {first / med(f[4] for f in baseline):+.2%} of the fit); "
            f"later epochs, median per fit: ratio {med(later):.3f} wall ({min(later):.3f}–{max(later):.3f}), "
            f"{med(later_cpu):.3f} CPU; stalls (an epoch ≥ {STALL}× the median wall time, CPU time unchanged: "
            f"the process was not running): {sum(len(f[3]) for f in subject)} in the subject's fits, "
            f"{sum(len(f[3]) for f in baseline)} in the baseline's, {sum(sum(f[3]) for f in subject):.1f} s vs "
            f"{sum(sum(f[3]) for f in baseline):.1f} s lost in all; model.fit's wall time without the stalls: "
            f"ratio {med(steady):.3f} ({min(steady):.3f}–{max(steady):.3f})")


def interval_note(comparison) -> str:
    low, high = comparison.interval()
    return f"95% bootstrap interval of the median ratio over {len(comparison.ratios)} pairs: {low:.3f}–{high:.3f}"


def python_calls(ip, cell: str) -> int:
    """Python and C function calls made on the cell's thread inside model.fit (sys.setprofile)."""
    calls = [0]

    def profile(frame, event, arg):
        if event == "call" or event == "c_call":
            calls[0] += 1

    ip.user_ns["bench_profile"] = profile
    run(ip, cell)  # warm: the first fit after a compile traces; the second is compared
    calls[0] = 0
    run(ip, cell)
    return calls[0]


def main(epochs: int = 20, repeat: int = 5, fit_pairs: int = 14) -> list[Comparison]:
    ip = shell()
    run(ip, "%repro_seed 42")
    run(ip, PREPARE.format(data_dir=data_dir()))
    run(ip, "%repro_snapshot model")
    run(ip, CLOCK)
    fit = FIT.format(epochs=epochs)
    clocked = CLOCKED.format(epochs=epochs)
    marks = ([], [], [])
    plain_clocked = PLAIN.replace(FIT, CLOCKED).format(epochs=epochs)

    def clocked_run(cell, side):
        run(ip, cell)
        marks[side].append(ip.user_ns["bench_clock"].marks)

    main_row = interleaved(f"`%%repro_fit` vs plain compile + fit (FD001 MLP, {epochs} epochs), wall",
                           lambda: clocked_run("%%repro_fit model\n" + clocked, 0),
                           lambda: clocked_run(plain_clocked, 1), fit_pairs, goal="≤ 1.02",
                           control=lambda: clocked_run(plain_clocked, 2))
    for side in marks:
        del side[0]  # the warm-up round
    main_row.note = f"{interval_note(main_row)}; {epochs_note(marks[0], marks[1])}"
    print(main_row.note)
    cpu_row = main_row.cpu(f"`%%repro_fit` vs plain compile + fit (FD001 MLP, {epochs} epochs), process CPU time",
                           goal="≤ 1.02")
    print(cpu_row)
    control = main_row.aa(f"A/A control: the plain fit vs itself, timed in the same rounds ({epochs} epochs), wall")
    control.note = f"{interval_note(control)}; CPU time ratio {control.cpu('').ratio:.3f}; {epochs_note(marks[2], marks[1])}"
    print(control.note)
    counted = COUNTED.format(epochs=2)
    calls = python_calls(ip, "%%repro_fit model\n" + counted), python_calls(ip, PLAIN.replace(FIT, COUNTED).format(epochs=2))
    cpu_row.note = (f"Python and C function calls inside model.fit (2 epochs, sys.setprofile; not a timing): "
                    f"{calls[0]:,} vs {calls[1]:,} ({calls[0] - calls[1]:+,} = {(calls[0] - calls[1]) / calls[1]:+.3%}: "
                    f"binding the fit's arguments and fingerprinting them, the model's architecture and its "
                    f"compile settings, once per fit)")
    print(cpu_row.note)
    cpu_row.note = f"{interval_note(cpu_row)}; " + cpu_row.note
    results = [main_row, cpu_row, control]

    fingerprints = []
    for cell in ("%%repro_fit model\n" + fit, PLAIN.format(epochs=epochs)):
        run(ip, cell)
        run(ip, "from jupyter_repro import model_fingerprint\nbench_fingerprint = model_fingerprint(model)")
        fingerprints.append(ip.user_ns["bench_fingerprint"])
    main_row.note = f"both sides compute the same bits: {fingerprints[0] == fingerprints[1]}; " + main_row.note

    fixed = interleaved("fixed cost of `%%repro_fit` (no-op body) vs plain compile + set_weights",
                        lambda: run(ip, "%%repro_fit model\npass"),
                        lambda: run(ip, "model.compile(optimizer=keras.optimizers.Adam(), loss='mse')\n"
                                        "model.set_weights(initial)"), repeat)
    fixed.note = (f"{(statistics.median(fixed.subject) - statistics.median(fixed.baseline)) * 1e3:.1f} ms more per fit "
                  f"= {(statistics.median(fixed.subject) - statistics.median(fixed.baseline)) / statistics.median(results[0].baseline):.2%} "
                  f"of the {epochs}-epoch fit: the package's own cost outside model.fit; the rest of the first row's difference is inside model.fit")
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

    import inspect

    from jupyter_repro.run.inputs import Inputs, add_cell, add_fit_call
    from jupyter_repro.model.snapshot import CompileRecipe

    # What a fit's inputs cost before it trains: the cell's code and the notebook values it
    # reads (Session.running), then the call's arguments, architecture and compile settings
    # (FitCalls, for each model.fit call), bound as the wrapped fit binds them.
    model, namespace = ip.user_ns["model"], ip.user_ns
    bound = inspect.signature(model.fit).bind(x=namespace["X_fit"], y=namespace["y_fit"],
                                              validation_data=(namespace["X_val"], namespace["y_val"]),
                                              epochs=epochs, batch_size=32, verbose=0)
    bound.apply_defaults()
    arguments, recipe = dict(bound.arguments), CompileRecipe.of(model)

    def take_inputs():
        inputs = Inputs()
        add_cell(inputs, fit, namespace, ip.user_ns_hidden, {id(model): "the model trained"})
        add_fit_call(inputs, "fit.", model, arguments, recipe)

    fit_seconds = results[0].subject
    hashing = [timed(take_inputs) for _ in range(repeat)]
    share = Comparison(f"fingerprinting the fit's inputs vs the fit ({epochs} epochs)", hashing, fit_seconds,
                       goal="≤ 0.01")
    share.note = ("the cell's code and the notebook values it reads, then the fit call's arguments, the model's "
                  "architecture and its compile settings (`inputs.add_cell` + `inputs.add_fit_call`)")
    print(share)
    results.append(share)
    return results


if __name__ == "__main__":
    import sys

    main(*(int(a) for a in sys.argv[1:]))
