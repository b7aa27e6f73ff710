"""The portable mode's pins: set where they still take effect, reported too late where not
(in-process; the bits under emulated CPUs: test_emulated_cpus.py)."""
import os
from types import SimpleNamespace

import pytest

from jupyter_repro.seeding.frameworks import XLA_DETERMINISM
from jupyter_repro.kernelspec import kernel_spec
from jupyter_repro.seeding.portable import AVX2_PINS, AVX2_XLA_PINS, PINS, XLA_PINS, UnknownFloor, apply

AT_START = {"GLIBC_TUNABLES": PINS["GLIBC_TUNABLES"]}


def test_before_any_import_every_pin_is_set_but_glibcs_which_only_the_kernelspec_can():
    environ = {}
    report = apply(environ, initial={}, loaded={}, machine="x86_64")
    assert report.set == ["ONEDNN_MAX_CPU_ISA", "TF_ENABLE_ONEDNN_OPTS", "OPENBLAS_CORETYPE",
                          "NPY_DISABLE_CPU_FEATURES"]
    assert environ == {name: PINS[name] for name in report.set}
    assert [name for name, _ in report.too_late] == ["GLIBC_TUNABLES"]
    assert "install-kernel --portable" in report.too_late[0][1] and not report.complete
    assert str(report).splitlines()[0] == ("portable mode (tensorflow backend, floor x86-64 with AVX (Intel Sandy "
                                           "Bridge, AMD Bulldozer or later)): INCOMPLETE")


def test_from_the_kernelspec_every_pin_is_in_force():
    environ = dict(PINS)
    report = apply(environ, initial=dict(PINS), loaded={"numpy": 1, "tensorflow": 1}, machine="x86_64")
    assert report.complete and report.already == list(PINS) and report.set == []
    spec = kernel_spec(42, "k", portable=True)
    assert {name: spec["env"][name] for name in PINS} == PINS
    assert "--ReproMagics.portable=True" in spec["argv"]
    assert not set(PINS) & set(kernel_spec(42, "k")["env"])       # the twin: not portable, no pins


def test_after_numpy_and_tensorflow_are_imported_their_pins_are_too_late_not_set():
    environ = {}
    report = apply(environ, initial=AT_START, loaded={"numpy": 1, "tensorflow": 1}, machine="x86_64")
    assert [name for name, _ in report.too_late] == ["ONEDNN_MAX_CPU_ISA", "TF_ENABLE_ONEDNN_OPTS",
                                                      "OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES"]
    assert report.too_late[0][1].startswith("tensorflow already imported") and environ == {}


def test_a_users_other_value_is_kept_and_said_and_other_machines_and_torch_are_not_claimed():
    report = apply({"ONEDNN_MAX_CPU_ISA": "AVX2"}, initial=AT_START, loaded={}, machine="x86_64")
    assert report.kept == [("ONEDNN_MAX_CPU_ISA", "AVX2")] and not report.complete
    arm = apply({}, initial={}, loaded={}, machine="aarch64")
    assert arm.set == [] and arm.not_covered == ["this machine is aarch64; the portable mode covers x86-64 only"]
    torch = apply({"KERAS_BACKEND": "torch", **PINS}, initial=dict(PINS), loaded={}, machine="x86_64")
    assert torch.not_covered[0].startswith("PyTorch: torch.sqrt (Adam uses it) goes through MKL") and not torch.complete
    assert str(torch).splitlines()[0] == "portable mode (torch backend, no floor: not covered): INCOMPLETE"
    assert str(torch).splitlines()[-1].startswith("not portable: PyTorch: ")


def test_on_jax_the_xla_pins_go_after_the_users_own_flags_before_jax_starts():
    environ = {"KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false", **PINS}
    report = apply(environ, initial=dict(PINS), loaded={"numpy": 1}, machine="x86_64")
    assert environ["XLA_FLAGS"] == " ".join(("--xla_cpu_multi_thread_eigen=false",) + XLA_PINS)
    assert report.set == ["XLA_FLAGS --xla_cpu_max_isa", "XLA_FLAGS --xla_cpu_experimental_ynn_fusion_type",
                          "XLA_FLAGS --xla_cpu_enable_platform_dependent_math"] and report.complete
    assert str(report).splitlines()[0].startswith("portable mode (jax backend, floor x86-64 with AVX")
    again = apply(environ, initial=dict(PINS), loaded={"numpy": 1}, machine="x86_64")
    assert again.set == [] and environ["XLA_FLAGS"].count("--xla_cpu_max_isa") == 1 and again.complete


def test_on_jax_a_users_other_isa_is_kept_and_after_jax_started_the_pins_are_too_late():
    environ = {"KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_cpu_max_isa=AVX2", **PINS}
    report = apply(environ, initial=dict(PINS), loaded={}, machine="x86_64")
    assert report.kept == [("XLA_FLAGS --xla_cpu_max_isa", "AVX2")] and not report.complete
    assert "kept the value already set: XLA_FLAGS --xla_cpu_max_isa=AVX2 (the mode's: AVX)" in str(report)
    assert environ["XLA_FLAGS"].startswith("--xla_cpu_max_isa=AVX2 ")          # theirs stays, first
    started = {"jax._src.xla_bridge": SimpleNamespace(_backends={"cpu": object()})}
    environ = {"KERAS_BACKEND": "jax", **PINS}
    late = apply(environ, initial=dict(PINS), loaded=started, machine="x86_64")
    assert [name for name, _ in late.too_late] == ["XLA_FLAGS " + pin.split("=")[0] for pin in XLA_PINS]
    assert late.too_late[0][1].startswith("JAX already created its backend") and "XLA_FLAGS" not in environ


