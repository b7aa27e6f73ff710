"""The portable mode's claim per backend (``portable.COVERAGE``): exactly what the probe's evidence
shows equal on every CPU measured (``benchmarks/results/portable_coverage.json``), named in the
report, and a model using anything else is told so before its fit."""
import json
import sys
from pathlib import Path

import pytest

from jupyter_repro.seeding.portable import COVERAGE, PINS, apply, gaps_line, model_gaps

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from probe_families import RESULTS, STAGES, case_name, verdict  # noqa: E402

EVIDENCE = json.loads(Path(RESULTS).read_text())


def claimed(backend):
    claim = COVERAGE[backend]
    return ([case_name(family, "adam", "float32") for family in claim.families]
            + [case_name("dense", opt, "float32") for opt in claim.optimizers]
            + [case_name(family, "adam", policy) for family in claim.families for policy in claim.policies])


@pytest.mark.parametrize("backend", sorted(COVERAGE))
def test_every_claimed_case_was_equal_at_every_stage_on_every_cpu_measured(backend):
    runs = {r["cpu"] for r in EVIDENCE["runs"] if r["backend"] == backend and r["mode"] == "portable"}
    assert {"native", "SandyBridge"} <= runs, runs                    # the floor emulated, at least
    for case in claimed(backend):
        ok, text = verdict(EVIDENCE, backend, case)
        assert ok, f"{backend} {case}: {text}: withdraw it from portable.COVERAGE"


@pytest.mark.parametrize("backend", sorted(COVERAGE))
def test_the_twin_without_the_mode_this_cpu_gives_other_bits_so_the_comparison_can_fail(backend):
    native = {(r["cpu"], r["mode"]): r["cases"] for r in EVIDENCE["runs"] if r["backend"] == backend}
    if ("native", "native") not in native:
        pytest.skip(f"{backend}: the probe was not run natively without the mode")
    differ = [case for case in claimed(backend) if case in native["native", "native"]
              and native["native", "native"][case]["final"] != native["native", "portable"][case]["final"]]
    assert differ, f"{backend}: without the pins this CPU gave the same bits: the evidence shows nothing"


def layer(name):
    return type(name, (), {})()


def model(*layers, optimizer="Adam", policy="float32"):
    return type("Functional", (), {"layers": list(layers), "optimizer": type(optimizer, (), {})(),
                                   "dtype_policy": type("DTypePolicy", (), {"name": policy})()})()


def test_a_model_of_covered_families_has_no_gaps_and_one_with_others_names_each_with_why():
    covered = COVERAGE["tensorflow"]
    inner = model(layer("Flatten"), layer("Dense"))
    assert model_gaps(model(layer("InputLayer"), inner, layer("Dense")), "tensorflow") == []
    odd = model(layer("Dense"), layer("Conv3D"), layer("Conv3D"), optimizer="Adagrad", policy="mixed_float16")
    gaps = model_gaps(odd, "tensorflow")
    assert gaps == ["Conv3D (not measured)", "optimizer Adagrad (not measured)",
                    "dtype policy mixed_float16 (not measured)"]
    assert gaps_line(odd, "tensorflow").startswith("portable mode: not covered on tensorflow, so not vouched for on "
                                                   "another CPU: Conv3D (not measured); optimizer Adagrad")
    for family, why in covered.withdrawn.items():           # a withdrawn family says what differed
        assert why and family not in covered.families
    assert model_gaps(odd, "torch") == []                   # the backend itself is reported not portable


@pytest.mark.parametrize("backend", sorted(COVERAGE))
def test_the_report_names_what_the_mode_covers(backend):
    report = apply({"KERAS_BACKEND": backend, **PINS}, initial=dict(PINS), loaded={}, machine="x86_64")
    line = str(report).splitlines()[1]
    assert line == str(COVERAGE[backend]) and line.startswith("covers (measured): Dense")


def test_a_fit_in_the_portable_mode_names_what_its_model_uses_beyond_the_claim(ip, capsys):
    ip.run_cell("%repro_seed 42 --portable")
    ip.run_cell("import numpy as np, keras\n"
                "model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), "
                "keras.layers.UnitNormalization(), keras.layers.Dense(1)])\n"
                "model.compile(keras.optimizers.Adagrad(0.01), 'mse')\n"
                "X = np.ones((8, 4), 'float32'); y = np.ones((8, 1), 'float32')")
    ip.run_cell("%repro_snapshot model")
    capsys.readouterr()
    ip.run_cell("%%repro_fit model\nmodel.fit(X, y, epochs=1, verbose=0)")
    printed = capsys.readouterr().out
    assert ("portable mode: not covered on tensorflow, so not vouched for on another CPU: UnitNormalization (not "
            "measured); optimizer Adagrad (not measured)") in printed
    ip.run_cell("model2 = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])\nmodel2.compile('adam', 'mse')")
    ip.run_cell("%repro_snapshot model2")
    capsys.readouterr()
    ip.run_cell("%%repro_fit model2\nmodel2.fit(X, y, epochs=1, verbose=0)")
    assert "portable mode: not covered" not in capsys.readouterr().out            # the twin: all covered