def test_the_jax_kernelspec_has_the_xla_pins_beside_determinism_and_the_tensorflow_one_has_none():
    jax = kernel_spec(42, "k", backend="jax", portable=True)["env"]
    assert jax["XLA_FLAGS"].split() == [XLA_DETERMINISM, *XLA_PINS] and jax["KERAS_BACKEND"] == "jax"
    assert kernel_spec(42, "k", portable=True)["env"]["XLA_FLAGS"] == XLA_DETERMINISM       # the twin
    assert kernel_spec(42, "k", backend="jax")["env"]["XLA_FLAGS"] == XLA_DETERMINISM


def test_session_and_repro_seed_report_what_came_too_late(ip, monkeypatch, capsys):
    import numpy  # noqa: F401  (loaded in this process: its pins are too late here)

    for name in PINS:
        monkeypatch.delenv(name, raising=False)
    from jupyter_repro import Session

    session = Session(portable=True, store=None)
    assert ("NPY_DISABLE_CPU_FEATURES" in dict(session.portable.too_late))
    ip.run_line_magic("load_ext", "jupyter_repro")
    out = ip.run_line_magic("repro_seed", "42 --portable")
    assert out.seed == 42
    printed = capsys.readouterr().out
    assert "INCOMPLETE" in printed and "too late: NPY_DISABLE_CPU_FEATURES: numpy already imported" in printed


def test_the_avx2_floor_sets_its_own_pins_and_names_its_floor():
    environ = {}
    report = apply(environ, initial={"GLIBC_TUNABLES": AVX2_PINS["GLIBC_TUNABLES"]}, loaded={}, machine="x86_64",
                   floor_name="avx2")
    assert report.complete and environ == {name: AVX2_PINS[name] for name in report.set}
    assert environ["ONEDNN_MAX_CPU_ISA"] == "AVX2" and environ["OPENBLAS_CORETYPE"] == "Haswell"
    assert str(report).splitlines()[0] == ("portable mode (tensorflow backend, floor x86-64-v3: AVX2 and FMA (Intel "
                                           "Haswell, AMD Zen or later)): every pin in force")
    at_avx = apply({}, initial={"GLIBC_TUNABLES": AVX2_PINS["GLIBC_TUNABLES"]}, loaded={}, machine="x86_64")
    assert not at_avx.complete and "GLIBC_TUNABLES" in dict(at_avx.too_late)   # the twin: the AVX floor's pin differs
    late = apply({}, initial={}, loaded={}, machine="x86_64", floor_name="avx2")
    assert "install-kernel --portable avx2" in dict(late.too_late)["GLIBC_TUNABLES"]


def test_the_avx2_kernelspec_carries_its_floor_in_env_and_argv_and_jax_gets_its_isa():
    spec = kernel_spec(42, "k", backend="jax", portable="avx2")
    assert {name: spec["env"][name] for name in AVX2_PINS} == AVX2_PINS
    assert spec["env"]["XLA_FLAGS"].split() == [XLA_DETERMINISM, *AVX2_XLA_PINS]
    assert AVX2_XLA_PINS[0] == "--xla_cpu_max_isa=AVX2"
    assert "--ReproMagics.portable=True" in spec["argv"] and "--ReproMagics.portable_floor=avx2" in spec["argv"]
    assert not any("portable_floor" in arg for arg in kernel_spec(42, "k", portable=True)["argv"])  # the default


def test_a_floor_that_does_not_exist_is_a_usage_error_that_changes_nothing(ip, monkeypatch):
    from IPython.core.error import UsageError

    for name in PINS:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(UnknownFloor, match=r"no portable floor 'avx9': the floors are avx, avx2"):
        apply({}, initial={}, loaded={}, machine="x86_64", floor_name="avx9")
    ip.run_line_magic("load_ext", "jupyter_repro")
    magics = ip.magics_manager.registry["ReproMagics"]
    before = magics.session.portable, magics.seed
    with pytest.raises(UsageError, match=r"^no portable floor 'avx9': the floors are avx, avx2 \(no name: avx\)$"):
        ip.run_line_magic("repro_seed", "7 --portable avx9")
    assert (magics.session.portable, magics.seed) == before and "ONEDNN_MAX_CPU_ISA" not in os.environ


def test_repro_seed_portable_avx2_pins_that_floor(ip, monkeypatch, capsys):
    for name in PINS:
        monkeypatch.delenv(name, raising=False)
    ip.run_line_magic("load_ext", "jupyter_repro")
    ip.run_line_magic("repro_seed", "42 --portable avx2")
    printed = capsys.readouterr().out
    assert "portable mode (tensorflow backend, floor x86-64-v3: AVX2 and FMA" in printed
    session = ip.magics_manager.registry["ReproMagics"].session
    assert session.portable.floor == "avx2"
    assert ("ONEDNN_MAX_CPU_ISA" in dict(session.portable.too_late)              # TensorFlow loaded here
            or os.environ["ONEDNN_MAX_CPU_ISA"] == "AVX2")
